/**
 * Throttling at the coordinator (issue 11 item 2), hostile and honest: a flood from one source
 * gets 429 + Retry-After and leaves Redis's key count where it was, while another source (a
 * real socket bound to another 127.0.0.x, trustProxy off) is served during the flood; admin-token
 * guessing locks out the guessing source only; a used, tampered or expired challenge is refused
 * next to a fresh one that works.
 */
import test from 'ava';
import http from 'node:http';
import { proveKey } from '../../protocol/key-proof';
import { startEnv, member, ADMIN, LAN, type Env } from './coordinator-helpers';
import { defaults } from '../../coordinator';
import { redisKeys } from '../../common';

const K = redisKeys();
const USED = K.challengeUsed('');

interface Res { status: number; headers: http.IncomingHttpHeaders; body: Record<string, unknown> }

/** One HTTP request over a real socket from source address `from` (keep-alive per source). */
const agents = new Map<string, http.Agent>();
function request(url: string, from: string, method: string, path: string, o: { body?: unknown; bearer?: string } = {}): Promise<Res> {
  let agent = agents.get(from);
  if (!agent) agents.set(from, agent = new http.Agent({ keepAlive: true, maxSockets: 16 }));
  const u = new URL(url);
  const body = o.body === undefined ? undefined : JSON.stringify(o.body);
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (o.bearer) headers.authorization = `Bearer ${o.bearer}`;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers, agent, localAddress: from }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) as Record<string, unknown> : {} }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
test.after.always(() => { for (const a of agents.values()) a.destroy(); });

/** `n` requests, `width` at a time; their answers in order. */
async function many(n: number, width: number, one: (i: number) => Promise<Res>): Promise<Res[]> {
  const out: Res[] = new Array<Res>(n);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await one(i);
    }
  }));
  return out;
}

/** Challenge + join from `from` for a fresh member claiming `orig` (allowed by the LAN token). */
async function joinFrom(env: Env, from: string, token: string, orig: string, url = env.urls[0]) {
  const m = member(orig);
  const c = await request(url, from, 'GET', '/v1/challenge');
  if (c.status !== 200) return { challenge: c, join: c, body: undefined };
  const proof = proveKey(m.privateKey, m.publicKey, Buffer.from(String(c.body.ephemeralPublic), 'base64'), Buffer.from(String(c.body.nonce), 'base64'), 'join');
  const body = { publicKey: m.pub, challengeId: c.body.id, proof: Buffer.from(proof).toString('base64'), token, originalIp: m.originalIp, hostname: m.hostname };
  return { challenge: c, join: await request(url, from, 'POST', '/v1/join', { body }), body };
}

function assert429(t: import('ava').ExecutionContext, r: Res, windowSec: number): void {
  t.is(r.status, 429);
  t.is(r.body.error, 'rate-limited');
  t.regex(String(r.body.message), /retry in \d+ s/);
  const after = Number(r.headers['retry-after']);
  t.true(Number.isInteger(after) && after >= 1 && after <= windowSec, `Retry-After ${String(r.headers['retry-after'])}`);
}

test('1,000 rapid challenges from one source: 429 + Retry-After past the limit, no Redis key written; another source joins meanwhile', async (t) => {
  const env = await startEnv(1);
  try {
    const token = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
    const limit = defaults.DEFAULT_RATE_LIMITS.challenge;
    const before = new Set(await env.r.keys('*'));
    let during: Awaited<ReturnType<typeof joinFrom>> | undefined;
    const answers = await many(1000, 16, async (i) => {
      if (i === 700) during = await joinFrom(env, '127.0.0.3', token, '10.20.0.1');
      return request(env.urls[0], '127.0.0.2', 'GET', '/v1/challenge');
    });
    const ok = answers.filter((r) => r.status === 200);
    const limited = answers.filter((r) => r.status === 429);
    t.is(ok.length, limit, 'the first `limit` challenges are served');
    t.is(limited.length, 1000 - limit, 'the rest are 429');
    for (const r of limited.slice(0, 5)) assert429(t, r, 60);
    t.is(new Set(ok.map((r) => r.body.id)).size, limit, 'every served challenge is distinct');
    // Positive control: a source that is not flooding got its challenge and joined during the flood.
    t.is(during?.challenge.status, 200);
    t.is(during?.join.status, 200, JSON.stringify(during?.join.body));
    // Redis: the keys that join wrote, and not one per challenge (stored challenges wrote 600 here).
    const added = (await env.r.keys('*')).filter((k) => !before.has(k));
    t.true(added.length > 0 && added.length <= 10, `keys added: ${added.join(' ')}`);
    t.is(added.filter((k) => k.startsWith(USED)).length, 1, 'the one successful join wrote the one used marker');
    t.is(await env.r.scard(K.nodes), 1);
    // The flooding source is still refused for challenges (its window is not over).
    assert429(t, await request(env.urls[0], '127.0.0.2', 'GET', '/v1/challenge'), 60);
    // A second flood of 1,000 from a fresh source with nothing else going on: DBSIZE exactly as before.
    const size = await env.r.dbsize();
    const again = await many(1000, 16, () => request(env.urls[0], '127.0.0.14', 'GET', '/v1/challenge'));
    t.is(again.filter((r) => r.status === 200).length, limit);
    t.is(await env.r.dbsize(), size);
    t.deepEqual(env.coords[0].rateLimited, { challenge: 2 * (1000 - limit) + 1, join: 0, admin: 0, 'admin-auth': 0 }, 'counted for metrics');
  } finally {
    await env.stop();
  }
});

