/** Signed answers (coordinator/answer-signing.ts): the signature binds route, member, since, nonce and body; keys load only when private. */
import test from 'ava';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { generateSigningKey, loadSigningKey, newNonce, parseSigningPublicKey, signAnswer, signingPublicKey, verifyAnswer, type AnswerContext } from '../../../coordinator/answer-signing';

const k = generateSigningKey();
const priv = createPrivateKey(k.pem);
const pub = parseSigningPublicKey(k.publicKey);
const ctx: AnswerContext = { route: 'peers', member: '100.64.0.7', since: '41', nonce: newNonce() };
const body = JSON.stringify({ full: false, version: 42, upserts: [{ vip: '100.64.0.9', publicKey: Buffer.alloc(32, 1).toString('base64') }], removals: [] });

test('a signature verifies only for the same route, member, since, nonce, body and key', (t) => {
  const sig = signAnswer(priv, ctx, body);
  t.true(verifyAnswer(pub, ctx, body, sig), 'positive control');
  t.false(verifyAnswer(pub, ctx, body.replace('AQEB', 'AgIC'), sig), 'a changed peer key');
  t.false(verifyAnswer(pub, { ...ctx, member: '100.64.0.8' }, body, sig), 'another member');
  t.false(verifyAnswer(pub, { ...ctx, since: '-' }, body, sig), 'a delta posing as a full map');
  t.false(verifyAnswer(pub, { ...ctx, nonce: newNonce() }, body, sig), 'a replay to a later request');
  t.false(verifyAnswer(pub, { ...ctx, route: 'join' }, body, sig), 'another route');
  t.false(verifyAnswer(parseSigningPublicKey(generateSigningKey().publicKey), ctx, body, sig), 'another key');
  t.false(verifyAnswer(pub, ctx, body, 'AAAA'), 'junk signature');
  t.throws(() => signAnswer(priv, { ...ctx, member: 'a\nb' }, body), { message: /newline/ });
  t.is(signingPublicKey(priv), k.publicKey);
});

test('parseSigningPublicKey names what is wrong; loadSigningKey refuses a key others can read', (t) => {
  t.throws(() => parseSigningPublicKey('abc'), { message: /not a base64 Ed25519 public key/ });
  t.throws(() => parseSigningPublicKey(Buffer.alloc(31).toString('base64')), { message: /32 bytes/ });
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-sign-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'signing.key');
  writeFileSync(f, k.pem, { mode: 0o644 });
  chmodSync(f, 0o644);
  t.throws(() => loadSigningKey(f), { message: /readable by others \(mode 644\): chmod 600/ });
  chmodSync(f, 0o600);
  t.is(signingPublicKey(loadSigningKey(f)), k.publicKey, 'positive control: 0600');
  const ec = join(dir, 'ec.key');
  writeFileSync(ec, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  t.throws(() => loadSigningKey(ec), { message: /an Ed25519 key is needed/ });
});
