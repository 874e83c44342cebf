/**
 * Relay ↔ relay (mesh) frames, on the mesh UDP port only (never the member port). Pure codec.
 *
 *   MESH_DATA (0x20), one hop from the sender's relay to the destination's home relay
 *   (mesh frame version 3; version 1 had 3 reserved bytes where the counter and tag are;
 *   version 2 had the same layout with an HMAC-SHA256 tag over the whole frame):
 *
 *    0      1            3                  8             12            16
 *   +------+------------+------------------+-------------+-------------+-----------------
 *   | 0x20 | ctr (2 BE) | tag (5)          | dst vip(BE) | src vip(BE) | WireGuard message
 *   +------+------------+------------------+-------------+-------------+-----------------
 *
 *   16 bytes, 4 more than version 1, so the largest WireGuard message of a 1420-byte tunnel
 *   (1456 bytes: 16 + 1424 padded + 16) still fits a 1500-byte link: 16 + 1456 + 28 = 1500.
 *   `ctr` is the low 16 bits of the frame's counter (from 0 per key; the receiver restores the
 *   rest from the highest counter it accepted, like QUIC packet numbers), and
 *   tag = SipHash-2-4(k, counter (8 BE) || byte 0 || bytes 8..15), first 5 bytes (40 bits) of its
 *   little-endian output, where k is the sending direction's 16-byte session key
 *   (`deriveMeshDataKey`, from the mesh key and both nonces of the HELLO / HELLO_ACK exchange
 *   that made the sender trust the receiver). The tag covers type, full counter, dst and src
 *   vip, not the WireGuard message: its members authenticate that end to end (PROTOCOL.md §3).
 *   A frame is accepted once its tag verified, then its counter passes a 1024-frame replay
 *   window (ReplayWindow). Bytes 8.. are laid out so the home relay turns the frame into a
 *   member DATA frame in place: it writes `0x10 0 0 0` over bytes 8-11 (the dst vip) and sends
 *   bytes 8..end, whose bytes 12-15 already hold the source vip (docs/PROTOCOL.md §3).

 *   MESH_HELLO (0x21) / MESH_HELLO_ACK (0x22), the mesh handshake:
 *
 *   type(1) reserved(3) timestamp ms(8, BE) nonce(16) echo(16) idLen(1) relay id(idLen ≤ 64) mac(16)
 *
 *   `echo` is zero in a HELLO and the HELLO's nonce in an ACK. `mac` is BLAKE2s-128 keyed by
 *   the mesh key over everything before it, after the label "isthmus-mesh-v3" ("-v1" before
 *   MESH_DATA was authenticated, "-v2" with the HMAC tag: relays of different versions do not
 *   handshake).
 *
 *   MESH_REAUTH (0x23): "I do not trust your address (or your key), say HELLO again":
 *
 *   type(1) reserved(3) timestamp ms(8, BE) nonce(16) idLen(1) relay id(idLen ≤ 64) mac(16)
 *
 *   the sender's relay id, and `mac` = BLAKE2s-128 keyed by the mesh key over everything before
 *   it, after the label "isthmus-mesh-reauth-v3". Not the MESH_DATA SipHash key: a REAUTH is
 *   sent exactly when the two relays share no data key (the sender restarted, or lost the key
 *   the frame was sealed with), so it is authenticated like a HELLO, with the long-term mesh key;
 *   the receiver checks the timestamp window and uses each nonce once (as for HELLOs). Until
 *   this layout a REAUTH was 4 bytes with no MAC; those are now dropped as `mesh-bad-reauth`.
 */
import { blake2s } from '@noble/hashes/blake2s';
import { timingSafeEqual } from 'node:crypto';
import { writeAddr } from '../common';
import { siphash24 } from './siphash';

export const MeshFrameType = {
  DATA: 0x20,
  HELLO: 0x21,
  HELLO_ACK: 0x22,
  REAUTH: 0x23,
} as const;

