/** Minimal IPv4 packets for engine tests (protocol 253, experimental: no transport header needed). */
import { parseAddr } from '../../common/ipv4';

export function ipv4Packet(src: string, dst: string, payload = Buffer.from('hello overlay')): Buffer {
  const p = Buffer.alloc(20 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 253; // RFC 3692 experimental: no transport header to parse (the flow filter passes it under `*` only)
  p.writeUInt32BE(parseAddr(src), 12);
  p.writeUInt32BE(parseAddr(dst), 16);
  payload.copy(p, 20);
  return p;
}

/** Internet checksum over `buf` (RFC 1071). */
function checksum(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A complete IPv4 packet (valid header checksum) carrying `body` as protocol `proto`. */
function ipv4(src: string, dst: string, proto: number, body: Buffer, id = 1): Buffer {
  const p = Buffer.alloc(20 + body.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(id & 0xffff, 4);
  p[8] = 64;
  p[9] = proto;
  p.writeUInt32BE(parseAddr(src), 12);
  p.writeUInt32BE(parseAddr(dst), 16);
  p.writeUInt16BE(checksum(p.subarray(0, 20)), 10);
  body.copy(p, 20);
  return p;
}

/** An ICMP echo request (type 8) or reply (type 0), checksums valid, as `ping` sends it. */
export function icmpEcho(src: string, dst: string, o: { id?: number; seq?: number; payload?: Buffer; reply?: boolean } = {}): Buffer {
  const payload = o.payload ?? Buffer.from('isthmus ping payload 0123456789');
  const icmp = Buffer.alloc(8 + payload.length);
  icmp[0] = o.reply ? 0 : 8;
  icmp.writeUInt16BE(o.id ?? 0x1234, 4);
  icmp.writeUInt16BE(o.seq ?? 1, 6);
  payload.copy(icmp, 8);
  icmp.writeUInt16BE(checksum(icmp), 2);
  return ipv4(src, dst, 1, icmp, o.seq ?? 1);
}

/** A UDP datagram in IPv4 (the UDP checksum left 0: "none", allowed over IPv4). */
export function udpPacket(src: string, srcPort: number, dst: string, dstPort: number, payload: Buffer): Buffer {
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(srcPort, 0);
  udp.writeUInt16BE(dstPort, 2);
  udp.writeUInt16BE(udp.length, 4);
  payload.copy(udp, 8);
  return ipv4(src, dst, 17, udp);
}
