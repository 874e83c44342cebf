/**
 * Stateless join challenges: `GET /v1/challenge` writes nothing, so a flood of challenge requests
 * cannot grow Redis.
 *
 * The challenge id is a token the coordinators can check and reopen with a secret they share
 * (`P:challenge-key`, created once with SET NX):
 *
 *     id   = base64url( version(1) || expiresAt(8, ms, big-endian) || nonce(16) || tag(16) )
 *     tag  = HMAC-SHA256(K_tag, version || expiresAt || nonce)[0..16]
 *     e    = HMAC-SHA256(K_eph, version || expiresAt || nonce)   (the ephemeral X25519 private key)
 *
 * with K_tag, K_eph derived from the secret under distinct labels. The member gets the id, E = X25519
 * public of e, and the nonce; its key proof (protocol/key-proof.ts) binds its static key to E and
 * the nonce. Properties of the stored challenge it replaces, kept:
 *  - only a coordinator can mint one (the tag), and e never leaves the coordinators (derived, not sent);
 *  - freshness: refused after expiresAt (60 s);
 *  - single use: the join script writes `P:challenge-used:<nonce>` (lives until the id expired
 *    everywhere) on a *successful* join only, and refuses an id whose marker exists. Markers are
 *    bounded by successful joins, not by challenge requests;
 *  - binding to the join: the proof covers E and the nonce, both fixed by the id.
 * Coordinators' clocks must agree within `USED_MARKER_SLACK_MS`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { type KeyChallenge, keyChallengeFromPrivate } from '../protocol';

const VERSION = 1;
const NONCE_LEN = 16;
const TAG_LEN = 16;
const ID_LEN = 1 + 8 + NONCE_LEN + TAG_LEN;
/** A used marker outlives its challenge's expiry by this much (clock skew between coordinators). */
export const USED_MARKER_SLACK_MS = 60_000;

/** A challenge id that checked out: the challenge to verify the proof with, and its single-use marker. */
export interface OpenedChallenge {
  /** Derives the ephemeral private key (one HMAC; its public key only when read): call only to check a proof. */
  challenge(): KeyChallenge;
  /** Parameter of `P:challenge-used:<nonce>` (the nonce, base64url). */
  usedId: string;
  /** TTL of the used marker (ms, > 0). */
  usedTtlMs: number;
}

export interface IssuedChallenge {
  id: string;
  /** base64 */
  ephemeralPublic: string;
  /** base64 */
  nonce: string;
}

function subkey(secret: Uint8Array, label: string): Buffer {
  return createHmac('sha256', secret).update(label).digest();
}

export class ChallengeSigner {
  private readonly tagKey: Buffer;
  private readonly ephKey: Buffer;

  constructor(secret: Uint8Array, private readonly ttlMs: number) {
    if (secret.length < 32) throw new RangeError('challenge secret must be at least 32 bytes');
    this.tagKey = subkey(secret, 'isthmus join challenge tag v1');
    this.ephKey = subkey(secret, 'isthmus join challenge ephemeral v1');
  }

  private tag(body: Buffer): Buffer {
    return createHmac('sha256', this.tagKey).update(body).digest().subarray(0, TAG_LEN);
  }

  private ephemeralPrivate(body: Buffer): Buffer {
    return createHmac('sha256', this.ephKey).update(body).digest();
  }

  private derive(body: Buffer): KeyChallenge {
    return keyChallengeFromPrivate(this.ephemeralPrivate(body), body.subarray(9, 9 + NONCE_LEN));
  }

  /**
   * The challenge to check a proof with. Checking needs only e and the nonce, so E (a base-point
   * multiplication, as costly as the check itself) is computed only if something reads it.
   */
  private forProof(body: Buffer): KeyChallenge {
    const ephemeralPrivate = new Uint8Array(this.ephemeralPrivate(body));
    const nonce = new Uint8Array(body.subarray(9, 9 + NONCE_LEN));
    let pub: Uint8Array | undefined;
    return {
      ephemeralPrivate, nonce,
      get ephemeralPublic(): Uint8Array {
        pub ??= keyChallengeFromPrivate(ephemeralPrivate, nonce).ephemeralPublic;
        return pub;
      },
    };
  }

  issue(now: number): IssuedChallenge {
    const body = Buffer.alloc(1 + 8 + NONCE_LEN);
    body[0] = VERSION;
    body.writeBigUInt64BE(BigInt(now + this.ttlMs), 1);
    randomBytes(NONCE_LEN).copy(body, 9);
    const challenge = this.derive(body);
    return {
      id: Buffer.concat([body, this.tag(body)]).toString('base64url'),
      ephemeralPublic: Buffer.from(challenge.ephemeralPublic).toString('base64'),
      nonce: Buffer.from(challenge.nonce).toString('base64'),
    };
  }

  /**
   * The challenge behind `id`, or why not: 'invalid' (malformed, or not minted with this
   * secret) or 'expired'. The tag is checked (constant time) before anything else is derived.
   */
  open(id: string, now: number): OpenedChallenge | 'invalid' | 'expired' {
    if (!/^[A-Za-z0-9_-]+$/.test(id)) return 'invalid';
    const raw = Buffer.from(id, 'base64url');
    if (raw.length !== ID_LEN || raw[0] !== VERSION) return 'invalid';
    const body = raw.subarray(0, ID_LEN - TAG_LEN);
    if (!timingSafeEqual(this.tag(body), raw.subarray(ID_LEN - TAG_LEN))) return 'invalid';
    const expiresAt = Number(body.readBigUInt64BE(1));
    if (now >= expiresAt || expiresAt - now > this.ttlMs + USED_MARKER_SLACK_MS) return 'expired';
    return { challenge: () => this.forProof(body), usedId: body.subarray(9).toString('base64url'), usedTtlMs: expiresAt - now + USED_MARKER_SLACK_MS };
  }
}
