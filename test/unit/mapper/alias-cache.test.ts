import test from 'ava';
import fc from 'fast-check';
import { AliasCache } from '../../../mapper/alias-cache';

const pos = (vip: string) => ({ vip, at: 0, negGen: 0 });

test('dropVip removes exactly the names pointing at that vip, and keeps the index in step', (t) => {
  const c = new AliasCache(100);
  c.set('10.0.0.1', pos('100.64.0.1'));
  c.set('alpha', pos('100.64.0.1'));
  c.set('10.0.0.2', pos('100.64.0.2'));
  c.set('10.9.9.9', { vip: null, at: 0, negGen: 0 });
  t.is(c.dropVip('100.64.0.1'), 2);
  t.is(c.get('10.0.0.1'), undefined);
  t.is(c.get('alpha'), undefined);
  t.is(c.get('10.0.0.2')?.vip, '100.64.0.2');
  t.is(c.get('10.9.9.9')?.vip, null, 'negative entries are nobody\'s');
  t.is(c.dropVip('100.64.0.1'), 0);
  t.is(c.indexedVips, 1);
  // Re-pointing a name moves it in the index.
  c.set('10.0.0.2', pos('100.64.0.3'));
  t.is(c.dropVip('100.64.0.2'), 0);
  t.is(c.dropVip('100.64.0.3'), 1);
  t.is(c.indexedVips, 0);
});

test('eviction at maxEntries keeps the index in step', (t) => {
  const c = new AliasCache(2);
  c.set('a', pos('v1'));
  c.set('b', pos('v2'));
  c.set('c', pos('v3'));
  t.is(c.size, 2);
  t.is(c.get('a'), undefined);
  t.is(c.indexedVips, 2);
  t.is(c.dropVip('v1'), 0);
});

test('randomized against a naive scan: dropVip drops what a full scan would', (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(3), fc.nat(20), fc.option(fc.nat(6), { nil: null })), { maxLength: 200 }), (ops) => {
    const c = new AliasCache(12);
    const ref = new Map<string, string | null>();
    for (const [op, n, v] of ops) {
      const name = `n${n}`;
      const vip = v === null ? null : `v${v}`;
      if (op <= 1) {
        c.set(name, { vip, at: 0, negGen: 0 });
        ref.delete(name);
        if (ref.size >= 12) ref.delete(ref.keys().next().value!);
        ref.set(name, vip);
      } else if (op === 2) {
        c.delete(name);
        ref.delete(name);
      } else if (vip !== null) {
        let expected = 0;
        for (const [k, x] of ref) if (x === vip) { ref.delete(k); expected++; }
        if (c.dropVip(vip) !== expected) return false;
      }
      if (c.size !== ref.size) return false;
      for (const [k, x] of ref) if (c.get(k)?.vip !== x) return false;
    }
    return true;
  }), { numRuns: 500 });
  t.pass();
});
