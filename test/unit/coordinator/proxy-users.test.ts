/** Proxy-user records and their event: the parser fails closed, the hash verifies only the right password. */
import test from 'ava';
import { scryptSync, randomBytes } from 'node:crypto';
import { decodeEvent, encodeEvent, EventType } from '../../../common';
import { PROXY_USER_NAME, proxyUserFromHash, verifyProxyPassword } from '../../../coordinator/proxy-users';

const salt = randomBytes(16);
const params = { N: 1024, r: 8, p: 1 };
const hash = scryptSync('right-password', salt, 32, params);
const good = { salt: salt.toString('base64'), hash: hash.toString('base64'), scrypt: '1024,8,1', tags: '["ops"]', createdAt: '5' };

test('a well-formed record parses and verifies the right password only', async (t) => {
  const rec = proxyUserFromHash('alice', good)!;
  t.deepEqual(rec.tags, ['ops']);
  t.is(rec.createdAt, 5);
  t.true(await verifyProxyPassword(rec, 'right-password'));
  t.false(await verifyProxyPassword(rec, 'wrong-password'));
  t.false(await verifyProxyPassword(rec, ''));
});

test('records that are not well formed are refused (no user), not half-read', (t) => {
  t.is(proxyUserFromHash('alice', {}), undefined);
  for (const [field, value] of [
    ['scrypt', '1000,8,1'], ['scrypt', '2097152,8,1'], ['scrypt', '1024,64,1'], ['scrypt', 'x'],
    ['tags', '["a b"]'], ['tags', '{"a":1}'], ['tags', 'not json'], ['hash', Buffer.alloc(16).toString('base64')],
  ] as const) {
    t.is(proxyUserFromHash('alice', { ...good, [field]: value }), undefined, `${field}=${value}`);
  }
  t.truthy(proxyUserFromHash('alice', { ...good, tags: '[]' }), 'positive control: no tags is a record');
});

test('names: no colon (the HTTP Basic separator), no spaces, at most 64', (t) => {
  for (const ok of ['alice', 'svc.monitor-1', 'a@b', 'A_1']) t.true(PROXY_USER_NAME.test(ok), ok);
  for (const bad of ['', 'a:b', 'a b', '-a', 'x'.repeat(65), 'ä']) t.false(PROXY_USER_NAME.test(bad), bad);
});

test('proxy-user-changed round-trips through the event codec; without a name it is dropped', (t) => {
  const e = { type: EventType.ProxyUserChanged, name: 'alice' } as const;
  t.deepEqual(decodeEvent(encodeEvent(e)), e);
  t.is(decodeEvent(JSON.stringify({ type: 'proxy-user-changed' })), undefined);
  t.is(decodeEvent(JSON.stringify({ type: 'proxy-user-changed', name: 7 })), undefined);
});
