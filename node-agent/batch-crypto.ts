/**
 * One batch of WireGuard transport payloads to seal or open with ONE native call
 * (native-bindings aead.sealBatch / openBatch), instead of one node:crypto Cipheriv per
 * packet: the per-call cost of node:crypto (object creation, cipher lookup, output Buffers),
 * not the cipher, dominated the agent's profile.
 *
 * The engine (device.ts) does everything per packet that needs JS — routing, counter
 * assignment, headers, replay window, source checks — and uses this only as the list of
 * "packet i lives at data[offsets[i], +lengths[i]), key keyIndex[i], nonce counters[i]".
 * Entries also carry the engine's per-packet context (keypair, peer, endpoint fields, the
 * original offset/length) in parallel arrays, all preallocated: no allocation per packet.
 *
 * Keys: each distinct keypair of the batch gets a 32-byte slot in `keys` (a batch nearly
 * always uses one or two). The key bytes are copied in once per batch, not per packet.
 */
import type { Keypair } from '../protocol/transport';
import type { Peer } from './peer';

/** The native batched AEAD (native-bindings `aead`), injectable so tests can use either. */
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

/** Distinct keys per batch; a batch needing more is run in parts by the caller (full()). */
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
  /** Where it came from (open): EndpointKind, ip, port, vip. */
  readonly kinds: Uint8Array;
  readonly ips: Uint32Array;
  readonly ports: Uint32Array;
  readonly vips: Uint32Array;

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
    this.kinds = new Uint8Array(capacity);
    this.ips = new Uint32Array(capacity);
    this.ports = new Uint32Array(capacity);
    this.vips = new Uint32Array(capacity);
  }

  /** True when one more entry (possibly with a new key) might not fit: run the batch first. */
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

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // The counters are handed to C as native u64s written as (lo, hi) u32 pairs.
  throw new Error('isthmus batch crypto assumes a little-endian host');
}
