/**
 * WireGuard transport data messages (type 4) and the per-session Keypair that seals and
 * opens them, with ChaCha20-Poly1305 from node:crypto (OpenSSL).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  type = 4     |            reserved (3 zero bytes)            |  0
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 receiver index (LE u32)                       |  4
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 counter (LE u64)                              |  8
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  ciphertext of the plaintext zero-padded to a multiple of 16  | 16
 *   |  ...                                                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Poly1305 tag (16 bytes)                                      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * AEAD nonce = 4 zero bytes || counter (LE u64), no additional data. A keepalive is an empty
 * plaintext (32 bytes on the wire).
 *
 * Cost: node:crypto needs a new Cipheriv per message, and update()/final()/getAuthTag()
 * each return a fresh Buffer; that per-call overhead (not the cipher) dominates. Measured on
 * the 2-core dev VM (Node 20, shared with other jobs), 1420-byte plaintext:
 *   seal ≈ 180k/s, open ≈ 170k/s, seal+open round trip ≈ 85k/s on one core.
 * (test/unit/protocol/transport.test.ts 'throughput' prints the numbers on each run.)
 * The agent's data path therefore does NOT use seal/open: node-agent/inside.ts reserves
 * counters here (reserveSendCounter) and writes headers (writeTransportHeader), whole batches
 * are sealed and opened in one call each (node-agent/batch-crypto.ts: natively, or over
 * node:crypto without the addon), and node-agent/outside.ts moves the replay window with
 * acceptCounter only for packets whose tag verified. seal/open are the reference the batch
 * AEADs are tested against.
 *
 * Counters are JS numbers (exact below 2^53, see replay.ts); the sender stops at
 * REJECT_AFTER_MESSAGES_NUM and the receiver drops counters at or above it.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import {
  AEAD_TAG_SIZE, KEY_SIZE, MSG_TRANSPORT, MSG_TRANSPORT_HEADER_SIZE, MSG_TRANSPORT_MIN_SIZE, PADDING_MULTIPLE,
  TRANSPORT_OFFSET_COUNTER, TRANSPORT_OFFSET_RECEIVER,
} from './constants';
import { ReplayWindow, REJECT_AFTER_MESSAGES_NUM } from './replay';

const CIPHER = 'chacha20-poly1305';
const TWO_32 = 2 ** 32;

/**
 * Negative results of `Keypair.open` / `seal`. The keys are the metric labels
 * (`transportDropName(code)` maps back): 'no-room' is a caller bug, never the peer's fault.
 */
export const TransportDrop = {
  short: -1,
  auth: -2,
  replay: -3,
  'counter-exhausted': -4,
  'no-room': -5,
} as const;
export type TransportDropReason = keyof typeof TransportDrop;
export type TransportDropCode = (typeof TransportDrop)[TransportDropReason];

const DROP_NAMES: readonly TransportDropReason[] = ['short', 'auth', 'replay', 'counter-exhausted', 'no-room'];

/** Metric label of a negative seal/open result. */
export function transportDropName(code: number): TransportDropReason {
  return DROP_NAMES[-code - 1] ?? 'short';
}

/** Bytes on the wire for a plaintext of `len` bytes (header + padded ciphertext + tag). */
export function sealedSize(len: number): number {
  return MSG_TRANSPORT_HEADER_SIZE + paddedLength(len) + AEAD_TAG_SIZE;
}

