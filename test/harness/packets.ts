/**
 * IPv4 packets for tests: real TCP/UDP/ICMP with correct lengths and checksums (IPv4 header,
 * TCP/UDP pseudo-header, ICMP), optional IP options and fragment fields; and a bare packet of
 * an experimental protocol for tests of the data path that need no transport header.
 */
import { parseAddr } from '../../common/ipv4';
import { ipv4HeaderChecksum, onesComplementSum, IP_PROTO_ICMP, IP_PROTO_TCP, IP_PROTO_UDP } from '../../protocol/ip-packet';

export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export interface Ipv4Fields {
  src: string;
  dst: string;
  proto: number;
  /** Fragment offset in 8-byte blocks, and the MF flag. */
  fragOffset?: number;
  moreFragments?: boolean;
  /** 32-bit words of IP options (NOPs). */
  optionWords?: number;
}

export function ipv4(f: Ipv4Fields, payload: Buffer): Buffer {
  const hl = 20 + 4 * (f.optionWords ?? 0);
  const p = Buffer.alloc(hl + payload.length);
  p[0] = 0x40 | (hl / 4);
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(0x1234, 4);
  p.writeUInt16BE(((f.moreFragments ? 1 : 0) << 13) | (f.fragOffset ?? 0), 6);
  p[8] = 64;
  p[9] = f.proto;
  p.writeUInt32BE(parseAddr(f.src), 12);
  p.writeUInt32BE(parseAddr(f.dst), 16);
  p.fill(1, 20, hl); // NOP options
  p.writeUInt16BE(ipv4HeaderChecksum(p, 0, hl), 10);
  payload.copy(p, hl);
  return p;
}

function pseudoSum(src: string, dst: string, proto: number, seg: Buffer): number {
  const ph = Buffer.alloc(12);
  ph.writeUInt32BE(parseAddr(src), 0);
  ph.writeUInt32BE(parseAddr(dst), 4);
  ph[9] = proto;
  ph.writeUInt16BE(seg.length, 10);
  return onesComplementSum(seg, 0, seg.length, onesComplementSum(ph, 0, 12));
}

export function tcp(src: string, dst: string, sport: number, dport: number, flags: number, dataLen = 0): Buffer {
  const seg = Buffer.alloc(20 + dataLen);
  seg.writeUInt16BE(sport, 0);
  seg.writeUInt16BE(dport, 2);
  seg.writeUInt32BE(1000, 4);
  seg.writeUInt32BE(flags & TCP_FLAGS.ACK ? 2000 : 0, 8);
  seg[12] = 5 << 4;
  seg[13] = flags;
  seg.writeUInt16BE(65535, 14);
  seg.writeUInt16BE((~pseudoSum(src, dst, IP_PROTO_TCP, seg)) & 0xffff, 16);
  return ipv4({ src, dst, proto: IP_PROTO_TCP }, seg);
}

export function udp(src: string, dst: string, sport: number, dport: number, data: number | Buffer = 0): Buffer {
  const body = typeof data === 'number' ? Buffer.alloc(data) : data;
  const seg = Buffer.alloc(8 + body.length);
  body.copy(seg, 8);
  seg.writeUInt16BE(sport, 0);
  seg.writeUInt16BE(dport, 2);
  seg.writeUInt16BE(seg.length, 4);
  seg.writeUInt16BE((~pseudoSum(src, dst, IP_PROTO_UDP, seg)) & 0xffff || 0xffff, 6);
  return ipv4({ src, dst, proto: IP_PROTO_UDP }, seg);
}

/** ICMP with the 4 bytes after the checksum as id/seq (echo) or unused (errors), then `data`. */
export function icmp(src: string, dst: string, type: number, code: number, id: number, seq: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const m = Buffer.alloc(8 + data.length);
  m[0] = type;
  m[1] = code;
  m.writeUInt16BE(id, 4);
  m.writeUInt16BE(seq, 6);
  data.copy(m, 8);
  m.writeUInt16BE((~onesComplementSum(m, 0, m.length)) & 0xffff, 2);
  return ipv4({ src, dst, proto: IP_PROTO_ICMP }, m);
}

export const echoRequest = (src: string, dst: string, id: number, seq = 1, dataLen = 56): Buffer => icmp(src, dst, 8, 0, id, seq, Buffer.alloc(dataLen, 0x61));
export const echoReply = (src: string, dst: string, id: number, seq = 1, dataLen = 56): Buffer => icmp(src, dst, 0, 0, id, seq, Buffer.alloc(dataLen, 0x61));
/** An ICMP error (type 3 unreachable by default) quoting the first 28 bytes of `offender`. */
export const icmpError = (src: string, dst: string, offender: Buffer, type = 3, code = 3): Buffer =>
  icmp(src, dst, type, code, 0, 0, offender.subarray(0, 28));

/** A packet of protocol 253 (RFC 3692, experimental): no transport header to parse, so the
 *  flow filter passes it under `*` only. For tests of the data path itself. */
export function ipv4Packet(src: string, dst: string, payload = Buffer.from('hello overlay')): Buffer {
  return ipv4({ src, dst, proto: 253 }, payload);
}

/** An ICMP echo request (type 8) or reply (type 0), as `ping` sends it. */
export function icmpEcho(src: string, dst: string, o: { id?: number; seq?: number; payload?: Buffer; reply?: boolean } = {}): Buffer {
  return icmp(src, dst, o.reply ? 0 : 8, 0, o.id ?? 0x1234, o.seq ?? 1, o.payload ?? Buffer.from('isthmus ping payload 0123456789'));
}

/** A UDP datagram carrying `payload`. */
export function udpPacket(src: string, srcPort: number, dst: string, dstPort: number, payload: Buffer): Buffer {
  return udp(src, dst, srcPort, dstPort, payload);
}
