/** common/ipv4.ts: the one IPv4 address and prefix parser, property-tested against naive references. */
import test from 'ava';
import fc from 'fast-check';
import {
  ADDR_PATTERN, Ipv4ParseError, SPECIAL_PURPOSE, addrsOf, contains, containsPrefix, firstAddr, formatAddr, formatPrefix,
  isAddr, isMasked, isSpecialPurpose, lastAddr, makePrefix, masked, networkOf, overlaps, parseAddr, parseNetwork,
  parsePrefix, prefixMask, prefixSize, readAddr, specialPurposeOf, tryParseAddr, tryParsePrefix, writeAddr, type Prefix,
} from '../../../common/ipv4';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bitsArb = fc.integer({ min: 0, max: 32 });
const prefixArb = fc.tuple(u32, bitsArb).map(([addr, bits]) => ({ addr, bits }));

/** Naive references: string octets, bit by bit. */
const refFormat = (n: number) => [24, 16, 8, 0].map((s) => String(Math.floor(n / 2 ** s) % 256)).join('.');
const refBit = (n: number, i: number) => Math.floor(n / 2 ** (31 - i)) % 2;
const refContains = (p: Prefix, a: number) => {
  for (let i = 0; i < p.bits; i++) if (refBit(p.addr, i) !== refBit(a, i)) return false;
  return true;
};

/** Inputs no parser may accept, as addresses; each also checked with '/n' appended, as prefixes. */
const BAD_ADDRS = [
  '', '.', '...', '1.2.3', '1.2.3.4.5', '1.2.3.', '.1.2.3', '1..2.3', '1.2.3.4.',
  '010.0.0.1', '1.02.3.4', '1.2.3.00', '00.0.0.0', '0x7f.0.0.1', '0x7f000001', '017700000001', '2130706433',
  '256.0.0.1', '1.2.3.256', '999.1.1.1', '1000.1.1.1', '+1.2.3.4', '-1.2.3.4', '1.2.3.-4', '1.2.3.+4',
  ' 1.2.3.4', '1.2.3.4 ', '1.2. 3.4', '1.2.3.4\n', '\t1.2.3.4', '1.2.3.4x', '1.2.3.4:80', 'a.b.c.d', '1.2.3.4e0',
  '１.2.3.4', '1.2.3.4\u0000', '1e2.0.0.1', '1.2.3.4/', '::1', '::ffff:1.2.3.4',
];

test('format∘parse round-trips every uint32, and agrees with a naive formatter', (t) => {
  fc.assert(fc.property(u32, (n) => {
    const s = formatAddr(n);
    return s === refFormat(n) && parseAddr(s) === n && tryParseAddr(s) === n && isAddr(s);
  }), { numRuns: 20000 });
  for (const n of [0, 1, 0x7f000001, 0xffffffff, 0x80000000]) t.is(parseAddr(formatAddr(n)), n);
  t.is(parseAddr('255.255.255.255'), 0xffffffff);
  t.is(parseAddr('0.0.0.0'), 0);
});

test('addresses: leading zeros, octal/hex, signs, whitespace, empty octets, >255, 3/5 octets, junk are refused', (t) => {
  for (const bad of BAD_ADDRS) {
    t.is(tryParseAddr(bad), undefined, JSON.stringify(bad));
    t.false(isAddr(bad), JSON.stringify(bad));
    const e = t.throws(() => parseAddr(bad), { instanceOf: Ipv4ParseError }, JSON.stringify(bad));
    t.is(e!.code, 'ERR_BAD_IPV4');
    t.true(e!.message.includes(JSON.stringify(bad)), 'the error names the input');
  }
});

test('addresses: any string is accepted only when it is the canonical form of its value', (t) => {
  const octetish = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01', '007', '0x1', '+1', '-1', ' 1', '', 'a'));
  const dotted = fc.array(octetish, { minLength: 1, maxLength: 6 }).map((o) => o.join('.'));
  fc.assert(fc.property(fc.oneof(fc.string(), dotted), (s) => {
    const a = tryParseAddr(s);
    return a === undefined || formatAddr(a) === s;
  }), { numRuns: 20000 });
  t.pass();
});

test('ADDR_PATTERN (JSON schemas) accepts exactly what parseAddr accepts', (t) => {
  const re = new RegExp(ADDR_PATTERN);
  for (const bad of BAD_ADDRS) t.false(re.test(bad) && bad.length <= 15, JSON.stringify(bad));
  const octetish = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01', '0x1', '+1', ''));
  fc.assert(fc.property(fc.oneof(u32.map(formatAddr), fc.array(octetish, { minLength: 3, maxLength: 5 }).map((o) => o.join('.'))), (s) =>
    re.test(s) === isAddr(s)), { numRuns: 10000 });
});

