/**
 * The verifier side of protocol/key-proof.ts on OpenSSL's X25519 (node:crypto) instead of
 * tweetnacl: a profile of the join path showed tweetnacl's scalar multiplication taking ~40 %
 * of the CPU. The proof formula is the same (test/unit/coordinator/key-proof-native.test.ts
 * checks it against proveKey/verifyKeyProof):
 *
 *     proof = BLAKE2s-256(key = BLAKE2s-256(X25519(e, S)), LABEL || 0 || context || 0 || N || S)
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2s';
import { KEY_PROOF_LABEL, KEY_PROOF_LEN, KEY_PROOF_NONCE_LEN, type KeyChallenge } from '../protocol/key-proof';

// DER wrappers for raw X25519 keys (RFC 8410): PKCS#8 private, SPKI public.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

export function createKeyChallengeNative(): KeyChallenge {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const priv = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return { ephemeralPrivate: new Uint8Array(priv), ephemeralPublic: new Uint8Array(pub), nonce: randomBytes(KEY_PROOF_NONCE_LEN) };
}

/** Same contract as verifyKeyProof: false for a wrong proof, a malformed or low-order key. */
export function verifyKeyProofNative(challenge: KeyChallenge, claimedPublic: Uint8Array, context: string, proof: Uint8Array): boolean {
  if (claimedPublic.length !== 32 || proof.length !== KEY_PROOF_LEN) return false;
  let shared: Buffer;
  try {
    shared = diffieHellman({
      privateKey: createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, challenge.ephemeralPrivate]), format: 'der', type: 'pkcs8' }),
      publicKey: createPublicKey({ key: Buffer.concat([SPKI_PREFIX, claimedPublic]), format: 'der', type: 'spki' }),
    });
  } catch {
    return false; // OpenSSL refuses an all-zero shared secret (low-order point)
  }
  if (shared.every((b) => b === 0)) return false;
  const msg = Buffer.concat([Buffer.from(KEY_PROOF_LABEL + '\0' + context + '\0'), challenge.nonce, claimedPublic]);
  const expected = blake2s(msg, { key: blake2s(shared), dkLen: KEY_PROOF_LEN });
  return timingSafeEqual(expected, proof);
}
