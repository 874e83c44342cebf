/**
 * TAI64N timestamps (https://cr.yp.to/libtai/tai64.html), sent encrypted in every handshake
 * initiation so the responder can reject replays: only a timestamp strictly greater than
 * the last one accepted from that peer is valid.
 *
 *   0                   8           12
 *   +-------------------+-----------+
 *   | seconds (BE u64)  | nanos (BE)|   seconds = 2^62 + 10 + Unix seconds
 *   +-------------------+-----------+
 *
 * wireguard-go also rounds the nanoseconds down to 2^24 ns ("whitening") to hide the clock;
 * not required here, so the millisecond is kept.
 */
import { TIMESTAMP_SIZE } from './constants';

const TAI64_BASE = 2n ** 62n + 10n;

/** Encodes wall-clock milliseconds since the Unix epoch. */
export function tai64nFromMs(wallMs: number, out: Buffer = Buffer.alloc(TIMESTAMP_SIZE)): Buffer {
  const ms = Math.floor(wallMs);
  const secs = Math.floor(ms / 1000);
  const nanos = (ms - secs * 1000) * 1_000_000;
  out.writeBigUInt64BE(TAI64_BASE + BigInt(secs), 0);
  out.writeUInt32BE(nanos, 8);
  return out;
}

/** Inverse of tai64nFromMs (sub-millisecond precision is dropped). */
export function tai64nToMs(ts: Uint8Array): number {
  const b = Buffer.from(ts.buffer, ts.byteOffset, ts.byteLength);
  return Number(b.readBigUInt64BE(0) - TAI64_BASE) * 1000 + Math.floor(b.readUInt32BE(8) / 1_000_000);
}

/** True when `a` is strictly after `b` (big-endian byte order is time order). */
export function tai64nIsAfter(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) > 0;
}
