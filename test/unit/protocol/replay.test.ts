import test from 'ava';
import fc from 'fast-check';
import { ReplayWindow, WINDOW_SIZE, MAX_SAFE_COUNTER, RING_BLOCKS } from '../../../protocol/replay';
import { REJECT_AFTER_MESSAGES } from '../../../protocol/constants';

/** The naive model: a set of every accepted counter and the highest one. */
class ReferenceWindow {
  seen = new Set<number>();
  last = 0;
  validate(c: number, limit: number): boolean {
    if (c >= limit) return false;
    if (c <= this.last && this.last - c > WINDOW_SIZE) return false;
    if (this.seen.has(c)) return false;
    this.seen.add(c);
    if (c > this.last) this.last = c;
    return true;
  }
}

test('window size is at least 2048 and ring is 8192 bits', (t) => {
  t.true(WINDOW_SIZE >= 2048);
  t.is(RING_BLOCKS * 32, 8192);
});

test('in order, then duplicates rejected', (t) => {
  const w = new ReplayWindow();
  for (let i = 0; i < 20_000; i++) t.true(w.validateCounter(i, REJECT_AFTER_MESSAGES), `counter ${i}`);
  for (let i = 20_000 - WINDOW_SIZE; i < 20_000; i++) t.false(w.validateCounter(i, REJECT_AFTER_MESSAGES));
  t.false(w.validateCounter(0));
});

test('out of order within the window accepted once', (t) => {
  const w = new ReplayWindow();
  t.true(w.validateCounter(5000));
  for (let i = 4999; i >= 5000 - WINDOW_SIZE && i >= 0; i--) t.true(w.validateCounter(i));
  for (let i = 0; i <= 5000; i++) t.false(w.validateCounter(i));
});

test('window boundary exactly', (t) => {
  const w = new ReplayWindow();
  const top = 100_000;
  t.true(w.validateCounter(top));
  t.false(w.validateCounter(top - WINDOW_SIZE - 1), 'one past the window');
  t.true(w.validateCounter(top - WINDOW_SIZE), 'oldest counter inside the window');
  t.false(w.validateCounter(top - WINDOW_SIZE), 'and only once');
  // Advance by one: the previously oldest is now outside.
  t.true(w.validateCounter(top + 1));
  t.false(w.validateCounter(top + 1 - WINDOW_SIZE - 1));
  t.true(w.validateCounter(top + 1 - WINDOW_SIZE));
});

test('far jump clears the ring, old counters then too old', (t) => {
  const w = new ReplayWindow();
  for (let i = 0; i < 100; i++) t.true(w.validateCounter(i));
  t.true(w.validateCounter(1e12));
  t.false(w.validateCounter(50));
  t.true(w.validateCounter(1e12 - 1));
  t.true(w.validateCounter(1e12 - WINDOW_SIZE));
  t.false(w.validateCounter(1e12));
});

test('limits: REJECT_AFTER_MESSAGES, 2^53, bigint and bad numbers', (t) => {
  const w = new ReplayWindow();
  t.false(w.validateCounter(10, 10));
  t.true(w.validateCounter(9, 10));
  t.false(w.validateCounter(10n, 10n));
  t.true(w.validateCounter(11n, REJECT_AFTER_MESSAGES));
  t.false(w.validateCounter(REJECT_AFTER_MESSAGES, REJECT_AFTER_MESSAGES));
  t.false(w.validateCounter(BigInt(MAX_SAFE_COUNTER)));
  t.false(w.validateCounter(MAX_SAFE_COUNTER));
  t.true(w.validateCounter(MAX_SAFE_COUNTER - 1));
  t.false(w.validateCounter(-1));
  t.false(w.validateCounter(1.5));
  t.false(w.validateCounter(Number.NaN));
  w.reset();
  t.true(w.validateCounter(0));
  t.is(w.highest, 0);
});

test('differential against a set model (random walks with far jumps)', (t) => {
  const op = fc.oneof(
    { arbitrary: fc.integer({ min: -WINDOW_SIZE - 40, max: 40 }), weight: 8 }, // near the head
    { arbitrary: fc.integer({ min: -3 * WINDOW_SIZE, max: 3 * WINDOW_SIZE }), weight: 2 },
    { arbitrary: fc.integer({ min: 0, max: 2 ** 40 }), weight: 1 }, // far jump forward
    { arbitrary: fc.constantFrom(-WINDOW_SIZE, -WINDOW_SIZE - 1, -WINDOW_SIZE + 1, 32, 8192, 8160), weight: 1 },
  );
  let total = 0;
  fc.assert(fc.property(fc.array(op, { minLength: 100, maxLength: 3000 }), fc.integer({ min: 0, max: 5000 }), (deltas, start) => {
    const w = new ReplayWindow();
    const ref = new ReferenceWindow();
    let head = start;
    const limit = 2 ** 45;
    for (const d of deltas) {
      const c = Math.max(0, head + d);
      const got = w.validateCounter(c, limit);
      const want = ref.validate(c, limit);
      total++;
      if (got !== want) return false;
      head = ref.last;
    }
    return true;
  }), { numRuns: 200 });
  t.true(total > 10_000, `ops ${total}`);
});
