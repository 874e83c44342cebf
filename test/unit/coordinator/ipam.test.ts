import test from 'ava';
import fc from 'fast-check';
import { parseVipPool, vipAt, offsetOf, ReferenceAllocator, InvalidCidrError } from '../../../coordinator/ipam';

test('parseVipPool normalizes and bounds the usable range', (t) => {
  const c = parseVipPool('100.64.0.0/10');
  t.is(c.text, '100.64.0.0/10');
  t.is(c.size, 4194304);
  t.is(vipAt(c, c.firstOffset), '100.64.0.1');
  t.is(vipAt(c, c.lastOffset), '100.127.255.254');
  t.is(parseVipPool('10.1.2.3/24').text, '10.1.2.0/24');
  t.is(parseVipPool('10.1.2.3/30').lastOffset, 2);
});

test('parseVipPool rejects garbage', (t) => {
  for (const bad of ['', '10.0.0.0', '10.0.0.0/31', '10.0.0.0/7', '300.0.0.0/8', '10.0.0/8', 'a.b.c.d/8', '10.0.0.0/8/8', '010.0.0.0/8', '10.0.0.0/08']) {
    t.throws(() => parseVipPool(bad), { instanceOf: InvalidCidrError }, bad);
  }
});

test('vipAt/offsetOf round-trip; network and broadcast are never usable', (t) => {
  fc.assert(fc.property(fc.integer({ min: 8, max: 30 }), fc.nat(), fc.nat(), (prefix, a, o) => {
    const c = parseVipPool(`${(a >>> 24) % 224 || 1}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${prefix}`);
    const off = c.firstOffset + (o % (c.lastOffset - c.firstOffset + 1));
    const ip = vipAt(c, off);
    if (offsetOf(c, ip) !== off) return false;
    return offsetOf(c, vipAt(c, c.firstOffset).replace(/\d+$/, (d) => String(Number(d) - 1))) === -1;
  }), { numRuns: 2000 });
  const c = parseVipPool('10.0.0.0/29');
  t.is(offsetOf(c, '10.0.0.0'), -1);
  t.is(offsetOf(c, '10.0.0.7'), -1);
  t.is(offsetOf(c, '10.0.0.8'), -1);
  t.is(offsetOf(c, 'nonsense'), -1);
  t.throws(() => vipAt(c, 0));
  t.throws(() => vipAt(c, 7));
});

test('reference allocator: no duplicate in use, quarantine respected, fresh addresses first', (t) => {
  fc.assert(fc.property(fc.array(fc.oneof(
    fc.record({ op: fc.constant('alloc' as const) }),
    fc.record({ op: fc.constant('release' as const), i: fc.nat() }),
    fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 2000 }) }),
  ), { maxLength: 200 }), (ops) => {
    const c = parseVipPool('10.9.0.0/28'); // 14 usable
    const a = new ReferenceAllocator(c, 1000);
    let now = 0;
    const releasedAt = new Map<string, number>();
    const everHanded = new Set<string>();
    for (const o of ops) {
      if (o.op === 'tick') now += o.ms;
      else if (o.op === 'release') {
        const inUse = [...a.inUse()];
        if (inUse.length) { const v = inUse[o.i % inUse.length]; a.release(v, now); releasedAt.set(v, now); }
      } else {
        const before = new Set(a.inUse());
        const v = a.allocate(now);
        if (v === undefined) {
          // exhausted only if every address is in use or still quarantined
          if (everHanded.size < 14) return false;
          for (const [rv, at] of releasedAt) if (!before.has(rv) && at + 1000 <= now) return false;
          continue;
        }
        if (before.has(v)) return false;
        if (releasedAt.has(v) && releasedAt.get(v)! + 1000 > now) return false;
        if (everHanded.has(v) && everHanded.size < 14) return false; // reuse before the pool ran dry
        everHanded.add(v);
        releasedAt.delete(v);
      }
    }
    return true;
  }), { numRuns: 1000 });
  t.pass();
});
