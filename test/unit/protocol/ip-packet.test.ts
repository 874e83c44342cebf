import test from 'ava';
import fc from 'fast-check';
import {
  parseIpPacket, newIpHeader, ipv4HeaderChecksum, ipv4HeaderChecksumValid, onesComplementSum,
} from '../../../protocol/ip-packet';

/** Wikipedia's worked example: checksum b861. */
const EXAMPLE = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');

function buildV4(f: { ihl: number; total: number; proto: number; ttl: number; frag: number; src: number; dst: number; extra: number }): Buffer {
  const b = Buffer.alloc(f.total + f.extra);
  b[0] = 0x40 | f.ihl;
  b.writeUInt16BE(f.total, 2);
  b.writeUInt16BE(f.frag, 6);
  b[8] = f.ttl;
  b[9] = f.proto;
  b.writeUInt32BE(f.src, 12);
  b.writeUInt32BE(f.dst, 16);
  for (let i = 20; i < f.total + f.extra; i++) b[i] = (i * 7) & 255;
  b.writeUInt16BE(ipv4HeaderChecksum(b, 0, f.ihl * 4), 10);
  return b;
}

const v4Fields = fc.integer({ min: 5, max: 15 }).chain((ihl) => fc.record({
  ihl: fc.constant(ihl),
  total: fc.integer({ min: ihl * 4, max: 1500 }),
  proto: fc.integer({ min: 0, max: 255 }),
  ttl: fc.integer({ min: 0, max: 255 }),
  frag: fc.integer({ min: 0, max: 0xffff }),
  src: fc.nat({ max: 0xffffffff }),
  dst: fc.nat({ max: 0xffffffff }),
  extra: fc.integer({ min: 0, max: 15 }),
}));

test('known checksum vector', (t) => {
  t.is(ipv4HeaderChecksum(EXAMPLE, 0, 20), 0xb861);
  const b = Buffer.from(EXAMPLE);
  b.writeUInt16BE(0xb861, 10);
  t.is(ipv4HeaderChecksum(b, 0, 20), 0xb861, 'stored field is ignored');
  t.true(ipv4HeaderChecksumValid(b, 0, 20));
  b[15] ^= 1;
  t.false(ipv4HeaderChecksumValid(b, 0, 20));
});

test('parses the example header', (t) => {
  const b = Buffer.concat([EXAMPLE, Buffer.alloc(0x73 - 20 + 9)]); // plus WireGuard-style padding
  const h = newIpHeader();
  t.is(parseIpPacket(b, 0, b.length, h), 'ok');
  t.is(h.version, 4);
  t.is(h.headerLength, 20);
  t.is(h.totalLength, 0x73);
  t.is(h.protocol, 17);
  t.is(h.ttl, 64);
  t.is(h.src, 0xc0a80001);
  t.is(h.dst, 0xc0a800c7);
  t.is(h.fragmentOffset, 0);
  t.false(h.moreFragments);
});

test('drop reasons', (t) => {
  const h = newIpHeader();
  const ok = Buffer.concat([EXAMPLE, Buffer.alloc(0x73 - 20)]);
  t.is(parseIpPacket(ok, 0, 0, h), 'empty');
  t.is(parseIpPacket(ok, 0, 19, h), 'truncated');
  t.is(parseIpPacket(ok, 0, 0x72, h), 'truncated');
  t.is(parseIpPacket(ok, 1, ok.length, h), 'truncated', 'region past the buffer');
  const v = Buffer.from(ok); v[0] = 0x55;
  t.is(parseIpPacket(v, 0, v.length, h), 'bad-version');
  const ihl = Buffer.from(ok); ihl[0] = 0x44;
  t.is(parseIpPacket(ihl, 0, ihl.length, h), 'bad-header-length');
  const tot = Buffer.from(ok); tot.writeUInt16BE(19, 2);
  t.is(parseIpPacket(tot, 0, tot.length, h), 'bad-total-length');
  const opt = Buffer.from(ok); opt[0] = 0x4f; opt.writeUInt16BE(59, 2);
  t.is(parseIpPacket(opt, 0, opt.length, h), 'bad-total-length', 'IHL 60 > total 59');
});

test('IPv6 parses (for counting), not routed', (t) => {
  const b = Buffer.alloc(40 + 8 + 3);
  b[0] = 0x60;
  b.writeUInt16BE(8, 4);
  b[6] = 17; b[7] = 33;
  b.writeUInt32BE(0x20010db8, 8); b.writeUInt32BE(1, 20);
  b.writeUInt32BE(0xfe800000, 24); b.writeUInt32BE(0xffffffff, 36);
  const h = newIpHeader();
  t.is(parseIpPacket(b, 0, b.length, h), 'ok');
  t.is(h.version, 6);
  t.is(h.totalLength, 48);
  t.is(h.protocol, 17);
  t.is(h.ttl, 33);
  t.deepEqual([...h.src6], [0x20010db8, 0, 0, 1]);
  t.deepEqual([...h.dst6], [0xfe800000, 0, 0, 0xffffffff]);
  t.is(parseIpPacket(b, 0, 47, h), 'truncated');
  t.is(parseIpPacket(b, 0, 39, h), 'truncated');
});