/** MESH_DATA layout (mesh frame version 3; same bytes as version 2, another tag). */
export const MESH_OFFSET_COUNTER = 1;
export const MESH_OFFSET_TAG = 3;
export const MESH_TAG_LEN = 5;
export const MESH_OFFSET_DST = 8;
export const MESH_OFFSET_SRC = 12;
export const MESH_DATA_HEADER_LEN = 16;
/** The per-direction SipHash-2-4 key. */
export const MESH_DATA_KEY_LEN = 16;
/** A sender re-handshakes (new key, counter from 0) once its counter reaches this (2^48). */
export const MESH_COUNTER_REKEY = 2 ** 48;
const CTR_SPAN = 0x1_0000;
export const MESH_NONCE_LEN = 16;
export const MESH_MAC_LEN = 16;
export const MESH_ID_MAX_LEN = 64;
/** type(1) reserved(3) ts(8) nonce(16) echo(16) idLen(1) */
const HELLO_FIXED_LEN = 4 + 8 + MESH_NONCE_LEN + MESH_NONCE_LEN + 1;
export const MESH_HELLO_MIN_LEN = HELLO_FIXED_LEN + 1 + MESH_MAC_LEN;
/** The shortest mesh frame of any type (the 4-byte type/reserved head). */
export const MESH_FRAME_MIN_LEN = 4;
/** type(1) reserved(3) ts(8) nonce(16) idLen(1) */
const REAUTH_FIXED_LEN = 4 + 8 + MESH_NONCE_LEN + 1;
export const MESH_REAUTH_MIN_LEN = REAUTH_FIXED_LEN + 1 + MESH_MAC_LEN;

const LABEL = Buffer.from('isthmus-mesh-v1');
/**
 * HELLO/ACK MAC label: v2 since MESH_DATA carries a tag, v3 since the tag is SipHash over the
 * header, so relays of different versions refuse each other's HELLO.
 */
const HELLO_LABEL = Buffer.from('isthmus-mesh-v3');
const DATA_KEY_LABEL = Buffer.from('isthmus-mesh-data-v3');
const REAUTH_LABEL = Buffer.from('isthmus-mesh-reauth-v3');

export interface MeshHello {
  type: typeof MeshFrameType.HELLO | typeof MeshFrameType.HELLO_ACK;
  timestampMs: number;
  nonce: Uint8Array;
  echo: Uint8Array;
  relayId: string;
}

export interface MeshReauth {
  timestampMs: number;
  nonce: Uint8Array;
  /** The relay asking for a new HELLO. */
  relayId: string;
}

/** The 32-byte MAC key from the shared mesh secret (any length ≥ 16 bytes). */
export function deriveMeshKey(secret: Uint8Array): Uint8Array {
  return blake2s(Buffer.concat([LABEL, Buffer.from(secret)]), { dkLen: 32 });
}

function mac(key: Uint8Array, body: Uint8Array): Uint8Array {
  return blake2s(Buffer.concat([HELLO_LABEL, body]), { key, dkLen: MESH_MAC_LEN });
}

/**
 * The 16-byte MESH_DATA (SipHash-2-4) key for frames from `senderId` to `receiverId`, from the HELLO (sent by the
 * sender, `helloNonce`) and its HELLO_ACK (`ackNonce`). Both relays compute it; nobody without
 * the mesh key can. Fresh per handshake, so counters restart at 0 with each key.
 */
export function deriveMeshDataKey(meshKey: Uint8Array, helloNonce: Uint8Array, ackNonce: Uint8Array, senderId: string, receiverId: string): Uint8Array {
  const s = Buffer.from(senderId, 'utf8');
  const r = Buffer.from(receiverId, 'utf8');
  const input = Buffer.concat([DATA_KEY_LABEL, helloNonce, ackNonce, Buffer.from([s.length]), s, Buffer.from([r.length]), r]);
  return blake2s(input, { key: meshKey, dkLen: MESH_DATA_KEY_LEN });
}

/** SipHash input: counter (8, BE) ‖ type ‖ dst vip ‖ src vip (17 bytes); and its 8-byte output. */
const TAG_INPUT_LEN = 17;
const tagInput = new Uint8Array(TAG_INPUT_LEN);
const tagOut = new Uint8Array(8);

/**
 * The tag of the MESH_DATA frame at `buf[off..]` with full counter `counter` under `key`,
 * left in `tagOut[0..5]`: SipHash-2-4 over the header fields, not the WireGuard message (which
 * its members authenticate end to end; docs/PROTOCOL.md §3). Allocates nothing.
 */
