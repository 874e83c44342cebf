/**
 * The overlay probe `isthmus ping` sends (docs/PROTOCOL.md §1.1): an IPv4 packet from the
 * sender's virtual IP to the peer's, carried like any other packet inside the WireGuard
 * session, through the relay (and the relay mesh). The peer's AGENT answers it (the peer's
 * kernel never sees it), after decryption and cryptokey routing, before its inbound filter —
 * like Tailscale's TSMP ping. The reply says which relay the peer is bound to (so the sender
 * can tell a mesh hop) and what the policy lets the sender open towards the peer.
 *
 *   IPv4 header (20 bytes, protocol PROBE_IP_PROTO = 253, RFC 3692 experimentation), then:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                  magic "ISPB" (0x49 0x53 0x50 0x42)           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  kind 1 req   |   reserved: senders zero, receivers ignore    |
 *   |       2 reply |                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                     probe id (echoed in the reply)            |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   | relay id len  |  relay id (UTF-8; the replier's relay, reply only) ...
 *   +-+-+-+-+-+-+-+-+
 *   | allowed len   |  allowed (ASCII: what the REQUESTER may open towards the replier, as
 *   +-+-+-+-+-+-+-+-+  `isthmus status` writes it: `*`, `none`, `tcp/22,icmp`; reply only)
 *   | zero padding to PROBE_REQUEST_SIZE (request)
 *
 * Only packets with the magic are probes: other protocol-253 packets are ordinary traffic.
 * A request is always PROBE_REQUEST_SIZE bytes and a reply never longer, so answering
 * amplifies nothing.
 */
import { ipv4HeaderChecksum, IPV4_MIN_HEADER } from './ip-packet';

/** IP protocol number of probes: 253, "use for experimentation and testing" (RFC 3692). */
export const PROBE_IP_PROTO = 253;
/** Bytes of a probe request, IPv4 header included; replies are at most this long. */
export const PROBE_REQUEST_SIZE = 320;
export const PROBE_KIND_REQUEST = 1;
export const PROBE_KIND_REPLY = 2;
const MAGIC = 0x49535042;
const OFF_KIND = IPV4_MIN_HEADER + 4;
const OFF_ID = IPV4_MIN_HEADER + 8;
const OFF_TEXT = IPV4_MIN_HEADER + 12;
const MAX_TEXT = 255;

export interface ProbeMessage {
  kind: typeof PROBE_KIND_REQUEST | typeof PROBE_KIND_REPLY;
  id: number;
  src: number;
  dst: number;
  /** Reply: the relay id the replier is authenticated to ('' when none or direct). */
  relayId: string;
  /** Reply: what the requester may open towards the replier (`*`, `none`, specs). */
  allowed: string;
}

/** Write a probe at `buf[off..]` (room for PROBE_REQUEST_SIZE bytes); returns its length. */
export function encodeProbe(buf: Buffer, off: number, m: ProbeMessage): number {
  const relay = Buffer.from(m.relayId, 'utf8').subarray(0, MAX_TEXT);
  const allowed = Buffer.from(m.allowed, 'ascii').subarray(0, PROBE_REQUEST_SIZE - OFF_TEXT - 2 - relay.length);
  const len = m.kind === PROBE_KIND_REQUEST ? PROBE_REQUEST_SIZE : OFF_TEXT + 2 + relay.length + allowed.length;
  buf.fill(0, off, off + len);
  buf[off] = 0x45;
  buf.writeUInt16BE(len, off + 2);
  buf[off + 8] = 64; // TTL
  buf[off + 9] = PROBE_IP_PROTO;
  buf.writeUInt32BE(m.src >>> 0, off + 12);
  buf.writeUInt32BE(m.dst >>> 0, off + 16);
  buf.writeUInt16BE(ipv4HeaderChecksum(buf, off, IPV4_MIN_HEADER), off + 10);
  buf.writeUInt32BE(MAGIC, off + IPV4_MIN_HEADER);
  buf[off + OFF_KIND] = m.kind;
  buf.writeUInt32BE(m.id >>> 0, off + OFF_ID);
  let p = off + OFF_TEXT;
  buf[p++] = relay.length;
  relay.copy(buf, p);
  p += relay.length;
  buf[p++] = allowed.length;
  allowed.copy(buf, p);
  return len;
}

/**
 * Is the IPv4 packet of `len` bytes at `buf[off..]` a probe? Protocol 253 with a 20-byte header
 * and the magic: other protocol-253 traffic (an experiment of the member's own) passes on as
 * any packet does. One byte read for everything else.
 */
export function isProbePacket(buf: Uint8Array, off: number, len: number): boolean {
  return buf[off + 9] === PROBE_IP_PROTO && len >= OFF_TEXT + 2 && buf[off] === 0x45
    && buf[off + 20] === 0x49 && buf[off + 21] === 0x53 && buf[off + 22] === 0x50 && buf[off + 23] === 0x42;
}

/** Parse a probe packet of `len` bytes (a whole IPv4 packet); undefined when malformed. */
export function decodeProbe(buf: Buffer, off: number, len: number): ProbeMessage | undefined {
  const ihl = (buf[off] & 0x0f) * 4;
  if (ihl !== IPV4_MIN_HEADER || len < OFF_TEXT + 2 || buf[off + 9] !== PROBE_IP_PROTO) return undefined;
  if (buf.readUInt32BE(off + IPV4_MIN_HEADER) !== MAGIC) return undefined;
  const kind = buf[off + OFF_KIND];
  if (kind !== PROBE_KIND_REQUEST && kind !== PROBE_KIND_REPLY) return undefined;
  const end = off + len;
  let p = off + OFF_TEXT;
  const rl = buf[p++];
  if (p + rl + 1 > end) return undefined;
  const relayId = buf.toString('utf8', p, p + rl);
  p += rl;
  const al = buf[p++];
  if (p + al > end) return undefined;
  const allowed = buf.toString('ascii', p, p + al);
  return {
    kind, id: buf.readUInt32BE(off + OFF_ID), src: buf.readUInt32BE(off + 12), dst: buf.readUInt32BE(off + 16), relayId, allowed,
  };
}
