/**
 * mac1/mac2 and cookie replies: WireGuard's DoS mitigation (paper §5.4.4, §5.4.7;
 * wireguard-go device/cookie.go).
 *
 *   mac1 = MAC(HASH("mac1----" || Spub_receiver), msg[0 : off_mac1])
 *          → proves the sender knows the receiver's public key; checked before any DH.
 *   cookie = MAC(secret, source address bytes), secret random, rotated every 2 minutes
 *   mac2 = MAC(cookie, msg[0 : off_mac2])   (zero when the sender holds no fresh cookie)
 *          → under load, the receiver answers initiations without a valid mac2 with a
 *            cookie reply instead of doing the handshake.
 *   reply.cookie = XAEAD(HASH("cookie--" || Spub_receiver), nonce24, cookie, ad = msg.mac1)
 *
 * Both classes read time only from the injected Clock (`now()`, monotonic ms) and randomness
 * only from the injected Rng. Network input never makes them throw.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Clock } from '../common';
import {
  COOKIE_NONCE_SIZE, COOKIE_REFRESH_TIME_MS, KEY_SIZE, MAC_SIZE, MSG_COOKIE_REPLY_SIZE, MSG_INITIATION,
  MSG_INITIATION_SIZE, MSG_RESPONSE, MSG_RESPONSE_SIZE, WG_LABEL_COOKIE, WG_LABEL_MAC1,
} from './constants';
import { defaultRng, type Rng } from './keys';
import { decodeCookieReply, encodeCookieReply } from './messages';
import { hash, mac, xaeadOpen, xaeadSeal } from './noise';

/** Keys derived from one static public key (the receiver's). */
export interface MacKeys {
  /** HASH("mac1----" || publicKey): key of mac1. */
  mac1Key: Buffer;
  /** HASH("cookie--" || publicKey): key that encrypts cookie replies. */
  cookieKey: Buffer;
}

export function deriveMacKeys(publicKey: Uint8Array): MacKeys {
  if (publicKey.length !== KEY_SIZE) throw new RangeError(`public key must be ${KEY_SIZE} bytes`);
  return {
    mac1Key: hash(Buffer.from(WG_LABEL_MAC1, 'ascii'), publicKey),
    cookieKey: hash(Buffer.from(WG_LABEL_COOKIE, 'ascii'), publicKey),
  };
}

/** [offset of mac1, offset of mac2] for an initiation or response, else undefined. */
function macOffsets(msg: Uint8Array): [number, number] | undefined {
  if (msg.length === MSG_INITIATION_SIZE && msg[0] === MSG_INITIATION) return [MSG_INITIATION_SIZE - 2 * MAC_SIZE, MSG_INITIATION_SIZE - MAC_SIZE];
  if (msg.length === MSG_RESPONSE_SIZE && msg[0] === MSG_RESPONSE) return [MSG_RESPONSE_SIZE - 2 * MAC_SIZE, MSG_RESPONSE_SIZE - MAC_SIZE];
  return undefined;
}

function macKeysOf(k: Uint8Array | MacKeys): MacKeys {
  return k instanceof Uint8Array ? deriveMacKeys(k) : k;
}

