/** Packets laid out as a TUN or UDP receive slab, for the engine's batch entry points. */
import type { DatagramBatch } from '../../../common/packet-io';

const SLOT = 2048;

/**
 * One packet per 2048-byte slot, `headroom` free bytes in front of each; `addrs[i]` and
 * `ports[i]` are the sources (a number: the same for all). Also a valid PacketBatch.
 */
export function slab(packets: Buffer[], headroom: number, addr: number | number[] = 0, port: number | number[] = 0): DatagramBatch {
  const data = Buffer.alloc(Math.max(1, packets.length) * SLOT);
  const n = packets.length;
  const b: DatagramBatch = {
    count: n, data, offsets: new Uint32Array(n), lengths: new Uint32Array(n), addrs: new Uint32Array(n), ports: new Uint32Array(n),
  };
  packets.forEach((p, i) => {
    b.offsets[i] = i * SLOT + headroom;
    b.lengths[i] = p.length;
    b.addrs[i] = Array.isArray(addr) ? addr[i] : addr;
    b.ports[i] = Array.isArray(port) ? port[i] : port;
    p.copy(data, b.offsets[i]);
  });
  return b;
}
