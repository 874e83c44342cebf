/**
 * TUN offloads in the addon (src/offload_linux.c), through its JS binding: the TSO split of
 * a read (virtio_net_hdr + super-packet → segments <= MTU with their own checksums), the
 * GRO-style coalescing of a write batch, and malformed vnet headers (dropped, never a crash).
 * Checksums are checked by a reference implementation here (RFC 1071, big-endian words).
 */
import test from 'ava';
import fc from 'fast-check';
import { nativeAvailable, tunOffloadCoalesce, tunOffloadSplit, VNET_HDR_LEN } from '../../../native-bindings';

const available = nativeAvailable();
const t = available ? test : test.skip;
if (!available) console.log('native addon not built (npm run install): skipping TUN offload tests');

const NEEDS_CSUM = 1;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const GSO_UDP_L4 = 5;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;

function sum16(buf: Uint8Array, start = 0, end = buf.length, init = 0): number {
  let s = init;
  for (let i = start; i + 1 < end; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if ((end - start) % 2 === 1) s += buf[end - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function pseudo(ip: Buffer, l4len: number): number {
  return sum16(Buffer.concat([ip.subarray(12, 20), Buffer.from([0, ip[9]!, l4len >> 8, l4len & 0xff])]));
}

/** Both checksums of an IPv4 packet verify (TCP or UDP behind a 20-byte header). */
function checksumsOk(p: Buffer): boolean {
  if (sum16(p, 0, 20) !== 0xffff) return false;
  return sum16(p, 20, p.length, pseudo(p, p.length - 20)) === 0xffff;
}

interface Tcp {
  src?: number; dst?: number; sport?: number; dport?: number; seq?: number; ack?: number;
  flags?: number; window?: number; options?: Buffer; id?: number; ttl?: number; payload: Buffer;
}

/** An IPv4/TCP packet with valid checksums (or, with `partial`, the TCP field holding the
 *  folded pseudo-header sum, as the kernel hands a CHECKSUM_PARTIAL packet over). */
function tcpPacket(o: Tcp, partial = false): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const thl = 20 + opts.length;
  const p = Buffer.alloc(20 + thl + o.payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(o.id ?? 7, 4);
  p.writeUInt16BE(0x4000, 6); // DF
  p[8] = o.ttl ?? 64;
  p[9] = 6;
  p.writeUInt32BE(o.src ?? 0x0a000001, 12);
  p.writeUInt32BE(o.dst ?? 0x0a000002, 16);
  p.writeUInt16BE(0xffff - sum16(p, 0, 20), 10);
  p.writeUInt16BE(o.sport ?? 40000, 20);
  p.writeUInt16BE(o.dport ?? 5201, 22);
  p.writeUInt32BE((o.seq ?? 1000) >>> 0, 24);
  p.writeUInt32BE((o.ack ?? 1) >>> 0, 28);
  p[32] = (thl / 4) << 4;
  p[33] = o.flags ?? ACK;
  p.writeUInt16BE(o.window ?? 502, 34);
  opts.copy(p, 40);
  o.payload.copy(p, 20 + thl);
  const ps = pseudo(p, p.length - 20);
  p.writeUInt16BE(partial ? ps : 0xffff - sum16(p, 20, p.length, ps), 36);
  return p;
}

function vnet(flags: number, type: number, hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number): Buffer {
  const h = Buffer.alloc(VNET_HDR_LEN);
  h[0] = flags;
  h[1] = type;
  h.writeUInt16LE(hdrLen, 2);
  h.writeUInt16LE(gsoSize, 4);
  h.writeUInt16LE(csumStart, 6);
  h.writeUInt16LE(csumOffset, 8);
  return h;
}

/** A TSO read as the kernel hands it over: TCPV4 vnet header + super-packet. */
function superRead(o: Tcp, mss: number): Buffer {
  const p = tcpPacket(o, true);
  const hdrLen = 20 + (p[32]! >> 4) * 4;
  return Buffer.concat([vnet(NEEDS_CSUM, GSO_TCPV4, hdrLen, mss, 20, 16), p]);
}

const tsOption = (v: number) => Buffer.from([1, 1, 8, 10, v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff, 0, 0, 0, 1]);

const superArb = fc.record({
  payload: fc.uint8Array({ minLength: 1, maxLength: 65535 - 52 }).map((a) => Buffer.from(a)),
  mss: fc.integer({ min: 1, max: 1448 }),
  seq: fc.nat({ max: 0xffffffff }),
  ack: fc.nat({ max: 0xffffffff }),
  id: fc.nat({ max: 0xffff }),
  psh: fc.boolean(),
  ts: fc.option(fc.nat({ max: 0xffffffff }), { nil: undefined }),
});

t('split: segments <= maxLen with valid checksums, in sequence, payloads concatenating to the original', (tt) => {
  fc.assert(fc.property(superArb, fc.boolean(), (x, fin) => {
    const options = x.ts === undefined ? undefined : tsOption(x.ts);
    const flags = ACK | (x.psh ? PSH : 0) | (fin ? FIN : 0);
    const thl = 20 + (options?.length ?? 0);
    const input = superRead({ payload: x.payload, seq: x.seq, ack: x.ack, id: x.id, flags, options }, x.mss);
    const maxLen = 20 + thl + x.mss;
    const segs = tunOffloadSplit(input, maxLen);
    if (segs === null) return false;
    const n = Math.ceil(x.payload.length / x.mss);
    if (segs.length !== n) return false;
    const parts: Buffer[] = [];
    for (let k = 0; k < n; k++) {
      const s = segs[k]!;
      if (s.length > maxLen || s.readUInt16BE(2) !== s.length || !checksumsOk(s)) return false;
      if (s.readUInt32BE(24) !== ((x.seq + k * x.mss) >>> 0)) return false;
      if (s.readUInt16BE(4) !== ((x.id + k) & 0xffff) || s.readUInt32BE(28) !== x.ack) return false;
      const last = k === n - 1;
      if (s[33] !== (last ? flags : ACK)) return false;
      if (!s.subarray(40, 20 + thl).equals(options ?? Buffer.alloc(0))) return false;
      parts.push(s.subarray(20 + thl));
    }
    return Buffer.concat(parts).equals(x.payload);
  }), { numRuns: 150 });
  tt.pass();
});

t('coalesce(split(x)) == x for in-order segments; the vnet header says TCPV4 with the segment size', (tt) => {
  fc.assert(fc.property(superArb, (x) => {
    fc.pre(x.payload.length > x.mss);
    const options = x.ts === undefined ? undefined : tsOption(x.ts);
    const input = superRead({ payload: x.payload, seq: x.seq, ack: x.ack, id: x.id, flags: ACK | (x.psh ? PSH : 0), options }, x.mss);
    const segs = tunOffloadSplit(input, 65535)!;
    const out = tunOffloadCoalesce(segs);
    return out.length === 1 && out[0]!.equals(input);
  }), { numRuns: 150 });
  tt.pass();
});

t('a packet without GSO is passed whole; a checksum the kernel left to us is completed', (tt) => {
  const plain = tcpPacket({ payload: Buffer.from('hello') });
  tt.deepEqual(tunOffloadSplit(Buffer.concat([vnet(0, GSO_NONE, 0, 0, 0, 0), plain]), 1420), [plain]);
  // UDP with CHECKSUM_PARTIAL: the field holds the pseudo-header sum.
  const udp = Buffer.alloc(20 + 8 + 11);
  udp[0] = 0x45;
  udp.writeUInt16BE(udp.length, 2);
  udp[8] = 64;
  udp[9] = 17;
  udp.writeUInt32BE(0x0a000001, 12);
  udp.writeUInt32BE(0x0a000002, 16);
  udp.writeUInt16BE(0xffff - sum16(udp, 0, 20), 10);
  udp.writeUInt16BE(5000, 20);
  udp.writeUInt16BE(53, 22);
  udp.writeUInt16BE(8 + 11, 24);
  Buffer.from('hello world').copy(udp, 28);
  udp.writeUInt16BE(pseudo(udp, 19), 26);
  tt.false(checksumsOk(udp)); // control: not valid as handed over
  const [done] = tunOffloadSplit(Buffer.concat([vnet(NEEDS_CSUM, GSO_NONE, 0, 0, 20, 6), udp]), 1420)!;
  tt.true(checksumsOk(done!));
  tt.true(done!.subarray(28).equals(udp.subarray(28)));
});

t('malformed vnet headers and GSO packets are refused (null), valid controls are not', (tt) => {
  const payload = Buffer.alloc(3000, 0xab);
  const good = superRead({ payload }, 1380);
  tt.is(tunOffloadSplit(good, 1420)!.length, 3); // positive control
  const mutate = (f: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };
  tt.is(tunOffloadSplit(good.subarray(0, 5), 1420), null, 'shorter than a vnet header');
  tt.is(tunOffloadSplit(mutate((b) => b.writeUInt16LE(0, 4)), 1420), null, 'gso_size 0');
  tt.is(tunOffloadSplit(mutate((b) => { b[1] = GSO_TCPV6; }), 1420), null, 'TCPV6');
  tt.is(tunOffloadSplit(mutate((b) => { b[1] = GSO_UDP_L4; }), 1420), null, 'UDP_L4 (USO is not asked for)');
  tt.is(tunOffloadSplit(mutate((b) => { b[1] = 9; }), 1420), null, 'unknown gso_type');
  tt.is(tunOffloadSplit(mutate((b) => { b[VNET_HDR_LEN + 9] = 17; }), 1420), null, 'TCPV4 over UDP');
  tt.is(tunOffloadSplit(mutate((b) => { b[VNET_HDR_LEN] = 0x65; }), 1420), null, 'not IPv4');
  tt.is(tunOffloadSplit(mutate((b) => { b[VNET_HDR_LEN] = 0x4f; }), 1420), null, 'IP header beyond the packet');
  tt.is(tunOffloadSplit(mutate((b) => { b[VNET_HDR_LEN + 32] = 0xf0; }), 1420), null, 'TCP header beyond the packet');
  tt.is(tunOffloadSplit(mutate((b) => b.writeUInt16BE(0x2000, VNET_HDR_LEN + 6)), 1420), null, 'a fragment');
  tt.is(tunOffloadSplit(mutate((b) => b.writeUInt16LE(24, 6)), 1420), null, 'csum_start not at TCP');
  tt.is(tunOffloadSplit(good, 1419), null, 'segments longer than maxLen');
  tt.is(tunOffloadSplit(good.subarray(0, VNET_HDR_LEN + 39), 1420), null, 'truncated headers');
  const plain = Buffer.concat([vnet(NEEDS_CSUM, GSO_NONE, 0, 0, 20, 16), tcpPacket({ payload: Buffer.from('x') }, true)]);
  tt.is(tunOffloadSplit(plain, 1420)!.length, 1); // positive control
  tt.is(tunOffloadSplit(Buffer.concat([vnet(NEEDS_CSUM, GSO_NONE, 0, 0, 40, 16), plain.subarray(VNET_HDR_LEN)]), 1420), null, 'checksum field beyond the packet');
  tt.is(tunOffloadSplit(Buffer.concat([vnet(0, GSO_NONE, 0, 0, 0, 0), Buffer.alloc(1500)]), 1420), null, 'plain packet over maxLen');
  // Anything at all: null or segments, never a crash.
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 1, max: 2000 }), (bytes, maxLen) => {
    const r = tunOffloadSplit(bytes, maxLen);
    return r === null || r.every((s) => s.length <= maxLen);
  }), { numRuns: 2000 });
  fc.assert(fc.property(fc.nat({ max: good.length - 1 }), fc.nat({ max: 255 }), (i, v) => {
    const r = tunOffloadSplit(mutate((b) => { b[i] = v; }), 1420);
    return r === null || r.every((s) => s.length <= 1420);
  }), { numRuns: 2000 });
});

