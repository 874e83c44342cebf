/**
 * Bad requests: each gets the right 4xx with a reason, and Redis is byte-for-byte unchanged
 * (every key snapshotted before and after).
 */
import test from 'ava';
import { proveKey } from '../../protocol/key-proof';
import { startEnv, member, snapshotRedis, ADMIN, LAN, type Env } from './coordinator-helpers';

let env: Env;
let token = '';
let expired = '';
test.before(async () => {
  env = await startEnv(1);
  token = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
  expired = (await env.admin.createToken({ uses: 5, ttl: '100ms', originalCidrs: LAN })).token;
  await new Promise((r) => setTimeout(r, 150));
});
test.after.always(async () => { await env?.stop(); });

async function joinBody(m = member('10.9.0.1'), extra: Record<string, unknown> = {}) {
  const c = await env.client().challenge();
  const proof = proveKey(m.privateKey, m.publicKey, Buffer.from(c.ephemeralPublic, 'base64'), Buffer.from(c.nonce, 'base64'), 'join');
  return { publicKey: m.pub, challengeId: c.id, proof: Buffer.from(proof).toString('base64'), token, originalIp: m.originalIp, hostname: m.hostname, ...extra };
}

interface Case {
  name: string;
  /** Runs before the snapshot (e.g. fetch a challenge). */
  prepare?: () => Promise<{ method?: string; path?: string; body?: string; headers?: Record<string, string> }>;
  method?: string;
  path?: string;
  body?: string;
  headers?: Record<string, string>;
  status: number;
  error?: string;
}

const json = { 'content-type': 'application/json' };
const admin = { authorization: `Bearer ${ADMIN}` };

