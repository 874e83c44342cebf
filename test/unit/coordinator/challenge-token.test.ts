/** Stateless join challenges (coordinator/challenge-token.ts): only ids minted with the secret, unexpired, open. */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { ChallengeSigner, USED_MARKER_SLACK_MS } from '../../../coordinator/challenge-token';
import { proveKey, verifyKeyProof } from '../../../protocol/key-proof';
import nacl from 'tweetnacl';

const TTL = 60_000;
const secret = randomBytes(32);

test('an issued challenge opens to the same ephemeral key and nonce; a member\'s proof over it verifies', (t) => {
  const s = new ChallengeSigner(secret, TTL);
  const c = s.issue(1_000);
  const o = s.open(c.id, 1_000 + TTL - 1);
  if (typeof o === 'string') return t.fail(o);
  t.is(Buffer.from(o.challenge().ephemeralPublic).toString('base64'), c.ephemeralPublic);
  t.is(Buffer.from(o.challenge().nonce).toString('base64'), c.nonce);
  t.is(o.usedTtlMs, 1 + USED_MARKER_SLACK_MS);
  const kp = nacl.box.keyPair();
  const proof = proveKey(kp.secretKey, kp.publicKey, Buffer.from(c.ephemeralPublic, 'base64'), Buffer.from(c.nonce, 'base64'), 'join');
  t.true(verifyKeyProof(o.challenge(), kp.publicKey, 'join', proof));
  t.false(verifyKeyProof(o.challenge(), nacl.box.keyPair().publicKey, 'join', proof), 'the proof is bound to the member\'s key');
  // Another coordinator with the same secret opens it too (positive control for the next test).
  t.not(typeof new ChallengeSigner(Buffer.from(secret), TTL).open(c.id, 2_000), 'string');
});

test('refused: another secret, any flipped bit, a wrong length or version, garbage; expired', (t) => {
  const s = new ChallengeSigner(secret, TTL);
  const c = s.issue(1_000);
  t.is(new ChallengeSigner(randomBytes(32), TTL).open(c.id, 1_000), 'invalid');
  const raw = Buffer.from(c.id, 'base64url');
  for (let bit = 0; bit < raw.length * 8; bit++) {
    const x = Buffer.from(raw);
    x[bit >> 3] ^= 1 << (bit & 7);
    if (s.open(x.toString('base64url'), 1_000) !== 'invalid') t.fail(`bit ${bit} flipped still opens`);
  }
  t.is(s.open(raw.subarray(0, raw.length - 1).toString('base64url'), 1_000), 'invalid');
  t.is(s.open(Buffer.concat([raw, Buffer.alloc(1)]).toString('base64url'), 1_000), 'invalid');
  t.is(s.open('x'.repeat(22), 1_000), 'invalid');
  t.is(s.open('not base64url!', 1_000), 'invalid');
  t.is(s.open(c.id, 1_000 + TTL), 'expired');
  t.not(typeof s.open(c.id, 1_000 + TTL - 1), 'string', 'positive control: one ms earlier it opens');
  // Minted by a coordinator whose clock runs far ahead: its expiry is beyond what a marker covers.
  t.is(s.open(s.issue(1_000 + TTL + USED_MARKER_SLACK_MS + 1).id, 1_000), 'expired');
});
