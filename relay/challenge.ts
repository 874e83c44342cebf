/**
 * Stateless, single-use auth challenges (the relay keeps nothing per unauthenticated sender).
 *
 * The relay holds one ephemeral X25519 key pair per "generation", rotated every
 * `rotateMs`; a challenge is valid while its generation is current or previous (so for
 * rotateMs..2×rotateMs). Each challenge's nonce is
 *
 *     nonce = r(8 random bytes) || BLAKE2s-64(key = relay secret, gen id || E || r || src ip || src port)
 *
 * so an AUTH is accepted only from the 4-tuple the CHALLENGE was sent to, without the relay
 * remembering it. Single use: once an AUTH's proof has been checked (passed or not), its nonce
 * goes into the generation's used set (memory only for senders that received a challenge at
 * their own address; the set dies with its generation, and a full set forces an early rotation).
 * The MAC is checked first and costs one BLAKE2s; only then is the X25519 proof check worth
 * spending the relay's AUTH work budget on (control.ts).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2s';
import { createKeyChallenge, verifyKeyProof, type KeyChallenge, CHALLENGE_NONCE_LEN, RELAY_PROOF_CONTEXT, type Challenge } from '../protocol';

const RANDOM_LEN = 8;
const MAC_LEN = CHALLENGE_NONCE_LEN - RANDOM_LEN;

interface Generation {
  id: number;
  key: KeyChallenge;
  createdAt: number;
  used: Set<string>;
}

export type ChallengeVerdict = 'ok' | 'stale' | 'replayed' | 'bad-proof';

/** A challenge whose MAC verified (opaque outside this file). */
export interface CheckedChallenge {
  readonly gen: unknown;
  readonly id: string;
  readonly nonce: Uint8Array;
}

export interface ChallengeIssuerOptions {
  /** @default 10_000 */
  rotateMs?: number;
  /** Used nonces remembered per generation before an early rotation. @default 65_536 */
  maxUsed?: number;
}

export class ChallengeIssuer {
  private readonly secret = randomBytes(32);
  private readonly rotateMs: number;
  private readonly maxUsed: number;
  private current: Generation;
  private previous: Generation | undefined;
  private nextId = 1;
  private readonly macInput = Buffer.alloc(4 + 32 + RANDOM_LEN + 4 + 2);

  constructor(now: number, opts: ChallengeIssuerOptions = {}) {
    this.rotateMs = opts.rotateMs ?? 10_000;
    this.maxUsed = opts.maxUsed ?? 65_536;
    this.current = this.newGeneration(now);
  }

  private newGeneration(now: number): Generation {
    return { id: this.nextId++, key: createKeyChallenge(), createdAt: now, used: new Set() };
  }

  /** Rotate when the current generation is old (call from a timer and before issuing). */
  rotate(now: number, force = false): void {
    if (force || now - this.current.createdAt >= this.rotateMs) {
      this.previous = this.current;
      this.current = this.newGeneration(now);
    }
  }

  private mac(gen: Generation, r: Uint8Array, addr: number, port: number): Uint8Array {
    const m = this.macInput;
    m.writeUInt32BE(gen.id >>> 0, 0);
    m.set(gen.key.ephemeralPublic, 4);
    m.set(r, 36);
    m.writeUInt32BE(addr >>> 0, 36 + RANDOM_LEN);
    m.writeUInt16BE(port & 0xffff, 40 + RANDOM_LEN);
    return blake2s(m, { key: this.secret, dkLen: MAC_LEN });
  }

  issue(addr: number, port: number, now: number): Challenge {
    this.rotate(now);
    const gen = this.current;
    const r = randomBytes(RANDOM_LEN);
    const nonce = new Uint8Array(CHALLENGE_NONCE_LEN);
    nonce.set(r, 0);
    nonce.set(this.mac(gen, r, addr, port), RANDOM_LEN);
    return { ephemeralPublic: gen.key.ephemeralPublic, nonce };
  }

  /**
   * The cheap half of an AUTH check (one BLAKE2s, no X25519): the echoed challenge is this
   * relay's, current or previous, issued to this 4-tuple and not yet spent. Run it before any
   * work budget is taken: garbage and foreign or stale challenges cost nothing more.
   * Returns the challenge's generation to hand to `verifyProof`, or why it is refused.
   */
  checkChallenge(ephemeralPublic: Uint8Array, nonce: Uint8Array, addr: number, port: number, now: number): CheckedChallenge | 'stale' | 'replayed' {
    this.rotate(now);
    const gen = this.findGeneration(ephemeralPublic, now);
    if (!gen || nonce.length !== CHALLENGE_NONCE_LEN) return 'stale';
    const expected = this.mac(gen, nonce.subarray(0, RANDOM_LEN), addr, port);
    if (!timingSafeEqual(Buffer.from(expected), Buffer.from(nonce.subarray(RANDOM_LEN)))) return 'stale';
    const id = Buffer.from(nonce).toString('hex');
    if (gen.used.has(id)) return 'replayed';
    return { gen, id, nonce };
  }

  /**
   * The expensive half (one X25519): the key proof over a challenge `checkChallenge` passed.
   * The challenge is spent whatever the outcome, so one challenge buys at most one proof check
   * (a sender replaying its own valid challenge with bad proofs gets 'replayed' after the first).
   */
  verifyProof(c: CheckedChallenge, staticPublic: Uint8Array, proof: Uint8Array, now: number): 'ok' | 'bad-proof' | 'replayed' {
    const gen = c.gen as Generation;
    if (gen.used.has(c.id)) return 'replayed';
    gen.used.add(c.id);
    if (gen === this.current && gen.used.size >= this.maxUsed) this.rotate(now, true);
    return verifyKeyProof({ ...gen.key, nonce: c.nonce }, staticPublic, RELAY_PROOF_CONTEXT, proof) ? 'ok' : 'bad-proof';
  }

  /** Both halves at once (tests, simple callers); on 'ok' the challenge is spent. */
  verify(ephemeralPublic: Uint8Array, nonce: Uint8Array, staticPublic: Uint8Array, proof: Uint8Array,
    addr: number, port: number, now: number): ChallengeVerdict {
    const c = this.checkChallenge(ephemeralPublic, nonce, addr, port, now);
    if (typeof c === 'string') return c;
    return this.verifyProof(c, staticPublic, proof, now);
  }

  private findGeneration(ephemeralPublic: Uint8Array, now: number): Generation | undefined {
    if (ephemeralPublic.length !== 32) return undefined;
    if (Buffer.from(this.current.key.ephemeralPublic).equals(Buffer.from(ephemeralPublic))) return this.current;
    const p = this.previous;
    if (p && now - p.createdAt < 2 * this.rotateMs && Buffer.from(p.key.ephemeralPublic).equals(Buffer.from(ephemeralPublic))) {
      return p;
    }
    return undefined;
  }
}
