/** Signed answers (coordinator/answer-signing.ts): the signature binds route, member, since, nonce and body, alone or in a batch (Merkle path); keys load only when private. */
import test from 'ava';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { BatchSigner, generateSigningKey, loadSigningKey, newNonce, parseSigningPublicKey, signAnswer, signBatch, signingPublicKey, verifyAnswer,
  verifySignedAnswer, type AnswerContext } from '../../../coordinator/answer-signing';

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

test('a batch signature: every answer verifies with its own path, and only for its own route, member, since, nonce and body', (t) => {
  for (const n of [2, 3, 5, 8, 9]) {
    const items = Array.from({ length: n }, (_, i) => ({
      context: { route: 'peers' as const, member: `100.64.0.${i + 1}`, since: '41', nonce: newNonce() },
      // Most share one body (one view class), one has its own.
      body: i === 1 ? body.replace('42', '43') : body,
    }));
    const sigs = signBatch(priv, items);
    t.is(new Set(sigs.map((s) => s.signature)).size, 1, `${n} answers, one signature`);
    items.forEach(({ context, body: b }, i) => {
      const { signature, proof } = sigs[i];
      t.truthy(proof);
      t.true(verifySignedAnswer(pub, context, b, signature, proof), `positive control: answer ${i} of ${n}`);
      t.false(verifySignedAnswer(pub, context, b, signature), 'without its path it is no plain signature');
      t.false(verifySignedAnswer(pub, { ...context, member: '100.64.9.9' }, b, signature, proof), 'another member');
      t.false(verifySignedAnswer(pub, { ...context, nonce: newNonce() }, b, signature, proof), 'a replay to a later request');
      t.false(verifySignedAnswer(pub, { ...context, since: '-' }, b, signature, proof), 'a delta posing as a full map');
      t.false(verifySignedAnswer(pub, { ...context, route: 'join' }, b, signature, proof), 'another route');
      t.false(verifySignedAnswer(pub, context, b.replace('AQEB', 'AgIC'), signature, proof), 'a changed peer key');
      t.false(verifySignedAnswer(parseSigningPublicKey(generateSigningKey().publicKey), context, b, signature, proof), 'another key');
      // Another answer's path (same batch, same signature) does not fit this answer.
      const other = sigs[(i + 1) % n].proof!;
      if (other !== proof) t.false(verifySignedAnswer(pub, context, b, signature, other), 'another answer\'s path');
      const raw = Buffer.from(proof!, 'base64');
      raw[0] ^= 1; // flip a side
      t.false(verifySignedAnswer(pub, context, b, signature, raw.toString('base64')), 'a path with a flipped side');
      t.false(verifySignedAnswer(pub, context, b, signature, Buffer.from(proof!, 'base64').subarray(33).toString('base64') || 'AA=='), 'a path one level short');
    });
    // Answer 0's body under answer 1's context: the leaf binds both.
    t.false(verifySignedAnswer(pub, items[1].context, items[0].body, sigs[1].signature, sigs[1].proof), 'another answer\'s body');
  }
});

test('a batch of one is a plain signature; BatchSigner signs what is asked in one turn once', async (t) => {
  const one = signBatch(priv, [{ context: ctx, body }]);
  t.is(one[0].proof, undefined);
  t.true(verifyAnswer(pub, ctx, body, one[0].signature), 'positive control: the plain check');
  const s = new BatchSigner(priv);
  const ctxs = Array.from({ length: 20 }, (_, i) => ({ ...ctx, member: `100.64.1.${i}`, nonce: newNonce() }));
  const sigs = await Promise.all(ctxs.map((c) => s.sign(c, body)));
  t.is(s.signatures, 1);
  t.is(s.answers, 20);
  sigs.forEach((x, i) => t.true(verifySignedAnswer(pub, ctxs[i], body, x.signature, x.proof)));
  const later = await s.sign(ctx, body);
  t.is(s.signatures, 2, 'a later turn: its own signature');
  t.is(later.proof, undefined);
  t.true(verifySignedAnswer(pub, ctx, body, later.signature));
  t.throws(() => s.sign({ ...ctx, nonce: 'a\nb' }, body), { message: /newline/ });
});
