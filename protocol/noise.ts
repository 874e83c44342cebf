/**
 * Cryptographic primitives of WireGuard (paper §5.4, wireguard-go device/noise-helpers.go):
 *
 *   HASH(x)        BLAKE2s-256
 *   MAC(key, x)    keyed BLAKE2s, 16-byte output (mac1/mac2, cookies)
 *   HMAC(key, x)   HMAC-BLAKE2s-256, used only inside KDF
 *   KDFn(key, x)   HKDF with HMAC-BLAKE2s, n = 1..3 outputs of 32 bytes
 *   AEAD           ChaCha20-Poly1305, nonce = 4 zero bytes || LE u64 counter
 *   XAEAD          XChaCha20-Poly1305 (cookie reply only): HChaCha20 subkey, then AEAD
 *                  with nonce = 4 zero bytes || last 8 bytes of the 24-byte nonce
 *   DH             X25519 (node:crypto/OpenSSL, x25519.ts)
 *
 * Open functions return undefined on authentication failure: they never throw on
 * network input (node:crypto's throw is caught here, once).
 */
import { blake2s } from '@noble/hashes/blake2s';
import { hmac } from '@noble/hashes/hmac';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { AEAD_TAG_SIZE, MAC_SIZE } from './constants';
import { noteX25519 } from './keys';
import { scalarMult } from './x25519';

export const HASH_LEN = 32;
const EMPTY = new Uint8Array(0);

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** HASH(a || b || …) without concatenating. */
export function hash(...parts: Uint8Array[]): Buffer {
  const h = blake2s.create({});
  for (const p of parts) h.update(p);
  return toBuffer(h.digest());
}

/** MAC(key, a || b || …): keyed BLAKE2s with a 16-byte digest. */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = blake2s.create({ key, dkLen: MAC_SIZE });
  for (const p of parts) h.update(p);
  return toBuffer(h.digest());
}

export function hmacBlake2s(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = hmac.create(blake2s, key);
  for (const p of parts) h.update(p);
  return toBuffer(h.digest());
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** HKDF (Noise §4.3 / WireGuard KDFn) returning n outputs of HASH_LEN bytes. */
function kdf(key: Uint8Array, input: Uint8Array, n: 1 | 2 | 3): Buffer[] {
  const prk = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(prk, ONE);
  if (n === 1) return [t1];
  const t2 = hmacBlake2s(prk, t1, TWO);
  if (n === 2) return [t1, t2];
  return [t1, t2, hmacBlake2s(prk, t2, THREE)];
}

export function kdf1(key: Uint8Array, input: Uint8Array = EMPTY): Buffer {
  return kdf(key, input, 1)[0];
}
export function kdf2(key: Uint8Array, input: Uint8Array = EMPTY): [Buffer, Buffer] {
  const [a, b] = kdf(key, input, 2);
  return [a, b];
}
export function kdf3(key: Uint8Array, input: Uint8Array = EMPTY): [Buffer, Buffer, Buffer] {
  const [a, b, c] = kdf(key, input, 3);
  return [a, b, c];
}

/** WireGuard/Noise ChaChaPoly nonce: 32 zero bits, then the counter as LE u64. */
export function aeadNonce(counter: number | bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(BigInt(counter), 4);
  return n;
}

function sealWithNonce(key: Uint8Array, nonce: Buffer, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

function openWithNonce(key: Uint8Array, nonce: Buffer, sealed: Uint8Array, ad: Uint8Array): Buffer | undefined {
  if (sealed.length < AEAD_TAG_SIZE) return undefined;
  const ctLen = sealed.length - AEAD_TAG_SIZE;
  try {
    const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
    d.setAAD(ad, { plaintextLength: ctLen });
    d.setAuthTag(sealed.subarray(ctLen));
    const body = d.update(sealed.subarray(0, ctLen));
    d.final();
    return body;
  } catch {
    return undefined;
  }
}

/** AEAD(key, counter, plaintext, ad) → ciphertext || 16-byte tag. */
export function aeadSeal(key: Uint8Array, counter: number | bigint, plaintext: Uint8Array, ad: Uint8Array = EMPTY): Buffer {
  return sealWithNonce(key, aeadNonce(counter), plaintext, ad);
}

/** Inverse of aeadSeal; undefined when the tag does not verify or the input is too short. */
export function aeadOpen(key: Uint8Array, counter: number | bigint, sealed: Uint8Array, ad: Uint8Array = EMPTY): Buffer | undefined {
  return openWithNonce(key, aeadNonce(counter), sealed, ad);
}

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}

/**
 * HChaCha20 (draft-irtf-cfrg-xchacha §2.2): the ChaCha20 block function over
 * constants || key || 16-byte nonce, 20 rounds, no final addition; the output is
 * words 0..3 and 12..15. Small and rare (one per cookie reply), so plain TS.
 */
export function hchacha20(key: Uint8Array, nonce16: Uint8Array): Buffer {
  if (key.length !== 32 || nonce16.length !== 16) throw new RangeError('hchacha20: key 32 bytes, nonce 16 bytes');
  const kv = new DataView(key.buffer, key.byteOffset, 32);
  const nv = new DataView(nonce16.buffer, nonce16.byteOffset, 16);
  const s = new Uint32Array(16);
  s[0] = 0x61707865; s[1] = 0x3320646e; s[2] = 0x79622d32; s[3] = 0x6b206574;
  for (let i = 0; i < 8; i++) s[4 + i] = kv.getUint32(i * 4, true);
  for (let i = 0; i < 4; i++) s[12 + i] = nv.getUint32(i * 4, true);
  const qr = (a: number, b: number, c: number, d: number): void => {
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 16);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 12);
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 8);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 7);
  };
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15);
    qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14);
  }
  const out = Buffer.alloc(32);
  for (let i = 0; i < 4; i++) out.writeUInt32LE(s[i], i * 4);
  for (let i = 0; i < 4; i++) out.writeUInt32LE(s[12 + i], 16 + i * 4);
  return out;
}

function xNonce(nonce24: Uint8Array): Buffer {
  const n = Buffer.alloc(12);
  n.set(nonce24.subarray(16, 24), 4);
  return n;
}

/** XChaCha20-Poly1305 seal with a 24-byte nonce. */
export function xaeadSeal(key: Uint8Array, nonce24: Uint8Array, plaintext: Uint8Array, ad: Uint8Array = EMPTY): Buffer {
  if (nonce24.length !== 24) throw new RangeError('xaead: nonce must be 24 bytes');
  return sealWithNonce(hchacha20(key, nonce24.subarray(0, 16)), xNonce(nonce24), plaintext, ad);
}

/** XChaCha20-Poly1305 open; undefined on failure. */
export function xaeadOpen(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array, ad: Uint8Array = EMPTY): Buffer | undefined {
  if (nonce24.length !== 24 || key.length !== 32) return undefined;
  return openWithNonce(hchacha20(key, nonce24.subarray(0, 16)), xNonce(nonce24), sealed, ad);
}

/** X25519. Returns undefined for an all-zero result (low-order point), as wireguard-go does. */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Buffer | undefined {
  if (privateKey.length !== 32 || publicKey.length !== 32) return undefined;
  noteX25519();
  const shared = scalarMult(privateKey, publicKey);
  let acc = 0;
  for (const b of shared) acc |= b;
  return acc === 0 ? undefined : shared;
}
