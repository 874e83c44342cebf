import test from 'ava';
import fc from 'fast-check';
import { buildIcmpUnreachable, IcmpSkip, UnreachableCode, ICMP_UNREACHABLE_MAX_SIZE } from '../../../protocol/icmp';
import { parseIpPacket, newIpHeader, ipv4HeaderChecksumValid, onesComplementSum, ipv4HeaderChecksum } from '../../../protocol/ip-packet';

/** A TCP SYN-like IPv4 packet from src to dst with `payload` bytes after the header. */
function offender(src: number, dst: number, opts: { ihl?: number; payload?: number; proto?: number; first?: number; frag?: number } = {}): Buffer {
  const ihl = opts.ihl ?? 5;
  const total = ihl * 4 + (opts.payload ?? 40);
  const b = Buffer.alloc(total);
  b[0] = 0x40 | ihl;
  b.writeUInt16BE(total, 2);
  b.writeUInt16BE(0x1234, 4);
  b.writeUInt16BE(opts.frag ?? 0x4000, 6);
  b[8] = 63;
  b[9] = opts.proto ?? 6;
  b.writeUInt32BE(src, 12);
  b.writeUInt32BE(dst, 16);
  for (let i = 20; i < total; i++) b[i] = i & 0xff;
  if (opts.first !== undefined && total > ihl * 4) b[ihl * 4] = opts.first;
  b.writeUInt16BE(ipv4HeaderChecksum(b, 0, ihl * 4), 10);
  return b;
}

function checkReply(t: import('ava').ExecutionContext, pkt: Buffer, reply: Buffer, code: number, from: number): void {
  const h = newIpHeader();
  t.is(parseIpPacket(reply, 0, reply.length, h), 'ok');
  t.is(h.totalLength, reply.length);
  t.is(h.protocol, 1);
  t.is(h.src, from);
  t.is(h.dst, pkt.readUInt32BE(12));
  t.true(ipv4HeaderChecksumValid(reply, 0, 20), 'IP checksum');
  t.is(reply[20], 3);
  t.is(reply[21], code);
  t.is(onesComplementSum(reply, 20, reply.length - 20), 0xffff, 'ICMP checksum');
  const hl = (pkt[0] & 15) * 4;
  const quoteLen = hl + Math.min(8, pkt.length - hl);
  t.is(reply.length, 28 + quoteLen);
  t.deepEqual(reply.subarray(28), pkt.subarray(0, quoteLen), 'quotes header + 8 bytes');
}

test('host unreachable for a TCP packet, parsed back', (t) => {
  const pkt = offender(0x64400005, 0x0a000063);
  const out = Buffer.alloc(200, 0xcc);
  const n = buildIcmpUnreachable(pkt, 0, pkt.length, UnreachableCode.HOST, 0x0a000063, out, 10);
  t.is(n, 20 + 8 + 28);
  checkReply(t, pkt, out.subarray(10, 10 + n), 1, 0x0a000063);
  t.is(out[9], 0xcc, 'nothing written before outOff');
  t.is(out[10 + n], 0xcc, 'nothing written after the reply');
});

test('codes, options in the offending header and short payloads', (t) => {
  for (const code of [UnreachableCode.NET, UnreachableCode.HOST, UnreachableCode.ADMIN_PROHIBITED]) {
    for (const [ihl, payload] of [[5, 0], [5, 3], [6, 8], [15, 100]]) {
      const pkt = offender(0xc0a80101, 0xc0a80202, { ihl, payload });
      const out = Buffer.alloc(ICMP_UNREACHABLE_MAX_SIZE);
      const n = buildIcmpUnreachable(pkt, 0, pkt.length, code, 0x01020304, out, 0);
      t.true(n > 0);
      checkReply(t, pkt, out.subarray(0, n), code, 0x01020304);
    }
  }
});

test('no error about errors, fragments, bad sources; bad input and no room', (t) => {
  const out = Buffer.alloc(200);
  const b = (p: Buffer) => buildIcmpUnreachable(p, 0, p.length, 1, 0x0a000001, out, 0);
  t.is(b(offender(0x0a000002, 0x0a000003, { proto: 1, first: 3 })), IcmpSkip.ICMP_ERROR);
  t.is(b(offender(0x0a000002, 0x0a000003, { proto: 1, first: 11 })), IcmpSkip.ICMP_ERROR);
  t.true(b(offender(0x0a000002, 0x0a000003, { proto: 1, first: 8 })) > 0, 'echo request gets an error');
  t.is(b(offender(0x0a000002, 0x0a000003, { frag: 0x0010 })), IcmpSkip.FRAGMENT);
  t.true(b(offender(0x0a000002, 0x0a000003, { frag: 0x2000 })) > 0, 'first fragment gets an error');
  t.is(b(offender(0, 0x0a000003)), IcmpSkip.BAD_SOURCE);
  t.is(b(offender(0x7f000001, 0x0a000003)), IcmpSkip.BAD_SOURCE);
  t.is(b(offender(0xe0000001, 0x0a000003)), IcmpSkip.BAD_SOURCE);
  t.is(b(offender(0x0a000002, 0xe0000001)), IcmpSkip.BAD_SOURCE);
  t.is(b(offender(0x0a000002, 0xffffffff)), IcmpSkip.BAD_SOURCE);
  const p = offender(0x0a000002, 0x0a000003);
  t.is(buildIcmpUnreachable(p, 0, 19, 1, 1, out, 0), IcmpSkip.MALFORMED);
  t.is(buildIcmpUnreachable(p, 0, p.length - 1, 1, 1, out, 0), IcmpSkip.MALFORMED, 'total length beyond the region');
  t.is(buildIcmpUnreachable(p, 0, p.length, 1, 1, Buffer.alloc(40), 0), IcmpSkip.NO_ROOM);
});

test('property: never throws; every reply built parses with valid checksums', (t) => {
  const out = Buffer.alloc(ICMP_UNREACHABLE_MAX_SIZE + 4);
  let built = 0;
  fc.assert(fc.property(
    fc.record({ src: fc.nat({ max: 0xffffffff }), dst: fc.nat({ max: 0xffffffff }), ihl: fc.integer({ min: 5, max: 15 }),
      payload: fc.nat(60), proto: fc.constantFrom(1, 6, 17, 47), first: fc.nat(255), frag: fc.constantFrom(0, 0x4000, 0x2000, 0x0001) }),
    fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 3 }), fc.nat(255), fc.nat({ max: 0xffffffff }),
    (f, muts, code, from) => {
      const pkt = offender(f.src, f.dst, f);
      for (const [pos, v] of muts) pkt[pos % pkt.length] = v;
      const n = buildIcmpUnreachable(pkt, 0, pkt.length, code, from, out, 4);
      if (n < 0) return n >= -5;
      built++;
      const r = out.subarray(4, 4 + n);
      const h = newIpHeader();
      return parseIpPacket(r, 0, n, h) === 'ok' && ipv4HeaderChecksumValid(r, 0, 20)
        && onesComplementSum(r, 20, n - 20) === 0xffff && h.src === from >>> 0 && r[21] === code;
    }), { numRuns: 3000 });
  t.true(built > 1000, `built ${built}`);
});
