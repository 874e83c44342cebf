/**
 * ICMPv4 Destination Unreachable (RFC 792) for a packet we cannot deliver, so a sender to an
 * unknown original IP in transparent mode gets an error at once instead of a hang.
 *
 * Built into a caller buffer:
 *
 *   IPv4 header (20 bytes, no options)        src = `fromAddr`, dst = offender's src,
 *                                             TTL 64, protocol 1, DF clear, checksum
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   type = 3    |     code      |           checksum            |  ICMP
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                     unused (zero)                             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   offender's IP header (with options) + first 8 bytes of data |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The ICMP checksum covers the ICMP header and the quote. Per RFC 1122 §3.2.2 no error is
 * generated about an ICMP error message, a non-first fragment, or a packet from/to a
 * broadcast, multicast, zero or loopback source; those return a negative code instead.
 */
import { writeAddr } from '../common';
import { IP_PROTO_ICMP, IPV4_MIN_HEADER, ipv4HeaderChecksum, onesComplementSum } from './ip-packet';

export const ICMP_DEST_UNREACHABLE = 3;

export const UnreachableCode = {
  NET: 0,
  HOST: 1,
  PROTOCOL: 2,
  PORT: 3,
  ADMIN_PROHIBITED: 13,
} as const;
export type UnreachableCode = (typeof UnreachableCode)[keyof typeof UnreachableCode];

/** Negative results: why no ICMP error is sent (metric labels in ICMP_SKIP_NAMES). */
export const IcmpSkip = {
  MALFORMED: -1,
  ICMP_ERROR: -2,
  FRAGMENT: -3,
  BAD_SOURCE: -4,
  NO_ROOM: -5,
} as const;
export const ICMP_SKIP_NAMES = ['malformed', 'icmp-error', 'fragment', 'bad-source', 'no-room'] as const;

/** ICMP types that are errors (3, 4, 5, 11, 12): never answered with an error. */
function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/** Largest reply: 20 + 8 + a 60-byte header + 8 bytes. */
export const ICMP_UNREACHABLE_MAX_SIZE = IPV4_MIN_HEADER + 8 + 60 + 8;

/**
 * Build the reply to the IPv4 packet `pkt[off, off+len)` into `out[outOff, ...)`. Returns
 * bytes written or a negative IcmpSkip code. Never throws. `out` must not overlap the
 * offending packet.
 */
export function buildIcmpUnreachable(
  pkt: Uint8Array, off: number, len: number, code: number, fromAddr: number, out: Uint8Array, outOff: number,
): number {
  if (len < IPV4_MIN_HEADER || off < 0 || off + len > pkt.length || pkt[off] >> 4 !== 4) return IcmpSkip.MALFORMED;
  const hl = (pkt[off] & 0x0f) * 4;
  const total = (pkt[off + 2] << 8) | pkt[off + 3];
  if (hl < IPV4_MIN_HEADER || total < hl || total > len) return IcmpSkip.MALFORMED;
  if ((((pkt[off + 6] << 8) | pkt[off + 7]) & 0x1fff) !== 0) return IcmpSkip.FRAGMENT;
  const proto = pkt[off + 9];
  if (proto === IP_PROTO_ICMP && (total - hl < 1 || isIcmpError(pkt[off + hl]))) return IcmpSkip.ICMP_ERROR;
  const src0 = pkt[off + 12];
  const srcAll = ((pkt[off + 12] << 24) | (pkt[off + 13] << 16) | (pkt[off + 14] << 8) | pkt[off + 15]) >>> 0;
  const dst0 = pkt[off + 16];
  const dstBroadcast = (pkt[off + 16] & pkt[off + 17] & pkt[off + 18] & pkt[off + 19]) === 255;
  // Zero, loopback, multicast/reserved and broadcast sources; multicast or broadcast destinations.
  if (srcAll === 0 || src0 === 127 || src0 >= 224 || (dst0 >= 224 && dst0 < 240) || dstBroadcast) return IcmpSkip.BAD_SOURCE;

  const quote = hl + Math.min(8, total - hl);
  const size = IPV4_MIN_HEADER + 8 + quote;
  if (outOff < 0 || outOff + size > out.length) return IcmpSkip.NO_ROOM;

  // IPv4 header.
  const o = outOff;
  out[o] = 0x45;
  out[o + 1] = 0;
  out[o + 2] = size >> 8;
  out[o + 3] = size & 0xff;
  out[o + 4] = 0; out[o + 5] = 0; // identification
  out[o + 6] = 0; out[o + 7] = 0; // flags, fragment offset
  out[o + 8] = 64;
  out[o + 9] = IP_PROTO_ICMP;
  out[o + 10] = 0; out[o + 11] = 0;
  writeAddr(out, o + 12, fromAddr);
  for (let i = 0; i < 4; i++) out[o + 16 + i] = pkt[off + 12 + i];
  const ipSum = ipv4HeaderChecksum(out, o, IPV4_MIN_HEADER);
  out[o + 10] = ipSum >> 8;
  out[o + 11] = ipSum & 0xff;

  // ICMP header + quote.
  const ic = o + IPV4_MIN_HEADER;
  out[ic] = ICMP_DEST_UNREACHABLE;
  out[ic + 1] = code & 0xff;
  for (let i = 2; i < 8; i++) out[ic + i] = 0;
  for (let i = 0; i < quote; i++) out[ic + 8 + i] = pkt[off + i];
  const icSum = (~onesComplementSum(out, ic, 8 + quote)) & 0xffff;
  out[ic + 2] = icSum >> 8;
  out[ic + 3] = icSum & 0xff;
  return size;
}

/** Metric label of a negative buildIcmpUnreachable result. */
export function icmpSkipName(code: number): (typeof ICMP_SKIP_NAMES)[number] {
  return ICMP_SKIP_NAMES[-code - 1] ?? 'malformed';
}
