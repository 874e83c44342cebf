import test from 'ava';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { blake2s } from '@noble/hashes/blake2s';
import { createKeyChallenge, proveKey, verifyKeyProof, KEY_PROOF_LABEL, KEY_PROOF_LEN } from '../../../protocol/key-proof';

/** The formula written out on tweetnacl, as an independent reference. */
function referenceProof(s: Uint8Array, S: Uint8Array, E: Uint8Array, nonce: Uint8Array, context: string): Uint8Array {
  const shared = nacl.scalarMult(s, E);
  const msg = Buffer.concat([Buffer.from(`${KEY_PROOF_LABEL}\0${context}\0`), nonce, S]);
  return blake2s(msg, { key: blake2s(shared), dkLen: KEY_PROOF_LEN });
}

test('proofs match the tweetnacl reference; the verifier accepts exactly the right ones', (t) => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.boolean(), fc.nat(31), fc.constantFrom('join', 'relay'), (seed, tamper, at, ctx) => {
    const kp = nacl.box.keyPair.fromSecretKey(seed);
    const c = createKeyChallenge();
    const proof = proveKey(kp.secretKey, kp.publicKey, c.ephemeralPublic, c.nonce, 'join');
    if (Buffer.compare(proof, referenceProof(kp.secretKey, kp.publicKey, c.ephemeralPublic, c.nonce, 'join')) !== 0) return false;
    if (tamper) proof[at] ^= 1;
    return verifyKeyProof(c, kp.publicKey, ctx, proof) === (!tamper && ctx === 'join');
  }), { numRuns: 300 });
  t.pass();
});

test('a proof for one key does not verify for another', (t) => {
  const a = nacl.box.keyPair();
  const b = nacl.box.keyPair();
  const c = createKeyChallenge();
  t.false(verifyKeyProof(c, b.publicKey, 'join', proveKey(a.secretKey, a.publicKey, c.ephemeralPublic, c.nonce, 'join')));
});

test('low-order and malformed keys are refused', (t) => {
  const c = createKeyChallenge();
  t.false(verifyKeyProof(c, new Uint8Array(32), 'join', new Uint8Array(32)));
  const one = new Uint8Array(32); one[0] = 1;
  t.false(verifyKeyProof(c, one, 'join', new Uint8Array(32)));
  t.false(verifyKeyProof(c, new Uint8Array(31), 'join', new Uint8Array(32)));
  t.false(verifyKeyProof(c, new Uint8Array(32).fill(7), 'join', new Uint8Array(31)));
  const kp = nacl.box.keyPair();
  t.throws(() => proveKey(kp.secretKey, kp.publicKey, new Uint8Array(32), c.nonce, 'join'), { instanceOf: RangeError });
});