const cases: Case[] = [
  { name: 'malformed JSON', path: '/v1/join', body: '{"publicKey": ', headers: json, status: 400 },
  { name: 'not JSON at all', path: '/v1/join', body: 'hello', headers: { 'content-type': 'text/plain' }, status: 415 },
  { name: 'wrong types', prepare: async () => ({ body: JSON.stringify({ ...await joinBody(), originalIp: 10 }) }), status: 400, error: 'invalid-request' },
  { name: 'unknown field', prepare: async () => ({ body: JSON.stringify({ ...await joinBody(), admin: true }) }), status: 400, error: 'invalid-request' },
  { name: 'missing field', prepare: async () => { const { proof: _p, ...b } = await joinBody(); return { body: JSON.stringify(b) }; }, status: 400, error: 'invalid-request' },
  { name: 'huge body', prepare: async () => ({ body: JSON.stringify({ ...await joinBody(), hostname: 'a'.repeat(100_000) }) }), status: 413 },
  { name: 'unknown token', prepare: async () => ({ body: JSON.stringify(await joinBody(undefined, { token: 'isj_' + 'A'.repeat(43) })) }), status: 401, error: 'token-unknown' },
  { name: 'expired token', prepare: async () => ({ body: JSON.stringify(await joinBody(undefined, { token: expired })) }), status: 401, error: 'token-expired' },
  { name: 'no token for a new key', prepare: async () => { const { token: _t, ...b } = await joinBody(); return { body: JSON.stringify(b) }; }, status: 401, error: 'token-required' },
  { name: 'unknown challenge', prepare: async () => ({ body: JSON.stringify({ ...await joinBody(), challengeId: 'x'.repeat(22) }) }), status: 401, error: 'challenge-unknown' },
  { name: 'proof for another key', prepare: async () => ({ body: JSON.stringify({ ...await joinBody(), publicKey: member('1.1.1.1').pub }) }), status: 401, error: 'bad-proof' },
  { name: 'proof with a wrong context', prepare: async () => {
    const m = member('10.9.0.2');
    const c = await env.client().challenge();
    const proof = proveKey(m.privateKey, m.publicKey, Buffer.from(c.ephemeralPublic, 'base64'), Buffer.from(c.nonce, 'base64'), 'relay');
    return { body: JSON.stringify({ publicKey: m.pub, challengeId: c.id, proof: Buffer.from(proof).toString('base64'), token, originalIp: m.originalIp, hostname: m.hostname }) };
  }, status: 401, error: 'bad-proof' },
  { name: 'replayed join (reused challenge)', prepare: async () => {
    const body = JSON.stringify(await joinBody(member('10.9.0.3')));
    const r = await fetch(env.urls[0] + '/v1/join', { method: 'POST', headers: json, body });
    if (r.status !== 200) throw new Error('first join failed');
    return { body };
  }, status: 401, error: 'challenge-unknown' },
  { name: 'peers without bearer', method: 'GET', path: '/v1/peers', status: 401, error: 'unauthorized' },
  { name: 'peers with a made-up bearer', method: 'GET', path: '/v1/peers?since=0', headers: { authorization: 'Bearer iss_nope' }, status: 401, error: 'unauthorized' },
  { name: 'peers with since not a number (unauthenticated: 401 first)', method: 'GET', path: '/v1/peers?since=abc', headers: { authorization: 'Bearer iss_nope' }, status: 401, error: 'unauthorized' },
  { name: 'peers with since not a number', prepare: async () => {
    const j = await env.client().join({ ...member('10.9.0.4'), token });
    return { method: 'GET', path: '/v1/peers?since=abc', headers: { authorization: `Bearer ${j.sessionToken}` } };
  }, status: 400, error: 'invalid-request' },
  { name: 'token create with a bad body and no admin → 401', path: '/v1/tokens', body: '{"uses":"x"}', headers: json, status: 401, error: 'unauthorized' },
  { name: 'leave without bearer', path: '/v1/leave', status: 401, error: 'unauthorized' },
  { name: 'token create without admin', path: '/v1/tokens', body: '{}', headers: json, status: 401, error: 'unauthorized' },
  { name: 'token create with wrong admin', path: '/v1/tokens', body: '{}', headers: { ...json, authorization: 'Bearer nope' }, status: 401, error: 'unauthorized' },
  { name: 'token create with a bad ttl', path: '/v1/tokens', body: '{"ttl":"soon"}', headers: { ...json, ...admin }, status: 400, error: 'invalid-request' },
  { name: 'token create with uses as string', path: '/v1/tokens', body: '{"uses":"3"}', headers: { ...json, ...admin }, status: 400, error: 'invalid-request' },
  { name: 'revoke a malformed id', method: 'DELETE', path: '/v1/tokens/../../x', headers: admin, status: 404 },
  { name: 'revoke an unknown id', method: 'DELETE', path: '/v1/tokens/tok_000000000000', headers: admin, status: 404, error: 'not-found' },
  { name: 'remove a non-vip', method: 'DELETE', path: '/v1/nodes/999.1.1.1', headers: admin, status: 400, error: 'invalid-request' },
  { name: 'remove an unknown member', method: 'DELETE', path: '/v1/nodes/100.64.9.9', headers: admin, status: 404, error: 'not-found' },
  { name: 'unknown route', method: 'GET', path: '/v1/nope', status: 404, error: 'no-route' },
  // Identity rules (coordinator-identity.test.ts has them with their positive controls).
  { name: 'join asking for its own tags', prepare: async () => ({ body: JSON.stringify(await joinBody(member('10.9.0.5'), { tags: ['controller'] })) }), status: 400, error: 'tags-not-allowed' },
  { name: 'original IP inside the overlay', prepare: async () => ({ body: JSON.stringify(await joinBody(member('100.64.0.1'))) }), status: 400, error: 'original-ip-in-overlay' },
  { name: 'special-purpose original IP', prepare: async () => ({ body: JSON.stringify(await joinBody(member('169.254.169.254'))) }), status: 400, error: 'original-ip-special' },
  { name: 'original IP neither the source nor in the token\'s prefixes', prepare: async () => ({ body: JSON.stringify(await joinBody(member('203.0.113.5'))) }), status: 403, error: 'original-ip-not-allowed' },
  { name: 'token create with host bits in --original-cidr', path: '/v1/tokens', body: '{"originalCidrs":["10.1.0.1/16"]}', headers: { ...json, ...admin }, status: 400, error: 'invalid-original-cidr' },
  { name: 'token create with a non-CIDR original prefix', path: '/v1/tokens', body: '{"originalCidrs":["10.1.0.0"]}', headers: { ...json, ...admin }, status: 400, error: 'invalid-original-cidr' },
  { name: 'tag without admin', path: '/v1/nodes/100.64.0.1/tags', body: '{"add":["x"]}', headers: json, status: 401, error: 'unauthorized' },
  { name: 'tag an unknown member', path: '/v1/nodes/100.64.9.9/tags', body: '{"add":["x"]}', headers: { ...json, ...admin }, status: 404, error: 'not-found' },
  { name: 'tag with a bad tag', path: '/v1/nodes/100.64.0.1/tags', body: '{"add":["a b"]}', headers: { ...json, ...admin }, status: 400, error: 'invalid-request' },
  { name: 'allow a key that is not refused', path: '/v1/removed-keys/allow', body: JSON.stringify({ publicKey: Buffer.alloc(32, 7).toString('base64') }), headers: { ...json, ...admin }, status: 404, error: 'not-found' },
  { name: 'allow a malformed key', path: '/v1/removed-keys/allow', body: '{"publicKey":"abc"}', headers: { ...json, ...admin }, status: 400, error: 'invalid-request' },
  { name: 'remove with a bad allowRejoin', method: 'DELETE', path: '/v1/nodes/100.64.9.9?allowRejoin=maybe', headers: admin, status: 400, error: 'invalid-request' },
  { name: 'proxy-user create without admin', path: '/v1/proxy-users', body: '{"name":"u1","tags":["ops"]}', headers: json, status: 401, error: 'unauthorized' },
  { name: 'proxy-user create with a colon in the name', path: '/v1/proxy-users', body: '{"name":"u:1","tags":["ops"]}', headers: { ...json, ...admin }, status: 400, error: 'invalid-request' },
  { name: 'proxy-user create without tags', path: '/v1/proxy-users', body: '{"name":"u1","tags":[]}', headers: { ...json, ...admin }, status: 400, error: 'invalid-request' },
  { name: 'proxy-user create with a bad tag', path: '/v1/proxy-users', body: '{"name":"u1","tags":["a b"]}', headers: { ...json, ...admin }, status: 400, error: 'invalid-request' },
  { name: 'proxy-user create choosing its own password', path: '/v1/proxy-users', body: '{"name":"u1","tags":["ops"],"password":"x"}', headers: { ...json, ...admin }, status: 400, error: 'invalid-request' },
  { name: 'proxy-user list without admin', method: 'GET', path: '/v1/proxy-users', status: 401, error: 'unauthorized' },
  { name: 'proxy-user revoke of an unknown user', method: 'DELETE', path: '/v1/proxy-users/nobody', headers: admin, status: 404, error: 'not-found' },
];

for (const c of cases) {
  test.serial(c.name, async (t) => {
    const p = c.prepare ? await c.prepare() : {};
    const method = p.method ?? c.method ?? 'POST';
    const path = p.path ?? c.path ?? '/v1/join';
    const headers = p.headers ?? c.headers ?? (p.body ? json : {});
    const body = p.body ?? c.body;
    const before = await snapshotRedis(env.r);
    const res = await fetch(env.urls[0] + path, { method, headers, body });
    const text = await res.text();
    t.is(res.status, c.status, text);
    const j = JSON.parse(text) as { error: string; message: string };
    t.truthy(j.message, 'a reason is given');
    if (c.error) t.is(j.error, c.error, text);
    // Authenticated members' requests too: authentication writes nothing (no `lastSeen`).
    t.deepEqual(await snapshotRedis(env.r), before, 'Redis unchanged');
  });
}