test('a source over its limit is served again once Retry-After has passed: challenge and join work', async (t) => {
  const env = await startEnv(1, { rateLimits: { challenge: 5, join: 5, windowMs: 3_000 } });
  try {
    const token = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
    const answers = await many(8, 1, () => request(env.urls[0], '127.0.0.8', 'GET', '/v1/challenge'));
    t.deepEqual(answers.map((r) => r.status), [200, 200, 200, 200, 200, 429, 429, 429]);
    const last = answers[7];
    assert429(t, last, 3);
    const dbsize = await env.r.dbsize();
    await new Promise((r) => setTimeout(r, Number(last.headers['retry-after']) * 1000 + 100));
    const j = await joinFrom(env, '127.0.0.8', token, '10.20.0.8');
    t.is(j.challenge.status, 200);
    t.is(j.join.status, 200, JSON.stringify(j.join.body));
    t.true(await env.r.dbsize() > dbsize, 'the join wrote its member (positive control for the flood\'s unchanged DBSIZE)');
  } finally {
    await env.stop();
  }
});

test('join flood from one source: 429 past the limit, refused joins change nothing; another source joins meanwhile', async (t) => {
  const env = await startEnv(1, { rateLimits: { join: 50 } });
  try {
    const token = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
    // Well-formed joins with a made-up proof over real challenges (from a source with challenges to spare).
    const bodies = await Promise.all(Array.from({ length: 80 }, async (_, i) => {
      const c = await request(env.urls[0], '127.0.0.9', 'GET', '/v1/challenge');
      const m = member(`10.30.0.${i + 1}`);
      return { publicKey: m.pub, challengeId: c.body.id, proof: Buffer.alloc(32, 7).toString('base64'), token, originalIp: m.originalIp, hostname: m.hostname };
    }));
    const before = new Set(await env.r.keys('*'));
    let during: Awaited<ReturnType<typeof joinFrom>> | undefined;
    const answers = await many(80, 8, async (i) => {
      if (i === 60) during = await joinFrom(env, '127.0.0.5', token, '10.20.0.5');
      return request(env.urls[0], '127.0.0.4', 'POST', '/v1/join', { body: bodies[i] });
    });
    t.is(answers.filter((r) => r.status === 401 && r.body.error === 'bad-proof').length, 50, 'within the limit: checked and refused');
    const limited = answers.filter((r) => r.status === 429);
    t.is(limited.length, 30);
    assert429(t, limited[0], 60);
    t.is(during?.join.status, 200, JSON.stringify(during?.join.body));
    // Redis: only the other source's join wrote (one member, one used marker); the refused ones nothing.
    const added = (await env.r.keys('*')).filter((k) => !before.has(k));
    t.true(added.length > 0 && added.length <= 10, `keys added: ${added.join(' ')}`);
    t.is(added.filter((k) => k.startsWith(USED)).length, 1);
    t.deepEqual(await env.r.smembers(K.nodes), [String(during?.join.body.vip)]);
    t.is(env.coords[0].rateLimited.join, 30);
  } finally {
    await env.stop();
  }
});

