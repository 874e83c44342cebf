import test from 'ava';
import nacl from 'tweetnacl';
import { ChallengeIssuer } from '../../../relay/challenge';
import { proveKey } from '../../../protocol/key-proof';
import { RELAY_PROOF_CONTEXT } from '../../../protocol/relay-frame';

const member = nacl.box.keyPair();
const prove = (e: Uint8Array, n: Uint8Array, ctx = RELAY_PROOF_CONTEXT) => proveKey(member.secretKey, member.publicKey, e, n, ctx);

test('a proof for an issued challenge verifies once, from the same 4-tuple only', (t) => {
  const ci = new ChallengeIssuer(0, { rotateMs: 1000 });
  const c = ci.issue(0x7f000001, 4000, 0);
  const proof = prove(c.ephemeralPublic, c.nonce);
  t.is(ci.verify(c.ephemeralPublic, c.nonce, member.publicKey, proof, 0x7f000002, 4000, 1), 'stale', 'other ip');
  t.is(ci.verify(c.ephemeralPublic, c.nonce, member.publicKey, proof, 0x7f000001, 4001, 1), 'stale', 'other port');
  t.is(ci.verify(c.ephemeralPublic, c.nonce, member.publicKey, proof, 0x7f000001, 4000, 1), 'ok');
  t.is(ci.verify(c.ephemeralPublic, c.nonce, member.publicKey, proof, 0x7f000001, 4000, 2), 'replayed');
});

test('wrong proof, wrong context, forged nonce', (t) => {
  const ci = new ChallengeIssuer(0);
  const c = ci.issue(1, 2, 0);
  const other = nacl.box.keyPair();
  const forged = Uint8Array.from(c.nonce);
  forged[15] ^= 1;
  t.is(ci.verify(c.ephemeralPublic, forged, member.publicKey, prove(c.ephemeralPublic, forged), 1, 2, 0), 'stale');
  t.is(ci.verify(new Uint8Array(32), c.nonce, member.publicKey, prove(c.ephemeralPublic, c.nonce), 1, 2, 0), 'stale');
  t.is(ci.verify(c.ephemeralPublic, c.nonce, other.publicKey, prove(c.ephemeralPublic, c.nonce), 1, 2, 0), 'bad-proof', 'MAC failures did not spend it');
  t.is(ci.verify(c.ephemeralPublic, c.nonce, member.publicKey, prove(c.ephemeralPublic, c.nonce), 1, 2, 0), 'replayed', 'a checked proof spent it');
  const d = ci.issue(1, 2, 0);
  t.is(ci.verify(d.ephemeralPublic, d.nonce, member.publicKey, prove(d.ephemeralPublic, d.nonce, 'join'), 1, 2, 0), 'bad-proof');
  const e = ci.issue(1, 2, 0);
  t.is(ci.verify(e.ephemeralPublic, e.nonce, member.publicKey, prove(e.ephemeralPublic, e.nonce), 1, 2, 0), 'ok');
});

test('checkChallenge costs no proof check and does not spend the challenge', (t) => {
  const ci = new ChallengeIssuer(0);
  const c = ci.issue(1, 2, 0);
  t.is(ci.checkChallenge(c.ephemeralPublic, c.nonce, 1, 3, 0), 'stale', 'other 4-tuple');
  const ok = ci.checkChallenge(c.ephemeralPublic, c.nonce, 1, 2, 0);
  t.is(typeof ok, 'object');
  t.is(typeof ci.checkChallenge(c.ephemeralPublic, c.nonce, 1, 2, 0), 'object', 'still unspent');
  t.is(ci.verifyProof(ok as Exclude<typeof ok, string>, member.publicKey, prove(c.ephemeralPublic, c.nonce), 0), 'ok');
  t.is(ci.checkChallenge(c.ephemeralPublic, c.nonce, 1, 2, 0), 'replayed');
});

test('challenges live through one rotation and expire after two', (t) => {
  const ci = new ChallengeIssuer(0, { rotateMs: 1000 });
  const a = ci.issue(1, 2, 0);
  const b = ci.issue(1, 2, 0);
  ci.rotate(1000);
  t.is(ci.verify(a.ephemeralPublic, a.nonce, member.publicKey, prove(a.ephemeralPublic, a.nonce), 1, 2, 1500), 'ok');
  t.is(ci.verify(b.ephemeralPublic, b.nonce, member.publicKey, prove(b.ephemeralPublic, b.nonce), 1, 2, 2000), 'stale');
});

test('a full used-set forces an early rotation', (t) => {
  const ci = new ChallengeIssuer(0, { rotateMs: 1e9, maxUsed: 2 });
  const c1 = ci.issue(1, 2, 0);
  t.is(ci.verify(c1.ephemeralPublic, c1.nonce, member.publicKey, prove(c1.ephemeralPublic, c1.nonce), 1, 2, 0), 'ok');
  const c2 = ci.issue(1, 2, 0);
  t.deepEqual(c2.ephemeralPublic, c1.ephemeralPublic);
  t.is(ci.verify(c2.ephemeralPublic, c2.nonce, member.publicKey, prove(c2.ephemeralPublic, c2.nonce), 1, 2, 0), 'ok');
  t.notDeepEqual(ci.issue(1, 2, 0).ephemeralPublic, c1.ephemeralPublic);
});
