/**
 * X25519 through node:crypto (OpenSSL) instead of tweetnacl's pure JS: measured on this
 * machine (CPU time per operation, bench/agent-peers.ts prints it) ~540 µs for tweetnacl's
 * scalarMult against ~35 µs here, including the key import. Keys go in as JWK (raw bytes,
 * base64url): the DER/PKCS#8 import made OpenSSL derive the public key on every call, which
 * cost 10× the DH itself. A private key's KeyObject is kept (WeakMap, by the buffer and checked
 * against its bytes), so the static key and an ephemeral used twice are imported once.
 *
 * Node imports an OKP private JWK from `d` alone (`x` must be present; it is not used, and the
 * public key is derived from `d`): `x` is a placeholder. A self-test at load compares both
 * functions with tweetnacl on a fixed vector and on a mismatch (another Node) falls back to
 * tweetnacl for the process.
 */
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';

const PLACEHOLDER_X = Buffer.alloc(32).toString('base64url');
const privateKeys = new WeakMap<Uint8Array, { bytes: Buffer; key: KeyObject }>();

function b64url(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('base64url');
}

function privateKeyObject(k: Uint8Array): KeyObject {
  const hit = privateKeys.get(k);
  if (hit && hit.bytes.equals(k)) return hit.key;
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(k), x: PLACEHOLDER_X }, format: 'jwk' });
  privateKeys.set(k, { bytes: Buffer.from(k), key });
  return key;
}

function opensslScalarMult(privateKey: Uint8Array, publicKey: Uint8Array): Buffer {
  try {
    return diffieHellman({
      privateKey: privateKeyObject(privateKey),
      publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(publicKey) }, format: 'jwk' }),
    });
  } catch {
    // OpenSSL refuses a low-order point (an all-zero result) outright: report it as zero.
    return Buffer.alloc(32);
  }
}

function opensslScalarMultBase(privateKey: Uint8Array): Buffer {
  const x = createPublicKey(privateKeyObject(privateKey)).export({ format: 'jwk' }).x;
  return Buffer.from(x!, 'base64url');
}

function naclScalarMult(privateKey: Uint8Array, publicKey: Uint8Array): Buffer {
  return Buffer.from(nacl.scalarMult(privateKey, publicKey));
}

function naclScalarMultBase(privateKey: Uint8Array): Buffer {
  return Buffer.from(nacl.scalarMult.base(privateKey));
}

/** RFC 7748 §6.1 (Alice's private key, Bob's public key, their shared secret, Alice's public key). */
function opensslAgrees(): boolean {
  try {
    const a = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex');
    const bPub = Buffer.from('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f', 'hex');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    const aPub = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
    return opensslScalarMult(a, bPub).toString('hex') === shared && opensslScalarMultBase(a).toString('hex') === aPub
      && naclScalarMult(a, bPub).toString('hex') === shared;
  } catch {
    return false;
  }
}

/** Which implementation this process uses ('openssl' unless the self-test failed). */
export const X25519_IMPLEMENTATION: 'openssl' | 'tweetnacl' = opensslAgrees() ? 'openssl' : 'tweetnacl';

/** X25519(privateKey, publicKey): 32 bytes, all zero for a low-order public key. Both 32 bytes. */
export const scalarMult: (privateKey: Uint8Array, publicKey: Uint8Array) => Buffer =
  X25519_IMPLEMENTATION === 'openssl' ? opensslScalarMult : naclScalarMult;

/** X25519(privateKey, 9): the public key. */
export const scalarMultBase: (privateKey: Uint8Array) => Buffer =
  X25519_IMPLEMENTATION === 'openssl' ? opensslScalarMultBase : naclScalarMultBase;

/** The tweetnacl versions, for the bench's comparison and the tests' cross-check. */
export const tweetnaclX25519 = { scalarMult: naclScalarMult, scalarMultBase: naclScalarMultBase } as const;