test('admin-token guessing: 429 after N failures from that source (even with the right token, also for concurrent guesses); the right token from another source still works', async (t) => {
  const env = await startEnv(1);
  try {
    const n = defaults.DEFAULT_RATE_LIMITS.adminFailures;
    const url = env.urls[0];
    // Positive control: successes do not count, however many.
    for (let i = 0; i < n + 2; i++) t.is((await request(url, '127.0.0.6', 'GET', '/v1/tokens', { bearer: ADMIN })).status, 200);
    const guesses = await many(n + 5, 1, (i) => request(url, '127.0.0.6', 'GET', '/v1/nodes', { bearer: `guess-${i}-0123456789abcdef` }));
    t.deepEqual(guesses.map((r) => r.status), [...Array<number>(n).fill(401), ...Array<number>(5).fill(429)]);
    assert429(t, guesses[n], 60);
    t.regex(String(guesses[n].body.message), /failed admin authentications/);
    // Locked out: the right token gets 429 too from that source.
    assert429(t, await request(url, '127.0.0.6', 'GET', '/v1/nodes', { bearer: ADMIN }), 60);
    assert429(t, await request(url, '127.0.0.6', 'PUT', '/v1/policy', { bearer: ADMIN, body: {} }), 60);
    // Another source: the right token works, a wrong one is a plain 401 (the lockout is per source).
    t.is((await request(url, '127.0.0.7', 'GET', '/v1/nodes', { bearer: ADMIN })).status, 200);
    t.is((await request(url, '127.0.0.7', 'GET', '/v1/nodes', { bearer: 'wrong-token-0123456789abcdef' })).status, 401);
    // A member's routes from the locked-out source are not affected.
    t.is((await request(url, '127.0.0.6', 'GET', '/v1/health')).status, 200);
    t.deepEqual(env.coords[0].rateLimited, { challenge: 0, join: 0, admin: 0, 'admin-auth': 7 });
    // 50 guesses at once (16 sockets in parallel) from a fresh source: still exactly N compared.
    const burst = await many(50, 16, (i) => request(url, '127.0.0.15', 'GET', '/v1/tokens', { bearer: `burst-${i}-0123456789abcdef` }));
    t.is(burst.filter((r) => r.status === 401).length, n);
    t.is(burst.filter((r) => r.status === 429).length, 50 - n);
  } finally {
    await env.stop();
  }
});

test('admin lockout ends with its window', async (t) => {
  const env = await startEnv(1, { rateLimits: { adminFailures: 3, windowMs: 3_000 } });
  try {
    const url = env.urls[0];
    const guesses = await many(4, 1, () => request(url, '127.0.0.10', 'GET', '/v1/nodes', { bearer: 'nope-0123456789abcdef' }));
    t.deepEqual(guesses.map((r) => r.status), [401, 401, 401, 429]);
    await new Promise((r) => setTimeout(r, Number(guesses[3].headers['retry-after']) * 1000 + 100));
    t.is((await request(url, '127.0.0.10', 'GET', '/v1/nodes', { bearer: ADMIN })).status, 200, 'the right token works once the window is over');
  } finally {
    await env.stop();
  }
});

test('admin API request limit: N per window from one source, the right token included', async (t) => {
  const env = await startEnv(1, { rateLimits: { admin: 20 } });
  try {
    const url = env.urls[0];
    const burst = await many(25, 1, () => request(url, '127.0.0.11', 'GET', '/v1/nodes', { bearer: ADMIN }));
    t.is(burst.filter((r) => r.status === 200).length, 20);
    t.is(burst.filter((r) => r.status === 429).length, 5);
    assert429(t, burst[24], 60);
    t.is((await request(url, '127.0.0.12', 'GET', '/v1/nodes', { bearer: ADMIN })).status, 200, 'another source is not limited');
  } finally {
    await env.stop();
  }
});