test('prefixes: parse keeps host bits, parseNetwork refuses them, masked/format', (t) => {
  t.deepEqual(parsePrefix('100.64.0.1/10'), { addr: 0x64400001, bits: 10 });
  t.deepEqual(masked(parsePrefix('100.64.0.1/10')), { addr: 0x64400000, bits: 10 });
  t.is(formatPrefix(parsePrefix('100.64.0.1/10')), '100.64.0.1/10');
  t.is(formatPrefix(masked(parsePrefix('100.64.0.1/10'))), '100.64.0.0/10');
  t.deepEqual(parseNetwork('10.1.2.0/24'), { addr: 0x0a010200, bits: 24 });
  t.deepEqual(parseNetwork('0.0.0.0/0'), { addr: 0, bits: 0 });
  t.deepEqual(parseNetwork('255.255.255.255/32'), { addr: 0xffffffff, bits: 32 });
  const e = t.throws(() => parseNetwork('10.1.2.3/24'), { instanceOf: Ipv4ParseError });
  t.regex(e!.message, /host bits set.*10\.1\.2\.3\/24.*10\.1\.2\.0\/24/);
  t.true(isMasked({ addr: 0x0a000000, bits: 8 }));
  t.false(isMasked({ addr: 0x0a000001, bits: 8 }));
  t.is(prefixMask(0), 0);
  t.is(prefixMask(10), 0xffc00000);
  t.is(prefixMask(32), 0xffffffff);
  t.throws(() => makePrefix(1, 33), { instanceOf: RangeError });
  t.throws(() => makePrefix(-1, 8), { instanceOf: RangeError });
  t.deepEqual(makePrefix(5, 8), { addr: 5, bits: 8 });
});