export function paddedLength(len: number): number {
  return (len + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
}

/** Filled by parseTransportHeader (pass one reused object). */
export interface TransportHeader {
  receiver: number;
  /** Exact below 2^53; above that it is rounded (open() drops such counters as 'counter-exhausted'). */
  counter: number;
}

/**
 * Read the receiver index and counter of the transport message `buf[off, off+len)` into
 * `out` without allocating. False when it is shorter than MSG_TRANSPORT_MIN_SIZE or its
 * first LE u32 is not 4 (type byte plus three zero reserved bytes).
 */
export function parseTransportHeader(buf: Uint8Array, off: number, len: number, out: TransportHeader): boolean {
  if (len < MSG_TRANSPORT_MIN_SIZE || off < 0 || off + len > buf.length) return false;
  if (readU32LE(buf, off) !== MSG_TRANSPORT) return false;
  out.receiver = readU32LE(buf, off + TRANSPORT_OFFSET_RECEIVER);
  out.counter = readU32LE(buf, off + TRANSPORT_OFFSET_COUNTER + 4) * TWO_32 + readU32LE(buf, off + TRANSPORT_OFFSET_COUNTER);
  return true;
}

export interface KeypairInit {
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  localIndex: number;
  remoteIndex: number;
  isInitiator: boolean;
  createdMs: number;
}

/**
 * One session's transport keys (the result of a handshake), after wireguard-go's Keypair.
 * Not shared across threads; seal/open never throw for anything a peer sends.
 */
export class Keypair {
  readonly sendKey: Uint8Array;
  readonly recvKey: Uint8Array;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly isInitiator: boolean;
  readonly createdMs: number;
  /** Next counter to send; also the number of messages sealed so far. */
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  /** Set when open() authenticated at least one message (initiator's key confirmation). */
  receivedAny = false;

  private readonly sendKeyObj: KeyObject;
  private readonly recvKeyObj: KeyObject;
  /** Per-keypair nonce scratch: createCipheriv copies the IV, so reusing it is safe. */
  private readonly sendNonce = Buffer.alloc(12);
  private readonly recvNonce = Buffer.alloc(12);

  constructor(init: KeypairInit) {
    if (init.sendKey.length !== KEY_SIZE || init.recvKey.length !== KEY_SIZE) throw new RangeError('transport keys must be 32 bytes');
    this.sendKey = init.sendKey;
    this.recvKey = init.recvKey;
    this.localIndex = init.localIndex >>> 0;
    this.remoteIndex = init.remoteIndex >>> 0;
    this.isInitiator = init.isInitiator;
    this.createdMs = init.createdMs;
    this.sendKeyObj = createSecretKey(init.sendKey);
    this.recvKeyObj = createSecretKey(init.recvKey);
  }

  /**
   * Seal `plaintext[pOff, pOff+pLen)` into a transport message at `out[outOff, ...)` and
   * return its size, `sealedSize(pLen)`, or a negative TransportDrop code
   * ('counter-exhausted', 'no-room'). Consumes one counter on success.
   *
   * Aliasing: `out` may be the same memory as `plaintext` in any overlap. The fast path is
   * headroom: the plaintext at `pOff` with `outOff = pOff - 16`, so the ciphertext lands
   * exactly over the plaintext and the header in the 16 bytes in front of it; any other
   * layout costs one extra memmove of the plaintext. `out` must have
   * `sealedSize(pLen)` bytes from `outOff`; the padding bytes after the plaintext are
   * overwritten with zeros, then with ciphertext.
   */
  seal(plaintext: Uint8Array, pOff: number, pLen: number, out: Buffer, outOff: number): number {
    const counter = this.sendCounter;
    if (counter >= REJECT_AFTER_MESSAGES_NUM) return TransportDrop['counter-exhausted'];
    const padded = paddedLength(pLen);
    const total = MSG_TRANSPORT_HEADER_SIZE + padded + AEAD_TAG_SIZE;
    if (outOff < 0 || outOff + total > out.length || pOff < 0 || pOff + pLen > plaintext.length) return TransportDrop['no-room'];
    this.sendCounter = counter + 1;

    const ctOff = outOff + MSG_TRANSPORT_HEADER_SIZE;
    // Move the plaintext into place first (memmove semantics), so the header cannot clobber it.
    if (plaintext.buffer !== out.buffer || plaintext.byteOffset + pOff !== out.byteOffset + ctOff) {
      out.set(plaintext.subarray(pOff, pOff + pLen), ctOff);
    }
    out.fill(0, ctOff + pLen, ctOff + padded);

    const lo = counter % TWO_32;
    const hi = (counter - lo) / TWO_32;
    out[outOff] = MSG_TRANSPORT;
    out[outOff + 1] = 0;
    out[outOff + 2] = 0;
    out[outOff + 3] = 0;
    out.writeUInt32LE(this.remoteIndex, outOff + TRANSPORT_OFFSET_RECEIVER);
    out.writeUInt32LE(lo, outOff + TRANSPORT_OFFSET_COUNTER);
    out.writeUInt32LE(hi, outOff + TRANSPORT_OFFSET_COUNTER + 4);
    const nonce = this.sendNonce;
    nonce.writeUInt32LE(lo, 4);
    nonce.writeUInt32LE(hi, 8);

    const cipher = createCipheriv(CIPHER, this.sendKeyObj, nonce, { authTagLength: AEAD_TAG_SIZE });
    if (padded > 0) {
      // update() returns a new Buffer; copy it back over the (now consumed) plaintext.
      const ct = cipher.update(out.subarray(ctOff, ctOff + padded));
      out.set(ct, ctOff);
    }
    cipher.final();
    out.set(cipher.getAuthTag(), ctOff + padded);
    return total;
  }

  /**
   * Batched sealing (the caller encrypts natively): take the next send counter, or return
   * -1 when the keypair has sent REJECT_AFTER_MESSAGES messages. The caller then writes the
   * header with writeTransportHeader() and seals with `sendKey` and this counter.
   */
  reserveSendCounter(): number {
    const counter = this.sendCounter;
    if (counter >= REJECT_AFTER_MESSAGES_NUM) return -1;
    this.sendCounter = counter + 1;
    return counter;
  }

  /**
   * Batched opening: call ONLY after the message under `counter` authenticated with
   * `recvKey`. Moves the replay window; returns 0, or TransportDrop 'counter-exhausted' /
   * 'replay' (then the packet must be dropped).
   */
  acceptCounter(counter: number): number {
    if (counter >= REJECT_AFTER_MESSAGES_NUM) return TransportDrop['counter-exhausted'];
    if (!this.replay.validateCounter(counter, REJECT_AFTER_MESSAGES_NUM)) return TransportDrop.replay;
    this.receivedAny = true;
    return 0;
  }

  /**
   * Authenticate and decrypt the transport message `message[off, off+len)` into
   * `out[outOff, ...)`. Returns the plaintext length INCLUDING the zero padding (the caller
   * trims by the IP header's total length; 0 is a keepalive) or a negative TransportDrop
   * code. The replay window is updated only after the tag verified.
   *
   * Aliasing: `out` may overlap the message (e.g. `outOff = off + 16`, decrypt in place);
   * nothing is written to `out` unless authentication succeeded. `out` needs
   * `len - 32` bytes from `outOff`.
   */
  open(message: Uint8Array, off: number, len: number, out: Buffer, outOff: number): number {
    if (len < MSG_TRANSPORT_MIN_SIZE || off < 0 || off + len > message.length) return TransportDrop.short;
    // Type is the whole LE u32 (type byte + 3 reserved zeros), as wireguard-go reads it.
    if (readU32LE(message, off) !== MSG_TRANSPORT) return TransportDrop.short;
    const ctLen = len - MSG_TRANSPORT_MIN_SIZE;
    if (outOff < 0 || outOff + ctLen > out.length) return TransportDrop['no-room'];
    const nonce = this.recvNonce;
    const cOff = off + TRANSPORT_OFFSET_COUNTER;
    for (let i = 0; i < 8; i++) nonce[4 + i] = message[cOff + i];
    const lo = readU32LE(message, cOff);
    const hi = readU32LE(message, cOff + 4);

    const decipher = createDecipheriv(CIPHER, this.recvKeyObj, nonce, { authTagLength: AEAD_TAG_SIZE });
    const ctStart = off + MSG_TRANSPORT_HEADER_SIZE;
    decipher.setAuthTag(message.subarray(ctStart + ctLen, ctStart + ctLen + AEAD_TAG_SIZE));
    const pt = ctLen > 0 ? decipher.update(message.subarray(ctStart, ctStart + ctLen)) : undefined;
    try {
      // OpenSSL reports a bad tag only by throwing from final(); this is the one catch on the path.
      decipher.final();
    } catch {
      return TransportDrop.auth;
    }
    // Authenticated: now the counter can be trusted enough to move the window.
    if (hi >= 0x200000) return TransportDrop['counter-exhausted'];
    const counter = hi * TWO_32 + lo;
    if (counter >= REJECT_AFTER_MESSAGES_NUM) return TransportDrop['counter-exhausted'];
    if (!this.replay.validateCounter(counter, REJECT_AFTER_MESSAGES_NUM)) return TransportDrop.replay;
    if (pt !== undefined) out.set(pt, outOff);
    this.receivedAny = true;
    return ctLen;
  }
}

/** Write the 16-byte transport header (type 4, receiver index, counter) at `out[off]`. */
export function writeTransportHeader(out: Uint8Array, off: number, receiver: number, counter: number): void {
  const lo = counter % TWO_32;
  const hi = (counter - lo) / TWO_32;
  out[off] = MSG_TRANSPORT;
  out[off + 1] = 0;
  out[off + 2] = 0;
  out[off + 3] = 0;
  writeU32LE(out, off + TRANSPORT_OFFSET_RECEIVER, receiver);
  writeU32LE(out, off + TRANSPORT_OFFSET_COUNTER, lo);
  writeU32LE(out, off + TRANSPORT_OFFSET_COUNTER + 4, hi);
}

function writeU32LE(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

function readU32LE(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}