test('challenges: a used one is refused (also at another coordinator), tampered or expired ones are refused; fresh ones work', async (t) => {
  let now = Date.now();
  const env = await startEnv(2, { now: () => now });
  try {
    const token = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
    // Issued by coordinator 0, used at coordinator 1 (the secret is shared through Redis).
    const m = member('10.40.0.1');
    const c = await request(env.urls[0], '127.0.0.13', 'GET', '/v1/challenge');
    const proof = proveKey(m.privateKey, m.publicKey, Buffer.from(String(c.body.ephemeralPublic), 'base64'), Buffer.from(String(c.body.nonce), 'base64'), 'join');
    const body = { publicKey: m.pub, challengeId: String(c.body.id), proof: Buffer.from(proof).toString('base64'), token, originalIp: m.originalIp, hostname: m.hostname };
    t.is((await request(env.urls[1], '127.0.0.13', 'POST', '/v1/join', { body })).status, 200);
    const used = await env.r.keys(USED + '*');
    t.is(used.length, 1);
    const pttl = await env.r.pttl(used[0]);
    t.true(pttl > 60_000 && pttl <= 120_000, `used marker lives until the challenge expired everywhere (${pttl} ms)`);
    // Replay, at either coordinator.
    for (const url of env.urls) {
      const r = await request(url, '127.0.0.13', 'POST', '/v1/join', { body });
      t.is(r.status, 401);
      t.is(r.body.error, 'challenge-unknown');
    }
    // Tampered: one bit of the id flipped (the nonce part), proof otherwise right.
    const raw = Buffer.from(body.challengeId, 'base64url');
    raw[12] ^= 1;
    const tampered = await request(env.urls[0], '127.0.0.13', 'POST', '/v1/join', { body: { ...body, challengeId: raw.toString('base64url') } });
    t.is(tampered.body.error, 'challenge-unknown');
    // Expired: fetched, then 61 s pass.
    const m2 = member('10.40.0.2');
    const c2 = await request(env.urls[0], '127.0.0.13', 'GET', '/v1/challenge');
    const p2 = proveKey(m2.privateKey, m2.publicKey, Buffer.from(String(c2.body.ephemeralPublic), 'base64'), Buffer.from(String(c2.body.nonce), 'base64'), 'join');
    now += 61_000;
    const late = await request(env.urls[0], '127.0.0.13', 'POST', '/v1/join', { body: { publicKey: m2.pub, challengeId: c2.body.id,
      proof: Buffer.from(p2).toString('base64'), token, originalIp: m2.originalIp, hostname: m2.hostname } });
    t.is(late.status, 401);
    t.is(late.body.error, 'challenge-unknown');
    // Positive controls: the same members with fresh challenges join (m re-joins by key).
    t.is((await joinFrom(env, '127.0.0.13', token, '10.40.0.2')).join.status, 200);
    const again = await request(env.urls[1], '127.0.0.13', 'GET', '/v1/challenge');
    const p3 = proveKey(m.privateKey, m.publicKey, Buffer.from(String(again.body.ephemeralPublic), 'base64'), Buffer.from(String(again.body.nonce), 'base64'), 'join');
    const rejoin = await request(env.urls[0], '127.0.0.13', 'POST', '/v1/join', { body: { ...body, challengeId: again.body.id, proof: Buffer.from(p3).toString('base64') } });
    t.is(rejoin.status, 200, JSON.stringify(rejoin.body));
  } finally {
    await env.stop();
  }
});

test('a coordinator whose challenge key was replaced in Redis (lost, re-created by another) picks up the new one', async (t) => {
  let now = Date.now();
  const env = await startEnv(2, { now: () => now });
  try {
    const token = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
    await env.r.del(K.challengeKey);
    await env.coords[1].registry.init(); // as a restarted coordinator would: a new key (SET NX)
    // Coordinator 0 still has the old key: coordinator 1's challenge is refused there at first...
    const first = await joinFrom(env, '127.0.0.16', token, '10.50.0.1', env.urls[0]);
    t.is(first.join.status, 200, 'positive control: its own challenge still works with the key it holds');
    const m = member('10.50.0.2');
    const c = await request(env.urls[1], '127.0.0.16', 'GET', '/v1/challenge');
    const proof = proveKey(m.privateKey, m.publicKey, Buffer.from(String(c.body.ephemeralPublic), 'base64'), Buffer.from(String(c.body.nonce), 'base64'), 'join');
    const body = { publicKey: m.pub, challengeId: c.body.id, proof: Buffer.from(proof).toString('base64'), token, originalIp: m.originalIp, hostname: m.hostname };
    const refused = await request(env.urls[0], '127.0.0.16', 'POST', '/v1/join', { body });
    t.is(refused.body.error, 'challenge-unknown');
    now += 6_000; // ...until it re-reads the key (at most every 5 s, on a failed check)
    const r = await request(env.urls[0], '127.0.0.16', 'POST', '/v1/join', { body });
    t.is(r.status, 200, JSON.stringify(r.body));
  } finally {
    await env.stop();
  }
});