function dataTag(key: Uint8Array, buf: Uint8Array, off: number, counter: number): void {
  const hi = Math.floor(counter / 0x1_0000_0000);
  const lo = counter >>> 0;
  tagInput[0] = hi >>> 24; tagInput[1] = (hi >>> 16) & 0xff; tagInput[2] = (hi >>> 8) & 0xff; tagInput[3] = hi & 0xff;
  tagInput[4] = lo >>> 24; tagInput[5] = (lo >>> 16) & 0xff; tagInput[6] = (lo >>> 8) & 0xff; tagInput[7] = lo & 0xff;
  tagInput[8] = buf[off];
  for (let i = 0; i < 8; i++) tagInput[9 + i] = buf[off + MESH_OFFSET_DST + i];
  siphash24(key, tagInput, 0, TAG_INPUT_LEN, tagOut, 0);
}

/** Write `counter`'s low bits and the tag into the MESH_DATA frame `buf[off..off+len]` (header already written). */
export function sealMeshData(buf: Uint8Array, off: number, len: number, key: Uint8Array, counter: number): void {
  buf[off + MESH_OFFSET_COUNTER] = (counter >>> 8) & 0xff;
  buf[off + MESH_OFFSET_COUNTER + 1] = counter & 0xff;
  dataTag(key, buf, off, counter);
  for (let i = 0; i < MESH_TAG_LEN; i++) buf[off + MESH_OFFSET_TAG + i] = tagOut[i];
}

/**
 * True when the frame's header tag verifies under `key` for the full `counter` (constant time
 * in the tag bytes). The WireGuard message after the header is not covered. Never throws.
 */
export function openMeshData(buf: Uint8Array, off: number, len: number, key: Uint8Array, counter: number): boolean {
  if (len < MESH_DATA_HEADER_LEN || off < 0 || off + len > buf.length) return false;
  dataTag(key, buf, off, counter);
  let d = 0;
  for (let i = 0; i < MESH_TAG_LEN; i++) d |= tagOut[i] ^ buf[off + MESH_OFFSET_TAG + i];
  return d === 0;
}

/** The low 16 bits of the frame's counter, as sent. */
export function readMeshCounter(buf: Uint8Array, off: number): number {
  return (buf[off + MESH_OFFSET_COUNTER] << 8) | buf[off + MESH_OFFSET_COUNTER + 1];
}

/** The full counter nearest to `highest + 1` whose low 16 bits are `low` (never negative). */
export function expandMeshCounter(low: number, highest: number): number {
  const expected = highest + 1;
  let c = expected - (expected % CTR_SPAN) + low;
  if (c <= expected - CTR_SPAN / 2) c += CTR_SPAN;
  else if (c > expected + CTR_SPAN / 2 && c >= CTR_SPAN) c -= CTR_SPAN;
  return c;
}

const WINDOW_WORDS = 32;
/** Counters this far below the highest seen are refused as too old. */
export const MESH_REPLAY_WINDOW = (WINDOW_WORDS - 1) * 32;

/**
 * Sliding replay window over frame counters (a 1024-bit ring, RFC 6479 style). Call `accept`
 * only after the frame's tag verified, so forgeries cannot move it.
 */
export class ReplayWindow {
  private readonly bits = new Uint32Array(WINDOW_WORDS);
  private top = -1;

  /** The highest counter accepted, -1 before the first. */
  get highest(): number {
    return this.top;
  }

  /** True, and recorded, if `n` was not seen and is not too old. */
  accept(n: number): boolean {
    if (n < 0 || n + MESH_REPLAY_WINDOW <= this.top) return false;
    const idx = Math.floor(n / 32);
    if (n > this.top) {
      const cur = this.top < 0 ? -1 : Math.floor(this.top / 32);
      const diff = Math.min(idx - cur, WINDOW_WORDS);
      for (let i = 1; i <= diff; i++) this.bits[(cur + i + WINDOW_WORDS) % WINDOW_WORDS] = 0;
      this.top = n;
    }
    const w = idx % WINDOW_WORDS;
    const bit = (1 << (n % 32)) >>> 0;
    if ((this.bits[w] & bit) !== 0) return false;
    this.bits[w] |= bit;
    return true;
  }
}

