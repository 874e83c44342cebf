import test from 'ava';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { createKeyChallenge, proveKey, verifyKeyProof } from '../../../protocol/key-proof';
import { createKeyChallengeNative, verifyKeyProofNative } from '../../../coordinator/key-proof-native';

test('native verifier accepts exactly what the tweetnacl verifier accepts', (t) => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.boolean(), fc.nat(31), fc.constantFrom('join', 'relay'), (seed, tamper, at, ctx) => {
    const kp = nacl.box.keyPair.fromSecretKey(seed);
    const c = createKeyChallengeNative();
    const proof = proveKey(kp.secretKey, kp.publicKey, c.ephemeralPublic, c.nonce, 'join');
    if (tamper) proof[at] ^= 1;
    const want = verifyKeyProof(c, kp.publicKey, ctx, proof);
    return verifyKeyProofNative(c, kp.publicKey, ctx, proof) === want && want === (!tamper && ctx === 'join');
  }), { numRuns: 300 });
  // And the other way round: a tweetnacl challenge verified natively.
  const kp = nacl.box.keyPair();
  const c = createKeyChallenge();
  t.true(verifyKeyProofNative(c, kp.publicKey, 'join', proveKey(kp.secretKey, kp.publicKey, c.ephemeralPublic, c.nonce, 'join')));
});

test('native verifier refuses low-order and malformed keys', (t) => {
  const c = createKeyChallengeNative();
  t.false(verifyKeyProofNative(c, new Uint8Array(32), 'join', new Uint8Array(32)));
  const one = new Uint8Array(32); one[0] = 1;
  t.false(verifyKeyProofNative(c, one, 'join', new Uint8Array(32)));
  t.false(verifyKeyProofNative(c, new Uint8Array(31), 'join', new Uint8Array(32)));
  t.false(verifyKeyProofNative(c, new Uint8Array(32).fill(7), 'join', new Uint8Array(31)));
});