test('property: valid IPv4 packets parse back to their fields, at any offset', (t) => {
  const h = newIpHeader();
  fc.assert(fc.property(v4Fields, fc.nat(64), (f, pre) => {
    const p = buildV4(f);
    const b = Buffer.concat([Buffer.alloc(pre, 0xee), p]);
    if (parseIpPacket(b, pre, p.length, h) !== 'ok') return false;
    if (!ipv4HeaderChecksumValid(b, pre, f.ihl * 4)) return false;
    return h.version === 4 && h.headerLength === f.ihl * 4 && h.totalLength === f.total && h.protocol === f.proto
      && h.ttl === f.ttl && h.src === f.src && h.dst === f.dst && h.fragmentOffset === (f.frag & 0x1fff)
      && h.moreFragments === ((f.frag & 0x2000) !== 0);
  }), { numRuns: 3000 });
  t.pass();
});

const REASONS = new Set(['ok', 'empty', 'bad-version', 'truncated', 'bad-header-length', 'bad-total-length']);

function invariantsHold(r: string, h: ReturnType<typeof newIpHeader>, len: number): boolean {
  if (!REASONS.has(r)) return false;
  if (r !== 'ok') return true;
  return h.headerLength <= h.totalLength && h.totalLength <= len && (h.version === 4 ? h.headerLength >= 20 : h.headerLength === 40);
}

test('property: random bytes never throw and results are consistent', (t) => {
  const h = newIpHeader();
  let oks = 0;
  fc.assert(fc.property(fc.uint8Array({ maxLength: 120, size: 'max' }), fc.integer({ min: -5, max: 130 }), fc.integer({ min: -2, max: 10 }), fc.boolean(), (bytes, len, off, plausible) => {
    if (bytes.length > 0 && (bytes[0] >> 4) !== 4 && (bytes[0] >> 4) !== 6) bytes[0] = (bytes[0] & 0x0f) | (bytes[1] & 1 ? 0x40 : 0x60);
    if (plausible && bytes.length >= 8) {
      // Nudge the length fields near the truth so that many inputs get past the checks.
      off = 0;
      len = bytes.length;
      const slack = bytes[1] % 8;
      if (bytes[0] >> 4 === 4) {
        bytes[0] = 0x40 | (5 + (bytes[1] % 3));
        Buffer.from(bytes.buffer, bytes.byteOffset).writeUInt16BE(Math.max(0, len - slack), 2);
      } else {
        Buffer.from(bytes.buffer, bytes.byteOffset).writeUInt16BE(Math.max(0, len - 40 - slack), 4);
      }
    }
    const r = parseIpPacket(bytes, off, len, h);
    if (r === 'ok') oks++;
    return invariantsHold(r, h, len);
  }), { numRuns: 5000 });
  t.log(`${oks} random inputs parsed as ok`);
  t.true(oks > 200, 'the generator reaches the success path');
});

test('property: mutated valid packets never throw and results are consistent', (t) => {
  const h = newIpHeader();
  fc.assert(fc.property(v4Fields, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(), (f, muts, cut) => {
    const b = buildV4(f);
    for (const [pos, val] of muts) b[pos % Math.min(b.length, 24)] = val;
    const len = cut % (b.length + 1);
    const r = parseIpPacket(b, 0, len, h);
    return invariantsHold(r, h, len);
  }), { numRuns: 5000 });
  t.pass();
});

test('checksum agrees with a plain RFC 1071 reference', (t) => {
  fc.assert(fc.property(fc.integer({ min: 5, max: 15 }).chain((ihl) => fc.uint8Array({ minLength: ihl * 4, maxLength: ihl * 4 })), (hdr) => {
    const b = Buffer.from(hdr);
    const want = (() => {
      const z = Buffer.from(b); z[10] = 0; z[11] = 0;
      let s = 0;
      for (let i = 0; i < z.length; i += 2) s += z.readUInt16BE(i);
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      return (~s) & 0xffff;
    })();
    const got = ipv4HeaderChecksum(b, 0, b.length);
    // 0x0000 and 0xffff are the same one's-complement value (only for an all-zero header).
    if (got !== want && !(got === 0 && want === 0xffff)) return false;
    b.writeUInt16BE(got, 10);
    return ipv4HeaderChecksumValid(b, 0, b.length) || got === 0;
  }), { numRuns: 3000 });
  t.is(onesComplementSum(Buffer.from([0xff]), 0, 1), 0xff00);
});