export function encodeMeshHello(h: MeshHello, key: Uint8Array): Buffer {
  const id = Buffer.from(h.relayId, 'utf8');
  if (id.length < 1 || id.length > MESH_ID_MAX_LEN) throw new RangeError(`relay id must be 1-${MESH_ID_MAX_LEN} bytes`);
  if (h.nonce.length !== MESH_NONCE_LEN || h.echo.length !== MESH_NONCE_LEN) throw new RangeError('nonce and echo are 16 bytes');
  const b = Buffer.alloc(HELLO_FIXED_LEN + id.length + MESH_MAC_LEN);
  b[0] = h.type;
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(h.timestampMs))), 4);
  b.set(h.nonce, 12);
  b.set(h.echo, 28);
  b[44] = id.length;
  id.copy(b, 45);
  const body = b.subarray(0, 45 + id.length);
  b.set(mac(key, body), 45 + id.length);
  return b;
}

/** Decode and authenticate a HELLO/ACK; undefined on any length, type or MAC mismatch. Never throws. */
export function decodeMeshHello(buf: Uint8Array, off: number, len: number, key: Uint8Array): MeshHello | undefined {
  if (len < MESH_HELLO_MIN_LEN || off < 0 || off + len > buf.length) return undefined;
  const type = buf[off];
  if (type !== MeshFrameType.HELLO && type !== MeshFrameType.HELLO_ACK) return undefined;
  const idLen = buf[off + 44];
  if (idLen < 1 || idLen > MESH_ID_MAX_LEN || len !== HELLO_FIXED_LEN + idLen + MESH_MAC_LEN) return undefined;
  const b = Buffer.from(buf.buffer, buf.byteOffset + off, len);
  const expected = mac(key, b.subarray(0, 45 + idLen));
  if (!timingSafeEqual(Buffer.from(expected), b.subarray(45 + idLen))) return undefined;
  return {
    type, timestampMs: Number(b.readBigUInt64BE(4)),
    nonce: Uint8Array.from(b.subarray(12, 28)), echo: Uint8Array.from(b.subarray(28, 44)),
    relayId: b.subarray(45, 45 + idLen).toString('utf8'),
  };
}

/** Write a MESH_DATA header at `buf[off .. off + 20]`, counter and tag zero (`sealMeshData` fills them). */
export function writeMeshDataHeader(buf: Uint8Array, off: number, dstVip: number, srcVip: number): void {
  buf.fill(0, off, off + MESH_OFFSET_DST);
  buf[off] = MeshFrameType.DATA;
  writeAddr(buf, off + MESH_OFFSET_DST, dstVip);
  writeAddr(buf, off + MESH_OFFSET_SRC, srcVip);
}

export function encodeMeshReauth(r: MeshReauth, key: Uint8Array): Buffer {
  const id = Buffer.from(r.relayId, 'utf8');
  if (id.length < 1 || id.length > MESH_ID_MAX_LEN) throw new RangeError(`relay id must be 1-${MESH_ID_MAX_LEN} bytes`);
  if (r.nonce.length !== MESH_NONCE_LEN) throw new RangeError('nonce is 16 bytes');
  const b = Buffer.alloc(REAUTH_FIXED_LEN + id.length + MESH_MAC_LEN);
  b[0] = MeshFrameType.REAUTH;
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(r.timestampMs))), 4);
  b.set(r.nonce, 12);
  b[28] = id.length;
  id.copy(b, 29);
  const body = b.subarray(0, 29 + id.length);
  b.set(blake2s(Buffer.concat([REAUTH_LABEL, body]), { key, dkLen: MESH_MAC_LEN }), 29 + id.length);
  return b;
}

/** Decode and authenticate a MESH_REAUTH; undefined on any length, type or MAC mismatch. Never throws. */
export function decodeMeshReauth(buf: Uint8Array, off: number, len: number, key: Uint8Array): MeshReauth | undefined {
  if (len < MESH_REAUTH_MIN_LEN || off < 0 || off + len > buf.length || buf[off] !== MeshFrameType.REAUTH) return undefined;
  const idLen = buf[off + 28];
  if (idLen < 1 || idLen > MESH_ID_MAX_LEN || len !== REAUTH_FIXED_LEN + idLen + MESH_MAC_LEN) return undefined;
  const b = Buffer.from(buf.buffer, buf.byteOffset + off, len);
  const expected = blake2s(Buffer.concat([REAUTH_LABEL, b.subarray(0, 29 + idLen)]), { key, dkLen: MESH_MAC_LEN });
  if (!timingSafeEqual(Buffer.from(expected), b.subarray(29 + idLen))) return undefined;
  return { timestampMs: Number(b.readBigUInt64BE(4)), nonce: Uint8Array.from(b.subarray(12, 28)), relayId: b.subarray(29, 29 + idLen).toString('utf8') };
}
