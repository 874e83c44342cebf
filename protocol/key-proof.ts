/**
 * Proof that a member holds the private half of its static X25519 key, for the relay
 * (before it binds member ↔ UDP 4-tuple) and the coordinator (re-join without a token).
 *
 * X25519 keys cannot sign, so the verifier sends a fresh ephemeral public key E and a
 * nonce N; the member answers
 *
 *     proof = BLAKE2s-256(key = BLAKE2s-256(X25519(s, E)), LABEL || 0 || context || 0 || N || S)
 *
 * where s/S is its static key pair. Only the holder of s (or of E's private half, which
 * never leaves the verifier) can compute X25519(s, E). `context` binds a proof to one use
 * ("relay", "join") so a proof for one verifier cannot be replayed at another; verifiers
 * make every (E, N) single-use.
 *
 * X25519 is protocol/x25519.ts (OpenSSL through node:crypto, keys imported as JWK): verifiers
 * do one per member authentication. The DER/PKCS#8 import used here before made OpenSSL derive
 * the public key on every call: ~410 µs of CPU per verification against ~55 µs now.
 * test/unit/protocol/key-proof.test.ts checks it against tweetnacl.
 */
import { blake2s } from '@noble/hashes/blake2s';
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { scalarMult, scalarMultBase } from './x25519';

export const KEY_PROOF_LABEL = 'isthmus key proof v1';
export const KEY_PROOF_LEN = 32;
export const KEY_PROOF_NONCE_LEN = 16;

export interface KeyChallenge {
  ephemeralPrivate: Uint8Array;
  ephemeralPublic: Uint8Array;
  nonce: Uint8Array;
}

/** X25519, or undefined for a malformed key or an all-zero result (low-order point). */
function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Buffer | undefined {
  if (privateKey.length !== 32 || publicKey.length !== 32) return undefined;
  const shared = scalarMult(privateKey, publicKey);
  return shared.every((b) => b === 0) ? undefined : shared;
}

export function createKeyChallenge(): KeyChallenge {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return {
    ephemeralPrivate: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32)),
    ephemeralPublic: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)),
    nonce: randomBytes(KEY_PROOF_NONCE_LEN),
  };
}

/**
 * The challenge whose ephemeral private key is `ephemeralPrivate` (32 bytes, any value: X25519
 * clamps it). For verifiers that derive the key from a secret instead of storing it.
 */
export function keyChallengeFromPrivate(ephemeralPrivate: Uint8Array, nonce: Uint8Array): KeyChallenge {
  if (ephemeralPrivate.length !== 32) throw new RangeError('key proof: an ephemeral private key is 32 bytes');
  return {
    ephemeralPrivate: new Uint8Array(ephemeralPrivate),
    ephemeralPublic: new Uint8Array(scalarMultBase(ephemeralPrivate)),
    nonce: new Uint8Array(nonce),
  };
}

function proofFromShared(shared: Uint8Array, context: string, nonce: Uint8Array, staticPublic: Uint8Array): Uint8Array {
  const label = Buffer.from(KEY_PROOF_LABEL + '\0' + context + '\0');
  const msg = Buffer.concat([label, nonce, staticPublic]);
  return blake2s(msg, { key: blake2s(shared), dkLen: KEY_PROOF_LEN });
}

/** Member side. Throws on a malformed or low-order challenge key (a broken verifier). */
export function proveKey(staticPrivate: Uint8Array, staticPublic: Uint8Array, ephemeralPublic: Uint8Array,
  nonce: Uint8Array, context: string): Uint8Array {
  const shared = x25519(staticPrivate, ephemeralPublic);
  if (!shared) throw new RangeError('key proof: the verifier sent an unusable ephemeral key');
  return proofFromShared(shared, context, nonce, staticPublic);
}

/** Verifier side; constant-time comparison. A malformed or low-order key fails. */
export function verifyKeyProof(challenge: KeyChallenge, claimedPublic: Uint8Array, context: string,
  proof: Uint8Array): boolean {
  if (claimedPublic.length !== 32 || proof.length !== KEY_PROOF_LEN) return false;
  const shared = x25519(challenge.ephemeralPrivate, claimedPublic);
  if (!shared) return false;
  return timingSafeEqual(proofFromShared(shared, context, challenge.nonce, claimedPublic), proof);
}
