import test from 'ava';
import fc from 'fast-check';
import { AllowedIps } from '../../../protocol/allowed-ips';
import { Ipv4ParseError, prefixMask } from '../../../common/ipv4';

/** Naive reference: a list scanned linearly for the longest matching prefix (wireguard-go SlowRouter). */
class SlowRouter<T> {
  rows: { network: number; bits: number; value: T }[] = [];
  insert(addr: number, bits: number, value: T): void {
    const network = (addr & prefixMask(bits)) >>> 0;
    const row = this.rows.find((r) => r.network === network && r.bits === bits);
    if (row) row.value = value; else this.rows.push({ network, bits, value });
  }
  remove(addr: number, bits: number): boolean {
    const network = (addr & prefixMask(bits)) >>> 0;
    const i = this.rows.findIndex((r) => r.network === network && r.bits === bits);
    if (i < 0) return false;
    this.rows.splice(i, 1);
    return true;
  }
  removeByValue(value: T): number {
    const before = this.rows.length;
    this.rows = this.rows.filter((r) => r.value !== value);
    return before - this.rows.length;
  }
  lookup(addr: number): T | undefined {
    let best: { bits: number; value: T } | undefined;
    for (const r of this.rows) {
      if (((addr & prefixMask(r.bits)) >>> 0) === r.network && (!best || r.bits > best.bits)) best = r;
    }
    return best?.value;
  }
}

test('string forms parse strictly and refuse host bits (parser: test/unit/common/ipv4.test.ts)', (t) => {
  const a = new AllowedIps<string>();
  a.insert('10.1.2.0/24', 'net');
  t.is(a.get(0x0a010200, 24), 'net');
  const hostBits = t.throws(() => a.insert('10.1.2.3/24', 'x'), { instanceOf: Ipv4ParseError });
  t.regex(hostBits!.message, /host bits set.*10\.1\.2\.0\/24/);
  t.is(hostBits!.code, 'ERR_BAD_IPV4');
  for (const bad of ['10.1.2.0', '10.1.2/24', '10.1.2.0.0/8', '256.0.0.0/8', '01.0.0.0/8', '10.0.0.0/33', '10.0.0.0/08',
    '10.0.0.0/', '/8', ' 10.0.0.0/8', '10.0.0.0/8 ', '10.0.0.-1/32', '10.0.0.0/-1', 'a.b.c.d/8', '10.0.0.0/8/8', '']) {
    t.throws(() => a.insert(bad, 'x'), { instanceOf: Ipv4ParseError }, bad);
    t.throws(() => a.remove(bad), { instanceOf: Ipv4ParseError }, bad);
  }
  a.insert('192.168.0.0/16', 'x');
  t.true(a.entries().some((e) => e.cidr === '192.168.0.0/16'));
  t.is(a.size, 2);
});

test('longest prefix wins; remove, removeByValue, entries', (t) => {
  const a = new AllowedIps<string>();
  a.insert('0.0.0.0/0', 'default');
  a.insert('10.0.0.0/8', 'ten');
  a.insert('10.1.0.0/16', 'ten-one');
  a.insert(0x0a010203, 32, 'host');
  a.insert(0x0a0102ff, 24, 'normalised'); // numeric form masks host bits
  t.is(a.size, 5);
  t.is(a.lookup(0x0a010203), 'host');
  t.is(a.lookup(0x0a010204), 'normalised');
  t.is(a.lookup(0x0a010304), 'ten-one');
  t.is(a.lookup(0x0a020304), 'ten');
  t.is(a.lookup(0xc0a80001), 'default');
  t.is(a.lookup(0xffffffff), 'default');
  t.is(a.get(0x0a010200, 24), 'normalised');
  t.true(a.remove('10.1.2.0/24'));
  t.false(a.remove('10.1.2.0/24'));
  t.is(a.lookup(0x0a010204), 'ten-one');
  a.insert('10.1.0.0/16', 'ten');
  t.is(a.removeByValue('ten'), 2);
  t.is(a.lookup(0x0a010304), 'default');
  t.deepEqual(a.entries().map((e) => [e.cidr, e.value]), [['10.1.2.3/32', 'host'], ['0.0.0.0/0', 'default']]);
  a.clear();
  t.is(a.lookup(0x0a010203), undefined);
  t.is(a.size, 0);
  t.throws(() => a.insert(1, 33, 'x'), { instanceOf: RangeError });
  t.throws(() => a.insert('10.0.0.1/8', 'x'), { instanceOf: Ipv4ParseError });
});

