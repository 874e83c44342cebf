/**
 * Relay ↔ relay (mesh) frames, on the mesh UDP port only (never the member port). Pure codec.
 *
 *   MESH_DATA (0x20), one hop from the sender's relay to the destination's home relay:
 *
 *    0       1       2       3       4               8               12
 *   +-------+-------+-------+-------+---------------+---------------+----------------
 *   | 0x20  |    reserved (0)       | dst vip (BE)  | src vip (BE)  | WireGuard message
 *   +-------+-------+-------+-------+---------------+---------------+----------------
 *
 *   Bytes 4.. are laid out so the home relay turns the frame into a member DATA frame in
 *   place: it writes `0x10 0 0 0` over bytes 4-7 (the dst vip) and sends bytes 4..end, whose
 *   bytes 8-11 already hold the source vip (docs/PROTOCOL.md §3).
 *
 *   MESH_HELLO (0x21) / MESH_HELLO_ACK (0x22), the mesh handshake:
 *
 *   type(1) reserved(3) timestamp ms(8, BE) nonce(16) echo(16) idLen(1) relay id(idLen ≤ 64) mac(16)
 *
 *   `echo` is zero in a HELLO and the HELLO's nonce in an ACK. `mac` is BLAKE2s-128 keyed by
 *   the mesh key over everything before it, after the label "isthmus-mesh-v1".
 *
 *   MESH_REAUTH (0x23): header only (4 bytes): "I do not trust your address, say HELLO again".
 */
import { blake2s } from '@noble/hashes/blake2s';
import { timingSafeEqual } from 'node:crypto';
import { writeAddr } from '../common';

export const MeshFrameType = {
  DATA: 0x20,
  HELLO: 0x21,
  HELLO_ACK: 0x22,
  REAUTH: 0x23,
} as const;

export const MESH_DATA_HEADER_LEN = 12;
export const MESH_OFFSET_DST = 4;
export const MESH_OFFSET_SRC = 8;
export const MESH_NONCE_LEN = 16;
export const MESH_MAC_LEN = 16;
export const MESH_ID_MAX_LEN = 64;
/** type(1) reserved(3) ts(8) nonce(16) echo(16) idLen(1) */
const HELLO_FIXED_LEN = 4 + 8 + MESH_NONCE_LEN + MESH_NONCE_LEN + 1;
export const MESH_HELLO_MIN_LEN = HELLO_FIXED_LEN + 1 + MESH_MAC_LEN;
export const MESH_REAUTH_LEN = 4;

const LABEL = Buffer.from('isthmus-mesh-v1');

export interface MeshHello {
  type: typeof MeshFrameType.HELLO | typeof MeshFrameType.HELLO_ACK;
  timestampMs: number;
  nonce: Uint8Array;
  echo: Uint8Array;
  relayId: string;
}

/** The 32-byte MAC key from the shared mesh secret (any length ≥ 16 bytes). */
export function deriveMeshKey(secret: Uint8Array): Uint8Array {
  return blake2s(Buffer.concat([LABEL, Buffer.from(secret)]), { dkLen: 32 });
}

function mac(key: Uint8Array, body: Uint8Array): Uint8Array {
  return blake2s(Buffer.concat([LABEL, body]), { key, dkLen: MESH_MAC_LEN });
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

/** Write a MESH_DATA header at `buf[off .. off + 12]`. */
export function writeMeshDataHeader(buf: Uint8Array, off: number, dstVip: number, srcVip: number): void {
  buf[off] = MeshFrameType.DATA;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  writeAddr(buf, off + MESH_OFFSET_DST, dstVip);
  writeAddr(buf, off + MESH_OFFSET_SRC, srcVip);
}
