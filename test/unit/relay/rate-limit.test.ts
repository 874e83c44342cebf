import test from 'ava';
import { RateLimiter, WorkLimiter } from '../../../relay/rate-limit';

test('one reply per key per interval', (t) => {
  const rl = new RateLimiter(0, { intervalMs: 1000, perSecond: 100 });
  t.true(rl.allow(1, 0));
  t.false(rl.allow(1, 999));
  t.true(rl.allow(2, 999));
  t.true(rl.allow(1, 1000));
});

test('the global bucket caps replies across keys and refills over time', (t) => {
  const rl = new RateLimiter(0, { intervalMs: 1000, perSecond: 10 });
  let ok = 0;
  for (let k = 0; k < 100; k++) if (rl.allow(k, 0)) ok++;
  t.is(ok, 10);
  t.false(rl.allow(1000, 50));
  t.true(rl.allow(1001, 100), 'one token back after 100 ms');
  t.false(rl.allow(1002, 100));
});

test('the key table is bounded', (t) => {
  const rl = new RateLimiter(0, { intervalMs: 1e9, perSecond: 1e9, maxKeys: 10 });
  for (let k = 0; k < 10; k++) t.true(rl.allow(k, 0));
  t.true(rl.allow(10, 0), 'a full table resets instead of growing');
  t.true(rl.allow(0, 0), 'forgotten after the reset');
});

test('work limiter: per-key burst and rate, and a global cap', (t) => {
  const wl = new WorkLimiter(0, { perKeyPerSecond: 10, perKeyBurst: 3, globalPerSecond: 5, globalBurst: 5 });
  t.deepEqual([1, 2, 3, 4].map(() => wl.take(1, 0)), [true, true, true, false]);
  t.true(wl.take(2, 0));
  t.true(wl.take(2, 0));
  t.false(wl.take(3, 0), 'global budget spent');
  t.true(wl.take(1, 200), 'refilled after 200 ms');
});