test('high addresses (sign bit set) work as keys', (t) => {
  const a = new AllowedIps<number>();
  a.insert('200.0.0.0/5', 1);
  a.insert('255.255.255.255/32', 2);
  a.insert('128.0.0.0/1', 3);
  t.is(a.lookup(0xc8000001), 1);
  t.is(a.lookup(0xffffffff), 2);
  t.is(a.lookup(0x80000000), 3);
  t.is(a.lookup(0x7fffffff), undefined);
});

test('differential against a linear-scan reference (random prefixes, removals, lookups)', (t) => {
  // Prefixes drawn around a few bases so that they overlap and nest.
  const bases = [0x0a000000, 0x0a010000, 0x64400000, 0xc0a80100, 0xffffff00, 0x00000000, 0x80000000];
  const addr = fc.oneof(
    fc.nat({ max: 0xffffffff }),
    fc.tuple(fc.constantFrom(...bases), fc.nat({ max: 0xffff })).map(([b, x]) => (b + x) >>> 0),
  );
  const op = fc.oneof(
    { arbitrary: fc.record({ k: fc.constant('ins' as const), a: addr, bits: fc.integer({ min: 0, max: 32 }), v: fc.integer({ min: 0, max: 15 }) }), weight: 5 },
    { arbitrary: fc.record({ k: fc.constant('rm' as const), a: addr, bits: fc.integer({ min: 0, max: 32 }) }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant('rmv' as const), v: fc.integer({ min: 0, max: 15 }) }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant('look' as const), a: addr }), weight: 8 },
  );
  let lookups = 0;
  let hits = 0;
  fc.assert(fc.property(fc.array(op, { minLength: 50, maxLength: 800 }), (ops) => {
    const fast = new AllowedIps<number>();
    const slow = new SlowRouter<number>();
    for (const o of ops) {
      if (o.k === 'ins') { fast.insert(o.a, o.bits, o.v); slow.insert(o.a, o.bits, o.v); }
      else if (o.k === 'rm') { if (fast.remove(o.a, o.bits) !== slow.remove(o.a, o.bits)) return false; }
      else if (o.k === 'rmv') { if (fast.removeByValue(o.v) !== slow.removeByValue(o.v)) return false; }
      else {
        lookups++;
        const want = slow.lookup(o.a);
        if (want !== undefined) hits++;
        if (fast.lookup(o.a) !== want) return false;
      }
      if (fast.size !== slow.rows.length) return false;
    }
    // Every stored prefix, and the addresses at its edges, agree at the end too.
    for (const r of slow.rows) {
      for (const x of [r.network, (r.network + (~prefixMask(r.bits) >>> 0)) >>> 0, (r.network - 1) >>> 0]) {
        lookups++;
        if (fast.lookup(x) !== slow.lookup(x)) return false;
      }
    }
    return fast.entries().length === slow.rows.length;
  }), { numRuns: 150 });
  t.log(`${lookups} lookups, ${hits} hits`);
  t.true(lookups > 10_000 && hits > 1000);
});

test('lookup throughput (printed)', (t) => {
  const a = new AllowedIps<number>();
  for (let i = 0; i < 10_000; i++) a.insert((0x64400000 + i) >>> 0, 32, i);
  a.insert('10.0.0.0/8', -1);
  a.insert('0.0.0.0/0', -2);
  const N = 1_000_000;
  let sum = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) sum += a.lookup((0x64400000 + (i % 12_000)) >>> 0)!;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  t.true(sum !== 0);
  t.log(`${Math.round(N / s / 1e6 * 10) / 10} M lookups/s with 10k /32s + 2 shorter prefixes`);
});
