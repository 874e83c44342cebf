import test from 'ava';
import fc from 'fast-check';
import { tai64nFromMs, tai64nIsAfter, tai64nToMs } from '../../../protocol/tai64n';

test('layout: BE seconds + 2^62 + 10, BE nanoseconds', (t) => {
  const ts = tai64nFromMs(1_700_000_000_123);
  t.is(ts.length, 12);
  t.is(ts.readBigUInt64BE(0), 2n ** 62n + 10n + 1_700_000_000n);
  t.is(ts.readUInt32BE(8), 123_000_000);
  t.is(tai64nFromMs(0).toString('hex'), '400000000000000a00000000');
});

test('order of timestamps is the order of times; strictly after', (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 45 }), fc.integer({ min: 0, max: 2 ** 45 }), (a, b) => {
    const ta = tai64nFromMs(a);
    const tb = tai64nFromMs(b);
    return tai64nIsAfter(ta, tb) === a > b && tai64nToMs(ta) === a;
  }), { numRuns: 2000 });
  const x = tai64nFromMs(5000);
  t.false(tai64nIsAfter(x, Buffer.from(x)), 'equal is not after');
  t.true(tai64nIsAfter(tai64nFromMs(5001), x));
});
