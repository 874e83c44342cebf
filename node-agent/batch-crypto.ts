/**
 * One batch of WireGuard transport payloads to seal or open with ONE BatchAead call: the
 * native one (native-bindings `aead.sealBatch` / `openBatch`, a C loop over OpenSSL), or
 * `nodeCryptoAead`, the same contract over node:crypto for hosts without the addon. The
 * engine (inside.ts, outside.ts) has one path and never knows which it got.
 *
 * The engine does everything per packet that needs JS — routing, counter assignment,
 * headers, replay window, source checks — and uses this only as the list of
 * "packet i lives at data[offsets[i], +lengths[i]), key keyIndex[i], nonce counters[i]".
 * Entries also carry the engine's per-packet context (keypair, peer, the whole message's
 * offset/length, the datagram it came from) in parallel arrays, all preallocated: no
 * allocation per packet.
 *
 * Keys: each distinct keypair of the batch gets a 32-byte slot in `keys` (a batch nearly
 * always uses one or two). The key bytes are copied in once per batch, not per packet.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { Keypair } from '../protocol';
import type { Peer } from './peer';

/**
 * Batched in-place ChaCha20-Poly1305 with WireGuard's nonce (4 zero bytes || counter as LE
 * u64) and no AAD. Per entry i: seal encrypts `data[offsets[i], +lengths[i])` in place and
 * writes the 16-byte tag right after it; open takes ciphertext||tag there and leaves the
 * plaintext in place. `ok[i]` is 1 on success, 0 on failure (a bad tag: discard the bytes).
 * Returns the number of successes; never throws for anything a peer sent.
 */
export interface BatchAead {
  sealBatch(batch: CryptoBatchView, keys: Uint8Array, keyIndex: Uint32Array | null, counters: BigUint64Array, ok: Uint8Array | null): number;
  openBatch(batch: CryptoBatchView, keys: Uint8Array, keyIndex: Uint32Array | null, counters: BigUint64Array, ok: Uint8Array): number;
}

export interface CryptoBatchView {
  data: Uint8Array;
  offsets: Uint32Array;
  lengths: Uint32Array;
  count: number;
}

/** Distinct keys per batch; a batch needing more is sealed or opened in parts by the caller (full()). */
export const MAX_BATCH_KEYS = 8;
const KEY_LEN = 32;
const TWO_32 = 2 ** 32;
const EMPTY = new Uint8Array(0);

export class CryptoBatch implements CryptoBatchView {
  data: Uint8Array = EMPTY;
  count = 0;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly keyIndex: Uint32Array;
  readonly counters: BigUint64Array;
  /** (lo, hi) u32 pairs over `counters` (little-endian hosts: the addon reads native u64s). */
  private readonly counterWords: Uint32Array;
  readonly ok: Uint8Array;
  readonly keys = new Uint8Array(MAX_BATCH_KEYS * KEY_LEN);
  private readonly keyOwners: (Keypair | undefined)[] = new Array<Keypair | undefined>(MAX_BATCH_KEYS).fill(undefined);
  private nkeys = 0;

  // Engine context per entry.
  readonly keypairs: (Keypair | undefined)[];
  readonly peers: (Peer | undefined)[];
  /** Counter of the entry as a JS number (exact below 2^53). */
  readonly counterNums: Float64Array;
  /** Start of the whole message (header) and its total length on the wire / in the datagram. */
  readonly msgOffsets: Uint32Array;
  readonly msgLengths: Uint32Array;
  /** Open: index of the datagram in the outside batch, for its source address. */
  readonly sources: Uint32Array;

  constructor(readonly capacity: number) {
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.keyIndex = new Uint32Array(capacity);
    this.counters = new BigUint64Array(capacity);
    this.counterWords = new Uint32Array(this.counters.buffer);
    this.ok = new Uint8Array(capacity);
    this.keypairs = new Array<Keypair | undefined>(capacity).fill(undefined);
    this.peers = new Array<Peer | undefined>(capacity).fill(undefined);
    this.counterNums = new Float64Array(capacity);
    this.msgOffsets = new Uint32Array(capacity);
    this.msgLengths = new Uint32Array(capacity);
    this.sources = new Uint32Array(capacity);
  }

  /** True when one more entry (possibly with a new key) might not fit: seal or open the batch first. */
  full(): boolean {
    return this.count >= this.capacity || this.nkeys >= MAX_BATCH_KEYS;
  }