function equal16(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Receiver side: one per local identity. */
export class CookieChecker {
  private readonly secret = Buffer.alloc(KEY_SIZE);
  private secretSetAt: number | undefined;

  private readonly keys: MacKeys;

  /** `local`: our static public key (or its precomputed MacKeys, LocalIdentity.macKeys). */
  constructor(local: Uint8Array | MacKeys, private readonly clock: Pick<Clock, 'now'>, private readonly rng: Rng = defaultRng) {
    this.keys = macKeysOf(local);
  }

  /** mac1 of an incoming initiation/response addressed to us; false for anything else. */
  checkMac1(msg: Uint8Array): boolean {
    const offs = macOffsets(msg);
    if (!offs) return false;
    const [o1, o2] = offs;
    return equal16(mac(this.keys.mac1Key, msg.subarray(0, o1)), msg.subarray(o1, o2));
  }

  /** mac2 against the cookie we would give `src`; false once the secret is older than 2 minutes. */
  checkMac2(msg: Uint8Array, src: Uint8Array): boolean {
    const offs = macOffsets(msg);
    if (!offs || this.secretSetAt === undefined || this.clock.now() - this.secretSetAt > COOKIE_REFRESH_TIME_MS) return false;
    const [, o2] = offs;
    const cookie = mac(this.secret, src);
    return equal16(mac(cookie, msg.subarray(0, o2)), msg.subarray(o2));
  }

  /**
   * A 64-byte cookie reply to `msg` (an initiation or response we will not process now),
   * addressed to `receiverIndex` (the sender index of `msg`). Precondition: `msg` passed
   * checkMac1 (so it is a well-formed initiation/response); otherwise this throws RangeError.
   */
  createReply(msg: Uint8Array, receiverIndex: number, src: Uint8Array, rng: Rng = this.rng): Buffer {
    const offs = macOffsets(msg);
    if (!offs) throw new RangeError('createReply: not an initiation or response');
    const nowMs = this.clock.now();
    if (this.secretSetAt === undefined || nowMs - this.secretSetAt > COOKIE_REFRESH_TIME_MS) {
      this.secret.set(rng(KEY_SIZE));
      this.secretSetAt = nowMs;
    }
    const [o1, o2] = offs;
    const cookie = mac(this.secret, src);
    const nonce = Buffer.from(rng(COOKIE_NONCE_SIZE));
    const encryptedCookie = xaeadSeal(this.keys.cookieKey, nonce, cookie, msg.subarray(o1, o2));
    const out = Buffer.alloc(MSG_COOKIE_REPLY_SIZE);
    encodeCookieReply(out, { receiver: receiverIndex, nonce, encryptedCookie });
    return out;
  }
}

/** Sender side: one per peer, built from the peer's MacKeys. */
export class CookieGenerator {
  private readonly lastMac1 = Buffer.alloc(MAC_SIZE);
  private hasLastMac1 = false;
  private readonly cookie = Buffer.alloc(MAC_SIZE);
  private cookieSetAt: number | undefined;

  private readonly keys: MacKeys;

  /** `peer`: the peer's static public key (or its precomputed MacKeys, PeerCrypto.macKeys). */
  constructor(peer: Uint8Array | MacKeys, private readonly clock: Pick<Clock, 'now'>) {
    this.keys = macKeysOf(peer);
  }

  /**
   * Writes mac1 and, when we hold a cookie at most 2 minutes old, mac2 into an outgoing
   * initiation/response (in place). mac2 stays as it is (zero) otherwise. Returns false
   * (and writes nothing) if `msg` is not an initiation/response.
   */
  addMacs(msg: Buffer): boolean {
    const offs = macOffsets(msg);
    if (!offs) return false;
    const [o1, o2] = offs;
    const m1 = mac(this.keys.mac1Key, msg.subarray(0, o1));
    msg.set(m1, o1);
    this.lastMac1.set(m1);
    this.hasLastMac1 = true;
    if (this.hasCookie()) {
      msg.set(mac(this.cookie, msg.subarray(0, o2)), o2);
    }
    return true;
  }

  /**
   * Decrypts and stores the cookie of a reply to the last message we sent (the AEAD binds it
   * to that message's mac1). The caller routed the reply here by its receiver index.
   */
  consumeReply(reply: Uint8Array): boolean {
    if (!this.hasLastMac1) return false;
    const d = decodeCookieReply(reply);
    if (!d.ok) return false;
    const cookie = xaeadOpen(this.keys.cookieKey, d.msg.nonce, d.msg.encryptedCookie, this.lastMac1);
    if (!cookie || cookie.length !== MAC_SIZE) return false;
    this.cookie.set(cookie);
    this.cookieSetAt = this.clock.now();
    this.hasLastMac1 = false;
    return true;
  }

  /** Whether a fresh cookie is held (mac2 will be set); for metrics and tests. */
  hasCookie(): boolean {
    return this.cookieSetAt !== undefined && this.clock.now() - this.cookieSetAt <= COOKIE_REFRESH_TIME_MS;
  }
}
