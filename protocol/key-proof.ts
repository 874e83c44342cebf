/**
 * Proof that a member holds the private half of its static X25519 key, for the relay
 * (before it binds member ↔ UDP 4-tuple) and the coordinator (re-join without a token).
 *
 * X25519 keys cannot sign, so the verifier sends a fresh ephemeral public key E and a
 * nonce N; the member answers
 *
 *     proof = BLAKE2s-256(key = BLAKE2s-256(X25519(s, E)), LABEL || context || N || S)
 *
 * where s/S is its static key pair. Only the holder of s (or of E's private half, which
 * never leaves the verifier) can compute X25519(s, E). `context` binds a proof to one use
 * ("relay", "join") so a proof for one verifier cannot be replayed at another; verifiers
 * make every (E, N) single-use.
 */
import nacl from 'tweetnacl';
import { blake2s } from '@noble/hashes/blake2s';
import { randomBytes, timingSafeEqual } from 'node:crypto';

export const KEY_PROOF_LABEL = 'isthmus key proof v1';
export const KEY_PROOF_LEN = 32;
export const KEY_PROOF_NONCE_LEN = 16;

export interface KeyChallenge {
  ephemeralPrivate: Uint8Array;
  ephemeralPublic: Uint8Array;
  nonce: Uint8Array;
}

export function createKeyChallenge(): KeyChallenge {
  const kp = nacl.box.keyPair();
  return { ephemeralPrivate: kp.secretKey, ephemeralPublic: kp.publicKey, nonce: randomBytes(KEY_PROOF_NONCE_LEN) };
}

function proofFromShared(shared: Uint8Array, context: string, nonce: Uint8Array, staticPublic: Uint8Array): Uint8Array {
  const label = Buffer.from(KEY_PROOF_LABEL + '\0' + context + '\0');
  const msg = Buffer.concat([label, nonce, staticPublic]);
  return blake2s(msg, { key: blake2s(shared), dkLen: KEY_PROOF_LEN });
}

/** Member side. */
export function proveKey(staticPrivate: Uint8Array, staticPublic: Uint8Array, ephemeralPublic: Uint8Array,
  nonce: Uint8Array, context: string): Uint8Array {
  return proofFromShared(nacl.scalarMult(staticPrivate, ephemeralPublic), context, nonce, staticPublic);
}

/** Verifier side; constant-time comparison. An all-zero shared secret (low-order key) fails. */
export function verifyKeyProof(challenge: KeyChallenge, claimedPublic: Uint8Array, context: string,
  proof: Uint8Array): boolean {
  if (claimedPublic.length !== 32 || proof.length !== KEY_PROOF_LEN) return false;
  const shared = nacl.scalarMult(challenge.ephemeralPrivate, claimedPublic);
  if (shared.every((b) => b === 0)) return false;
  const expected = proofFromShared(shared, context, challenge.nonce, claimedPublic);
  return timingSafeEqual(expected, proof);
}
