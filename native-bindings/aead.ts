/**
 * Batched, in-place ChaCha20-Poly1305 for WireGuard transport data, in C over the
 * OpenSSL that Node itself links (no per-packet Cipheriv objects or output Buffers).
 *
 * Per packet i of a batch (`data`, `offsets`, `lengths`, `count` — a PacketBatch fits):
 *   key    `keys[32*k, 32*k+32)` with k = keyIndex[i] (k = 0 when keyIndex is null)
 *   nonce  4 zero bytes || counters[i] as little-endian u64   (WireGuard)
 *   AAD    empty
 *   seal   plaintext `data[off, off+len)` → ciphertext in place, 16-byte tag written at
 *          `off+len` (the caller keeps ≥ 16 bytes of tailroom; TUN slots do)
 *   open   `data[off, off+len)` is ciphertext||tag; plaintext (len-16 bytes) in place.
 *          On a bad tag ok[i] = 0 and the bytes are garbage: discard the packet.
 * ok[i] = 1 on success, 0 on failure (bad tag, packet out of the slab's bounds, key index
 * out of range). Per-packet failures never throw; the return value counts successes.
 * Throws InvalidOptionError/NativeIoError only for malformed arguments (arrays shorter
 * than count, keys not a multiple of 32 bytes).
 *
 * Counters are a BigUint64Array; to avoid BigInt on the hot path, write them through a
 * Uint32Array view of the same memory as (lo, hi) pairs on little-endian hosts.
 */
import { NativeIoError } from './errors';
import { loadNative } from './load';

export const AEAD_KEY_LENGTH = 32;
export const AEAD_TAG_LENGTH = 16;

/** The slice of a PacketBatch that the AEAD works on. */
export interface AeadBatch {
  data: Uint8Array;
  offsets: Uint32Array;
  lengths: Uint32Array;
  count: number;
}

function call(seal: boolean, batch: AeadBatch, keys: Uint8Array, keyIndex: Uint32Array | null,
  counters: BigUint64Array, ok: Uint8Array | null): number {
  const n = loadNative();
  const fn = seal ? n.aeadSealBatch! : n.aeadOpenBatch!;
  try {
    return fn(keys, keyIndex, batch.data, batch.offsets, batch.lengths, counters, batch.count, ok);
  } catch (err) {
    throw NativeIoError.from(err);
  }
}

export const aead = {
  KEY_LENGTH: AEAD_KEY_LENGTH,
  TAG_LENGTH: AEAD_TAG_LENGTH,
  /** Encrypts `batch.count` packets in place and appends tags; returns how many succeeded. */
  sealBatch(batch: AeadBatch, keys: Uint8Array, keyIndex: Uint32Array | null, counters: BigUint64Array,
    ok: Uint8Array | null = null): number {
    return call(true, batch, keys, keyIndex, counters, ok);
  },
  /** Verifies and decrypts in place; `ok` (required) says which packets authenticated. */
  openBatch(batch: AeadBatch, keys: Uint8Array, keyIndex: Uint32Array | null, counters: BigUint64Array,
    ok: Uint8Array): number {
    return call(false, batch, keys, keyIndex, counters, ok);
  },
} as const;