test('prefixes: round-trip, and every malformed address or length is refused', (t) => {
  fc.assert(fc.property(prefixArb, (p) => {
    const s = formatPrefix(p);
    const q = parsePrefix(s);
    return q.addr === p.addr && q.bits === p.bits && tryParsePrefix(s)?.addr === p.addr && formatPrefix(masked(p)) === formatPrefix(parseNetwork(formatPrefix(masked(p))));
  }), { numRuns: 10000 });
  const badBits = ['', '33', '08', '00', '-1', '+8', '8 ', ' 8', '8x', '0x8', '100', '8/8', '1e1', '８'];
  for (const b of badBits) {
    const s = `10.0.0.0/${b}`;
    t.is(tryParsePrefix(s), undefined, s);
    t.throws(() => parsePrefix(s), { instanceOf: Ipv4ParseError, message: new RegExp(JSON.stringify(s).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')) }, s);
  }
  for (const bad of BAD_ADDRS) {
    for (const s of [`${bad}/24`, bad]) {
      t.is(tryParsePrefix(s), undefined, JSON.stringify(s));
      t.throws(() => parsePrefix(s), { instanceOf: Ipv4ParseError }, JSON.stringify(s));
      t.throws(() => parseNetwork(s), { instanceOf: Ipv4ParseError }, JSON.stringify(s));
    }
  }
  for (const s of ['10.0.0.0', '10.0.0.0/', '/8', '10.0.0.0/8/8', ' 10.0.0.0/8', '10.0.0.0/8 ', '10.0.0.0\\8']) {
    t.is(tryParsePrefix(s), undefined, s);
  }
  fc.assert(fc.property(fc.string(), (s) => {
    const p = tryParsePrefix(s);
    return p === undefined || formatPrefix(p) === s;
  }), { numRuns: 10000 });
});

test('contains agrees with a bit-by-bit reference; masked/first/last/size are consistent', (t) => {
  fc.assert(fc.property(prefixArb, u32, fc.integer({ min: 0, max: 0xffffffff }), (p, a, noise) => {
    const near = (p.addr ^ (noise & ~prefixMask(p.bits))) >>> 0; // same network, random host bits
    return contains(p, a) === refContains(p, a) && contains(p, near) && contains(masked(p), a) === contains(p, a) &&
      networkOf(p) === firstAddr(p) && contains(p, firstAddr(p)) && contains(p, lastAddr(p)) &&
      lastAddr(p) - firstAddr(p) + 1 === prefixSize(p) && (p.bits === 0 || !contains(p, (lastAddr(p) + 1) % 2 ** 32) || lastAddr(p) === 0xffffffff);
  }), { numRuns: 20000 });
  t.is(prefixSize({ addr: 0, bits: 0 }), 2 ** 32);
  t.is(prefixSize({ addr: 0, bits: 32 }), 1);
  t.is(lastAddr(parsePrefix('100.64.0.1/10')), parseAddr('100.127.255.255'));
  t.true(contains(parsePrefix('100.64.0.0/10'), parseAddr('100.127.255.255')));
  t.false(contains(parsePrefix('100.64.0.0/10'), parseAddr('100.128.0.0')));
  t.true(contains(parsePrefix('0.0.0.0/0'), parseAddr('1.2.3.4')));
});

test('overlaps is symmetric and matches "one contains the other"', (t) => {
  // Short random prefixes so both outcomes are common.
  const small = fc.tuple(u32, fc.integer({ min: 0, max: 6 }), bitsArb).map(([addr, k, b]) => ({ addr: (addr & 0xe0000000) >>> 0 | (b & 7) << 24, bits: Math.min(32, k + (b % 4)) }));
  fc.assert(fc.property(fc.oneof(prefixArb, small), fc.oneof(prefixArb, small), (a, b) => {
    const o = overlaps(a, b);
    const bySets = containsPrefix(masked(a), masked(b)) || containsPrefix(masked(b), masked(a));
    const byAddrs = contains(a, firstAddr(b)) || contains(b, firstAddr(a));
    return o === overlaps(b, a) && o === bySets && o === byAddrs;
  }), { numRuns: 20000 });
  t.true(overlaps(parsePrefix('10.0.0.0/8'), parsePrefix('10.1.0.0/16')));
  t.false(overlaps(parsePrefix('10.0.0.0/8'), parsePrefix('11.0.0.0/16')));
  t.true(containsPrefix(parsePrefix('10.0.0.0/8'), parsePrefix('10.1.0.0/16')));
  t.false(containsPrefix(parsePrefix('10.1.0.0/16'), parsePrefix('10.0.0.0/8')));
});

test('addrsOf yields size addresses in order, all contained, for small prefixes', (t) => {
  fc.assert(fc.property(u32, fc.integer({ min: 22, max: 32 }), (addr, bits) => {
    const p = { addr, bits };
    const all = [...addrsOf(p)];
    return all.length === prefixSize(p) && all[0] === firstAddr(p) && all[all.length - 1] === lastAddr(p) &&
      all.every((a, i) => contains(p, a) && (i === 0 || a === all[i - 1]! + 1));
  }), { numRuns: 300 });
  t.deepEqual([...addrsOf(parsePrefix('255.255.255.254/31'))], [0xfffffffe, 0xffffffff]);
});

test('readAddr/writeAddr: network byte order, round-trip', (t) => {
  const b = new Uint8Array(7);
  fc.assert(fc.property(u32, fc.integer({ min: 0, max: 3 }), (n, off) => {
    writeAddr(b, off, n);
    return readAddr(b, off) === n && Buffer.from(b).readUInt32BE(off) === n;
  }));
  writeAddr(b, 1, parseAddr('10.1.2.3'));
  t.deepEqual([...b.subarray(1, 5)], [10, 1, 2, 3]);
});

test('special-purpose table: the ranges the mapper refuses and the next issue will refuse as original IPs', (t) => {
  const cases: Record<string, string | undefined> = {
    '0.0.0.0': 'this-network', '0.255.255.255': 'this-network', '127.0.0.1': 'loopback', '169.254.1.1': 'link-local',
    '224.0.0.1': 'multicast', '239.255.255.255': 'multicast', '240.0.0.1': 'reserved', '255.255.255.255': 'reserved',
    '1.0.0.0': undefined, '10.0.0.1': undefined, '100.64.0.1': undefined, '126.255.255.255': undefined, '128.0.0.0': undefined,
    '169.253.255.255': undefined, '169.255.0.0': undefined, '223.255.255.255': undefined, '192.168.1.1': undefined,
  };
  for (const [ip, name] of Object.entries(cases)) {
    t.is(specialPurposeOf(parseAddr(ip)) as string | undefined, name, ip);
    t.is(isSpecialPurpose(parseAddr(ip)), name !== undefined, ip);
  }
  t.true(SPECIAL_PURPOSE.some((r) => r.name === 'limited-broadcast' && formatPrefix(r.prefix) === '255.255.255.255/32'));
  for (const r of SPECIAL_PURPOSE) t.true(isMasked(r.prefix), r.name);
  // The rule the mapper used before this table existed.
  fc.assert(fc.property(u32, (n) => {
    const a = n >>> 24;
    return isSpecialPurpose(n) === (a === 0 || a === 127 || a >= 224 || (n >>> 16) === ((169 << 8) | 254));
  }), { numRuns: 20000 });
});

test('prefix errors say which part is wrong', (t) => {
  t.regex(t.throws(() => parsePrefix('10.0.0.0'))!.message, /the \/n is missing.*"10\.0\.0\.0"/);
  t.regex(t.throws(() => parsePrefix('010.0.0.0/8'))!.message, /bad address "010\.0\.0\.0".*"010\.0\.0\.0\/8"/);
  t.regex(t.throws(() => parsePrefix('10.0.0.0/33'))!.message, /bad length "33": want 0-32.*"10\.0\.0\.0\/33"/);
});
