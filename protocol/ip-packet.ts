/**
 * The minimum of an IP header the data path needs (routing by destination, cryptokey
 * source check, trimming WireGuard's padding), parsed without allocation into a reused object.
 *
 * IPv4 (RFC 791):
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |    DSCP/ECN   |          Total Length         |  0
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Identification        |Flags|     Fragment Offset     |  4
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |      TTL      |    Protocol   |        Header Checksum        |  8
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                         Source Address                        | 12
 *   |                      Destination Address                      | 16
 *   |                    Options (IHL > 5)                          | 20
 *
 * IPv6 (RFC 8200): version(4) class(8) flow(20) | payload length(16) next header(8)
 * hop limit(8) | source(128) at 8 | destination(128) at 24; fixed 40-byte header.
 *
 * Addresses are host-order uint32 (IPv4) or four host-order uint32 words, most significant
 * first (IPv6). The overlay routes IPv4 only; IPv6 parses so callers can count and drop it.
 * Lengths are validated against the buffer region: a region longer than the packet is fine
 * (WireGuard pads plaintext to 16 bytes; use `totalLength`), a shorter one is 'truncated'.
 */
import { readAddr } from '../common';

export const IPV4_MIN_HEADER = 20;
export const IPV6_HEADER = 40;
export const IP_PROTO_ICMP = 1;
export const IP_PROTO_TCP = 6;
export const IP_PROTO_UDP = 17;

export type IpParseResult = 'ok' | 'empty' | 'bad-version' | 'truncated' | 'bad-header-length' | 'bad-total-length';

export interface IpHeader {
  version: 4 | 6;
  /** Bytes of IP header (IPv4: IHL × 4; IPv6: 40, extension headers not walked). */
  headerLength: number;
  /** Bytes of the whole packet per its header (≤ the region's length). */
  totalLength: number;
  /** IPv4 protocol, or IPv6 next header. */
  protocol: number;
  ttl: number;
  /** IPv4 only: fragment offset in 8-byte units and the MF flag. 0/false for IPv6. */
  fragmentOffset: number;
  moreFragments: boolean;
  /** IPv4 addresses (0 for IPv6). */
  src: number;
  dst: number;
  /** IPv6 addresses, four words each (untouched for IPv4). */
  src6: Uint32Array;
  dst6: Uint32Array;
}

export function newIpHeader(): IpHeader {
  return {
    version: 4, headerLength: 0, totalLength: 0, protocol: 0, ttl: 0, fragmentOffset: 0, moreFragments: false,
    src: 0, dst: 0, src6: new Uint32Array(4), dst6: new Uint32Array(4),
  };
}

/** Parse the IP packet in `buf[off, off+len)` into `out`. Never throws; 'ok' or a drop reason. */
export function parseIpPacket(buf: Uint8Array, off: number, len: number, out: IpHeader): IpParseResult {
  if (!(len > 0) || off < 0 || off + len > buf.length) return len === 0 ? 'empty' : 'truncated';
  const version = buf[off] >> 4;
  if (version === 4) {
    if (len < IPV4_MIN_HEADER) return 'truncated';
    const hl = (buf[off] & 0x0f) * 4;
    if (hl < IPV4_MIN_HEADER) return 'bad-header-length';
    const total = (buf[off + 2] << 8) | buf[off + 3];
    if (total < hl) return 'bad-total-length';
    if (total > len) return 'truncated';
    const frag = (buf[off + 6] << 8) | buf[off + 7];
    out.version = 4;
    out.headerLength = hl;
    out.totalLength = total;
    out.protocol = buf[off + 9];
    out.ttl = buf[off + 8];
    out.fragmentOffset = frag & 0x1fff;
    out.moreFragments = (frag & 0x2000) !== 0;
    out.src = readAddr(buf, off + 12);
    out.dst = readAddr(buf, off + 16);
    return 'ok';
  }
  if (version === 6) {
    if (len < IPV6_HEADER) return 'truncated';
    const total = IPV6_HEADER + ((buf[off + 4] << 8) | buf[off + 5]);
    if (total > len) return 'truncated';
    out.version = 6;
    out.headerLength = IPV6_HEADER;
    out.totalLength = total;
    out.protocol = buf[off + 6];
    out.ttl = buf[off + 7];
    out.fragmentOffset = 0;
    out.moreFragments = false;
    out.src = 0;
    out.dst = 0;
    for (let i = 0; i < 4; i++) {
      out.src6[i] = readU32BE(buf, off + 8 + 4 * i);
      out.dst6[i] = readU32BE(buf, off + 24 + 4 * i);
    }
    return 'ok';
  }
  return 'bad-version';
}

/**
 * RFC 1071 one's-complement sum over `buf[off, off+len)` folded to 16 bits (not inverted),
 * starting from `initial`. An odd trailing byte is padded with zero.
 */
export function onesComplementSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (len & 1) sum += buf[off + len - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * The IPv4 header checksum for the header at `off` of `headerLength` bytes, computed as if
 * the checksum field (bytes 10–11) were zero. Write it with `writeUInt16BE(v, off + 10)`;
 * a received header is valid when this equals its stored field.
 */
export function ipv4HeaderChecksum(buf: Uint8Array, off: number, headerLength: number): number {
  const stored = (buf[off + 10] << 8) | buf[off + 11];
  // Sum including the stored field, then take it out again (one's-complement subtraction).
  let sum = onesComplementSum(buf, off, headerLength);
  sum += (~stored) & 0xffff;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return (~sum) & 0xffff;
}

/** True when the stored IPv4 header checksum is correct. */
export function ipv4HeaderChecksumValid(buf: Uint8Array, off: number, headerLength: number): boolean {
  return onesComplementSum(buf, off, headerLength) === 0xffff;
}

function readU32BE(b: Uint8Array, o: number): number {
  return b[o] * 0x1000000 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
}
