/** The per-source token bucket of handshake messages, on a manual clock. */
import test from 'ava';
import fc from 'fast-check';
import { ManualClock } from '../../../common/clock';
import { RATE_LIMIT_BURST, RATE_LIMIT_PER_SECOND, RateLimiter } from '../../../protocol/ratelimiter';

/** Messages from `src` allowed out of `n` sent at one instant. */
function allowedOf(l: RateLimiter, src: number, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (l.allow(src)) ok++;
  return ok;
}

test('a new source gets its burst at once, then nothing until a token refills', (t) => {
  const clock = new ManualClock();
  const l = new RateLimiter(clock);
  t.is(allowedOf(l, 1, 100), RATE_LIMIT_BURST);
  clock.advance(1000 / RATE_LIMIT_PER_SECOND - 1);
  t.false(l.allow(1), 'just before a token refills');
  clock.advance(1);
  t.true(l.allow(1), 'one token after 1/rate seconds');
  t.false(l.allow(1));
});

test('sources are independent: one flooding source does not take another\'s tokens', (t) => {
  const clock = new ManualClock();
  const l = new RateLimiter(clock);
  t.is(allowedOf(l, 1, 1000), RATE_LIMIT_BURST, 'the flooder is cut at its burst');
  t.is(allowedOf(l, 2, 1), 1, 'positive control: another source in the same instant passes');
  t.is(allowedOf(l, 2 ** 32 + 1, 1), 1, 'a relayed source keyed above 2^32 is not the direct source 1');
});

test('a steady flood gets at most burst + rate × seconds (fast-check over rates and send patterns)', (t) => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 20 }),
    fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 300 }),
    (perSecond, burst, gaps) => {
      const clock = new ManualClock();
      const l = new RateLimiter(clock, { perSecond, burst });
      let ok = 0;
      for (const gap of gaps) {
        clock.advance(gap);
        ok += allowedOf(l, 7, 3);
      }
      const seconds = clock.now() / 1000;
      return ok <= burst + Math.floor(perSecond * seconds + 1e-9) && ok >= Math.min(burst, 3);
    },
  ), { numRuns: 1000 });
  t.pass();
});

test('over 3 s at 5,000 messages/s from one source: 5 + 20 × 3 pass', (t) => {
  const clock = new ManualClock();
  const l = new RateLimiter(clock);
  let ok = 0;
  for (let ms = 0; ms < 3000; ms++) {
    ok += allowedOf(l, 9, 5);
    clock.advance(1);
  }
  // The last refill lands at t = 3000 ms, one step after the loop's last send.
  t.is(ok, RATE_LIMIT_BURST + RATE_LIMIT_PER_SECOND * 3 - 1);
});

test('the table is bounded: full of live sources, a new one is refused; idle buckets are swept', (t) => {
  const clock = new ManualClock();
  const l = new RateLimiter(clock, { maxSources: 4 });
  for (let s = 0; s < 4; s++) t.true(l.allow(s));
  t.is(l.size, 4);
  t.false(l.allow(100), 'a fifth source while all four are live: refused (fail closed)');
  t.true(l.allow(0), 'positive control: a known source keeps its bucket');
  clock.advance(999);
  t.false(l.allow(100), 'still live 999 ms later');
  t.true(l.allow(3), 'keep one source busy');
  clock.advance(1);
  t.true(l.allow(100), 'after 1 s idle the others are swept: the new source gets a bucket');
  t.is(l.size, 2, 'swept: 0, 1, 2 (idle 1 s); kept: 3 (used 1 ms ago) and the new 100');
});

test('the sweep runs from allow() once per second, without a timer: idle sources go', (t) => {
  const clock = new ManualClock();
  const l = new RateLimiter(clock);
  for (let s = 0; s < 1000; s++) l.allow(s);
  t.is(l.size, 1000);
  clock.advance(1000);
  l.allow(5000);
  t.is(l.size, 1, 'only the source seen now');
});

test('bad options are refused with the option named', (t) => {
  const clock = new ManualClock();
  t.throws(() => new RateLimiter(clock, { perSecond: 0 }), { instanceOf: RangeError, message: /perSecond/ });
  t.throws(() => new RateLimiter(clock, { burst: 0.5 }), { instanceOf: RangeError, message: /burst/ });
  t.throws(() => new RateLimiter(clock, { maxSources: 0 }), { instanceOf: RangeError, message: /maxSources/ });
});

test('exact for rates that do not divide 1000 (112/s: the whole burst of 3, then one token per 1000/112 ms)', (t) => {
  const clock = new ManualClock();
  const l = new RateLimiter(clock, { perSecond: 112, burst: 3 });
  t.is(allowedOf(l, 1, 10), 3);
  clock.advance(1000);
  t.is(allowedOf(l, 1, 200), 3, 'a full second later: the bucket is full again, no more');
  let ok = 0;
  for (let ms = 0; ms < 1000; ms++) {
    clock.advance(1);
    ok += allowedOf(l, 1, 1);
  }
  t.is(ok, 112, 'one second of steady sending: exactly the rate');
});
