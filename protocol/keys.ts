/**
 * Static X25519 keys as `wg genkey` / `wg pubkey` handle them: 32 bytes, clamped private
 * keys, standard base64 with padding (44 characters).
 */
import { randomBytes } from 'node:crypto';
import { scalarMultBase } from './x25519';
import { KEY_SIZE } from './constants';

/** Random source: returns `size` fresh random bytes. Injected so tests are deterministic. */
export type Rng = (size: number) => Uint8Array;
export const defaultRng: Rng = (size) => randomBytes(size);

export class InvalidKeyError extends Error {
  override readonly name = 'InvalidKeyError';
  readonly code = 'ERR_INVALID_KEY';
}

/** Curve25519 clamping (RFC 7748 §5), in place. */
export function clampPrivateKey(k: Uint8Array): Uint8Array {
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k;
}

export function generatePrivateKey(rng: Rng = defaultRng): Buffer {
  const k = Buffer.from(rng(KEY_SIZE));
  if (k.length !== KEY_SIZE) throw new RangeError('rng returned the wrong number of bytes');
  return clampPrivateKey(k) as Buffer;
}

let x25519Ops = 0;

/** X25519 scalar multiplications done by this process so far (publicKeyFromPrivate and
 *  noise.ts dh): the handshake's expensive work, for metrics, the flood test and the bench. */
export function x25519Operations(): number {
  return x25519Ops;
}

/** Counts one X25519 done elsewhere in protocol/ (noise.ts dh). */
export function noteX25519(): void {
  x25519Ops++;
}

export function publicKeyFromPrivate(privateKey: Uint8Array): Buffer {
  if (privateKey.length !== KEY_SIZE) throw new InvalidKeyError(`private key must be ${KEY_SIZE} bytes, got ${privateKey.length}`);
  x25519Ops++;
  return scalarMultBase(privateKey);
}

/**
 * The X25519 public keys of small order (libsodium's blocklist: 0, 1, the two points of
 * order 8, p − 1, p, p + 1; bit 255 is ignored by X25519, so it is here too). DH with any of
 * them is all zero for every private key: such a peer could never handshake. Checked when a
 * peer is added, before its (lazy) DH exists.
 */
const LOW_ORDER_POINTS: readonly Buffer[] = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => Buffer.from(h, 'hex'));

/** True for a public key of small order (DH with it is zero whatever our key). */
export function isLowOrderPoint(publicKey: Uint8Array): boolean {
  if (publicKey.length !== KEY_SIZE) return false;
  const k = Buffer.from(publicKey);
  k[31] &= 0x7f;
  return LOW_ORDER_POINTS.some((p) => p.equals(k));
}

export function keyToBase64(key: Uint8Array): string {
  if (key.length !== KEY_SIZE) throw new InvalidKeyError(`key must be ${KEY_SIZE} bytes, got ${key.length}`);
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}

const KEY_B64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/**
 * Strict decoding: exactly 44 characters of standard base64 encoding 32 bytes (Node's
 * decoder silently skips junk, so the shape is checked first). Never echoes the key.
 */
export function keyFromBase64(text: string): Buffer {
  const s = text.trim();
  if (!KEY_B64.test(s)) {
    throw new InvalidKeyError(`key must be ${KEY_SIZE} bytes in standard base64 (44 characters ending in '='), got ${s.length} characters`);
  }
  return Buffer.from(s, 'base64');
}
