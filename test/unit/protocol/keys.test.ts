import test from 'ava';
import { spawnSync } from 'node:child_process';
import { withTools } from '../../harness/root';
import { InvalidKeyError, generatePrivateKey, keyFromBase64, keyToBase64, publicKeyFromPrivate } from '../../../protocol/keys';

function wg(args: string[], input?: string): string {
  const r = spawnSync('wg', args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wg ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}
const wgTest = withTools(test, __filename, ['wg']);

test('generatePrivateKey clamps like wg genkey', (t) => {
  const k = generatePrivateKey(() => Buffer.alloc(32, 0xff));
  t.is(k[0], 0xf8);
  t.is(k[31], 0x7f);
  const z = generatePrivateKey(() => Buffer.alloc(32, 0));
  t.is(z[31], 0x40);
  t.is(generatePrivateKey().length, 32);
});

wgTest('public keys agree with `wg pubkey`', (t) => {
  for (let i = 0; i < 3; i++) {
    const priv = generatePrivateKey();
    t.is(keyToBase64(publicKeyFromPrivate(priv)), wg(['pubkey'], keyToBase64(priv) + '\n'));
    const theirs = wg(['genkey']);
    t.is(keyToBase64(publicKeyFromPrivate(keyFromBase64(theirs))), wg(['pubkey'], theirs + '\n'));
  }
});

test('base64 round trip', (t) => {
  const k = generatePrivateKey();
  const s = keyToBase64(k);
  t.is(s.length, 44);
  t.deepEqual(keyFromBase64(s), k);
  t.deepEqual(keyFromBase64(` ${s}\n`), k, 'surrounding whitespace (files, env) is tolerated');
});

test('bad base64 keys fail with InvalidKeyError and do not echo the input', (t) => {
  const good = keyToBase64(Buffer.alloc(32, 9));
  const bad = [
    '', 'abc', good.slice(0, 43), good + 'A', good.slice(0, 43) + '==', Buffer.alloc(31).toString('base64'),
    Buffer.alloc(33).toString('base64'), good.replace(/^./, '*'), good.slice(0, 42) + 'B=', // non-canonical last char
    Buffer.alloc(32).toString('base64url'), good.slice(0, 10) + ' ' + good.slice(11),
  ];
  for (const s of bad) {
    const e = t.throws(() => keyFromBase64(s), { instanceOf: InvalidKeyError }, JSON.stringify(s));
    t.is(e?.code, 'ERR_INVALID_KEY');
    if (s.length > 8) t.false(e!.message.includes(s), 'message must not contain the key');
  }
  t.throws(() => keyToBase64(Buffer.alloc(31)), { instanceOf: InvalidKeyError });
  t.throws(() => publicKeyFromPrivate(Buffer.alloc(16)), { instanceOf: InvalidKeyError });
});
