import test from 'ava';
import { JoinBackoff, JOIN_BACKOFF_BASE_MS as BASE, JOIN_BACKOFF_CAP_MS as CAP, JOIN_RETRY_AFTER_MAX_MS, parseRetryAfter } from '../../../node-agent/join-backoff';

/** A stream of "random" numbers from a list, for exact bounds. */
const seq = (...xs: number[]) => { let i = 0; return () => xs[i++ % xs.length]!; };

test('unreachable coordinator: full jitter within [0, base·2^n], growing, capped', (t) => {
  const hi = new JoinBackoff({ random: () => 0.999999 });
  const lo = new JoinBackoff({ random: () => 0 });
  const ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60].map((s) => s * 1000);
  for (const c of ceilings) {
    t.is(lo.next(), 0);
    const w = hi.next();
    t.true(w <= c && w >= c - 1, `${w} ≈ ${c}`);
  }
  // Many draws with Math.random: always within [0, cap], and they differ (jitter).
  const b = new JoinBackoff();
  for (let i = 0; i < 20; i++) b.next();
  const draws = Array.from({ length: 50 }, () => b.next());
  t.true(draws.every((w) => w >= 0 && w <= CAP));
  t.true(new Set(draws).size > 10);
});

test('a 503 with Retry-After waits at least that long; a 503 without it is jittered as usual', (t) => {
  const b = new JoinBackoff({ random: () => 0 });
  t.is(b.next({ status: 503, retryAfterSec: 5 }), 5000);
  t.is(b.next({ status: 429, retryAfterSec: 7 }), 7000);
  // positive control: the same status without the header is the plain jittered wait
  t.is(b.next({ status: 503 }), 0);
  // Retry-After below the jittered wait does not shorten it
  const h = new JoinBackoff({ random: () => 0.5 });
  for (let i = 0; i < 10; i++) h.next();
  t.is(h.next({ status: 503, retryAfterSec: 1 }), CAP / 2);
  // a huge Retry-After is bounded; one on a status that does not define it is ignored
  t.is(b.next({ status: 503, retryAfterSec: 1e9 }), JOIN_RETRY_AFTER_MAX_MS);
  t.is(new JoinBackoff({ random: () => 0 }).next({ status: 500, retryAfterSec: 30 }), 0);
});

test('a permanent refusal (403 key removed) backs off to the cap at once; 408/429 do not', (t) => {
  const b = new JoinBackoff({ random: seq(0, 0.999999) });
  t.is(b.next({ status: 403 }), CAP / 2);
  t.true(b.next({ status: 403 }) >= CAP - 1);
  for (const status of [408, 429, 500, 502]) t.is(new JoinBackoff({ random: () => 0.999999 }).next({ status }) <= BASE, true, String(status));
});

test('reset after a successful join starts from the base again', (t) => {
  const b = new JoinBackoff({ random: () => 0.999999 });
  for (let i = 0; i < 8; i++) b.next();
  t.true(b.next() > CAP / 2);
  b.reset();
  t.true(b.next() <= BASE);
  t.is(b.attempts, 1);
});

test('parseRetryAfter: seconds or an HTTP date; junk is undefined', (t) => {
  t.is(parseRetryAfter('5'), 5);
  t.is(parseRetryAfter(new Date(1_000_000 + 30_000).toUTCString(), 1_000_000), 30);
  t.is(parseRetryAfter(new Date(0).toUTCString(), 1_000_000), 0);
  t.is(parseRetryAfter('soon'), undefined);
  t.is(parseRetryAfter('-3'), undefined);
  t.is(parseRetryAfter(undefined), undefined);
});
