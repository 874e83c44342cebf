/** Minimal IPv4 packets for engine tests (UDP protocol number, no UDP header needed). */
import { parseAddr } from '../../common/ipv4';

export function ipv4Packet(src: string, dst: string, payload = Buffer.from('hello overlay')): Buffer {
  const p = Buffer.alloc(20 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  p.writeUInt32BE(parseAddr(src), 12);
  p.writeUInt32BE(parseAddr(dst), 16);
  payload.copy(p, 20);
  return p;
}