  /**
   * Append one entry over `data` (every entry of a batch must live in the same `data`).
   * `key` is the keypair's send or receive key. Returns the entry's index.
   */
  add(data: Uint8Array, kp: Keypair, key: Uint8Array, peer: Peer, off: number, len: number, counter: number): number {
    if (this.count === 0) this.data = data;
    const i = this.count++;
    this.offsets[i] = off;
    this.lengths[i] = len;
    this.keyIndex[i] = this.keySlot(kp, key);
    const lo = counter % TWO_32;
    this.counterWords[2 * i] = lo;
    this.counterWords[2 * i + 1] = (counter - lo) / TWO_32;
    this.counterNums[i] = counter;
    this.keypairs[i] = kp;
    this.peers[i] = peer;
    return i;
  }

  private keySlot(kp: Keypair, key: Uint8Array): number {
    for (let k = 0; k < this.nkeys; k++) if (this.keyOwners[k] === kp) return k;
    const k = this.nkeys++;
    this.keyOwners[k] = kp;
    this.keys.set(key, k * KEY_LEN);
    return k;
  }

  /** Forget the entries (and their object references) after the engine used the results. */
  reset(): void {
    for (let i = 0; i < this.count; i++) {
      this.keypairs[i] = undefined;
      this.peers[i] = undefined;
    }
    for (let k = 0; k < this.nkeys; k++) this.keyOwners[k] = undefined;
    // Session keys do not linger in the scratch once the batch is done.
    this.keys.fill(0, 0, this.nkeys * KEY_LEN);
    this.count = 0;
    this.nkeys = 0;
    this.data = EMPTY;
  }
}

const CIPHER = 'chacha20-poly1305';
const TAG_LEN = 16;
const NONCE = Buffer.alloc(12);
const KEY_VIEWS: Uint8Array[] = [];
let keyViewsOf: Uint8Array | undefined;

/** Key slot views over `keys`, rebuilt only when the batch's key buffer changes. */
function keyViews(keys: Uint8Array): Uint8Array[] {
  if (keyViewsOf !== keys) {
    keyViewsOf = keys;
    KEY_VIEWS.length = 0;
    for (let k = 0; k + KEY_LEN <= keys.length; k += KEY_LEN) KEY_VIEWS.push(keys.subarray(k, k + KEY_LEN));
  }
  return KEY_VIEWS;
}

/** NONCE = 4 zero bytes || counters[i] (LE u64, read as two u32 words: no BigInt). */
function setNonce(words: Uint32Array, i: number): void {
  NONCE.writeUInt32LE(words[2 * i], 4);
  NONCE.writeUInt32LE(words[2 * i + 1], 8);
}

/**
 * BatchAead over node:crypto: one Cipheriv per packet (its per-call cost, not the cipher,
 * is what the native batch avoids). Same results, byte for byte, as the native addon.
 */
export const nodeCryptoAead: BatchAead = {
  sealBatch(b, keys, keyIndex, counters, ok) {
    const views = keyViews(keys);
    const words = new Uint32Array(counters.buffer, counters.byteOffset, counters.length * 2);
    const data = b.data;
    let n = 0;
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i];
      const len = b.lengths[i];
      const key = views[keyIndex ? keyIndex[i] : 0];
      if (!key || off + len + TAG_LEN > data.length) {
        if (ok) ok[i] = 0;
        continue;
      }
      setNonce(words, i);
      const c = createCipheriv(CIPHER, key, NONCE, { authTagLength: TAG_LEN });
      // update() returns a new Buffer; copy it back over the plaintext.
      if (len > 0) data.set(c.update(data.subarray(off, off + len)), off);
      c.final();
      data.set(c.getAuthTag(), off + len);
      if (ok) ok[i] = 1;
      n++;
    }
    return n;
  },
  openBatch(b, keys, keyIndex, counters, ok) {
    const views = keyViews(keys);
    const words = new Uint32Array(counters.buffer, counters.byteOffset, counters.length * 2);
    const data = b.data;
    let n = 0;
    for (let i = 0; i < b.count; i++) {
      ok[i] = 0;
      const off = b.offsets[i];
      const ctLen = b.lengths[i] - TAG_LEN;
      const key = views[keyIndex ? keyIndex[i] : 0];
      if (!key || ctLen < 0 || off + ctLen + TAG_LEN > data.length) continue;
      setNonce(words, i);
      const d = createDecipheriv(CIPHER, key, NONCE, { authTagLength: TAG_LEN });
      d.setAuthTag(data.subarray(off + ctLen, off + ctLen + TAG_LEN));
      const pt = ctLen > 0 ? d.update(data.subarray(off, off + ctLen)) : undefined;
      try {
        // OpenSSL reports a bad tag only by throwing from final(); nothing is written then.
        d.final();
      } catch {
        continue;
      }
      if (pt) data.set(pt, off);
      ok[i] = 1;
      n++;
    }
    return n;
  },
};

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // The counters are handed to C as native u64s written as (lo, hi) u32 pairs.
  throw new Error('isthmus batch crypto assumes a little-endian host');
}