t('coalesce merges only what continues one flow: gaps, other acks, bad checksums, flags and other flows stay apart', (tt) => {
  const seg = (k: number, o: Partial<Tcp> = {}) => tcpPacket({ payload: Buffer.alloc(100, k), seq: 1000 + k * 100, ...o });
  const types = (out: Buffer[]) => out.map((b) => (b[1] === GSO_TCPV4 ? `${(b.length - VNET_HDR_LEN - 40) / 100}` : '1'));
  tt.deepEqual(types(tunOffloadCoalesce([seg(0), seg(1), seg(2)])), ['3']); // positive control
  tt.deepEqual(types(tunOffloadCoalesce([seg(0), seg(2)])), ['1', '1'], 'sequence gap');
  tt.deepEqual(types(tunOffloadCoalesce([seg(0), seg(1, { ack: 2 })])), ['1', '1'], 'another ack');
  tt.deepEqual(types(tunOffloadCoalesce([seg(0), seg(1, { window: 7 })])), ['1', '1'], 'another window');
  tt.deepEqual(types(tunOffloadCoalesce([seg(0, { flags: ACK | PSH }), seg(1)])), ['1', '1'], 'PSH ends a run');
  tt.deepEqual(types(tunOffloadCoalesce([seg(0), seg(1, { flags: ACK | FIN })])), ['1', '1'], 'FIN is not merged');
  tt.deepEqual(types(tunOffloadCoalesce([seg(0), seg(1, { ttl: 3 })])), ['1', '1'], 'another TTL');
  const bad = seg(1);
  bad[60] ^= 1; // payload byte: the TCP checksum no longer verifies
  tt.deepEqual(types(tunOffloadCoalesce([seg(0), bad, seg(2)])), ['1', '1', '1'], 'a bad checksum is not hidden in a super-packet');
  // Two flows interleaved: one super-packet each, in the order their runs began.
  const other = (k: number) => seg(k, { sport: 40001 });
  const out = tunOffloadCoalesce([seg(0), other(0), seg(1), other(1), seg(2)]);
  tt.deepEqual(types(out), ['3', '2']);
  tt.is(out[0]!.readUInt16BE(VNET_HDR_LEN + 20), 40000);
  tt.is(out[1]!.readUInt16BE(VNET_HDR_LEN + 20), 40001);
  // A shorter segment ends a run (it must be the last).
  tt.deepEqual(types(tunOffloadCoalesce([seg(0), seg(1, { payload: Buffer.alloc(50) }), tcpPacket({ payload: Buffer.alloc(100), seq: 1150 })])), ['1.5', '1']);
  // Not TCP: passed with a zero header, unchanged.
  const icmp = Buffer.from(seg(0));
  icmp[9] = 1;
  const [z] = tunOffloadCoalesce([icmp]);
  tt.true(z!.subarray(0, VNET_HDR_LEN).equals(Buffer.alloc(VNET_HDR_LEN)));
  tt.true(z!.subarray(VNET_HDR_LEN).equals(icmp));
});
