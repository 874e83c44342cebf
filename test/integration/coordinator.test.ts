/**
 * Coordinator against a real redis-server: tokens, join/re-join/leave,
 * peer-map long-poll (original-IP, hostname, tag and key rules: coordinator-identity.test.ts) across two coordinators, ephemeral sweep.
 */
import test from 'ava';
import { startEnv, member, snapshotRedis, LAN, type Env } from './coordinator-helpers';
import { CoordinatorClient, CoordinatorHttpError, SessionExpiredError } from '../../coordinator/client';
import type { PeerMapUpdate } from '../../coordinator/client';

let env: Env;
test.before(async () => { env = await startEnv(2, { ephemeralTimeoutMs: 800 }); });
test.after.always(async () => { await env?.stop(); });

async function rejects(t: import('ava').ExecutionContext, p: Promise<unknown>, status: number, code: string) {
  const e = await t.throwsAsync(p, { instanceOf: CoordinatorHttpError });
  t.is(e?.status, status, e?.message);
  t.is(e?.code, code, e?.message);
}

test.serial('tokens: uses, revoke, expiry; only hashes at rest', async (t) => {
  const tok = await env.admin.createToken({ originalCidrs: LAN, uses: 2, tags: ['team-a'] });
  t.is(tok.usesLeft, 2);
  const a = member('10.1.0.1'); const b = member('10.1.0.2'); const c = member('10.1.0.3');
  const ja = await env.client().join({ ...a, token: tok.token });
  t.deepEqual(ja.peers.find((p) => p.vip === ja.vip)?.tags, ['team-a']);
  await env.client(1).join({ ...b, token: tok.token });
  await rejects(t, env.client().join({ ...c, token: tok.token }), 401, 'token-exhausted');
  t.is((await env.admin.listTokens()).find((x) => x.id === tok.id)?.state, 'exhausted');

  // Plaintext secrets never reach Redis.
  const dump = JSON.stringify(await snapshotRedis(env.r));
  t.false(dump.includes(tok.token));
  t.false(dump.includes(tok.token.slice(4)));
  t.false(dump.includes(ja.sessionToken.slice(4)));

  const rev = await env.admin.createToken({ originalCidrs: LAN, uses: 5 });
  await env.admin.revokeToken(rev.id);
  await rejects(t, env.client().join({ ...c, token: rev.token }), 401, 'token-unknown');
  await rejects(t, env.admin.revokeToken(rev.id), 404, 'not-found');

  const exp = await env.admin.createToken({ originalCidrs: LAN, uses: 5, ttl: '300ms' });
  await new Promise((r) => setTimeout(r, 400));
  await rejects(t, env.client().join({ ...c, token: exp.token }), 401, 'token-expired');
  t.is((await env.admin.listTokens()).find((x) => x.id === exp.id)?.state, 'expired');

  await rejects(t, env.client().join({ ...c }), 401, 'token-required');
  const unlimited = await env.admin.createToken({ originalCidrs: LAN, uses: -1 });
  await env.client().join({ ...c, token: unlimited.token });
  t.is((await env.admin.listTokens()).find((x) => x.id === unlimited.id)?.usesLeft, -1);
});

test.serial('join, re-join keeps the vip (no token needed), leave frees it into quarantine', async (t) => {
  const tok = await env.admin.createToken({ originalCidrs: LAN, uses: 1 });
  const m = member('10.2.0.1');
  const j1 = await env.client().join({ ...m, token: tok.token });
  const j2 = await env.client(1).join({ ...m, hostname: 'renamed' });
  t.is(j2.vip, j1.vip);
  t.is(await env.r.get(`isthmus:host:renamed`), j1.vip);
  t.is(await env.r.get(`isthmus:host:${m.hostname}`), null);
  await env.client().leave(j2.sessionToken);
  t.is(await env.r.exists(`isthmus:node:${j1.vip}`), 0);
  t.is(await env.r.get(`isthmus:orig:10.2.0.1`), null);
  t.truthy(await env.r.zscore('isthmus:ipam:quarantine', j1.vip));
  await t.throwsAsync(env.client().peers(j1.sessionToken), { instanceOf: SessionExpiredError });
  await rejects(t, env.client().leave(j2.sessionToken), 401, 'unauthorized');
  // Known no more: a token is needed again, and the quarantined vip is not handed out.
  await rejects(t, env.client().join({ ...m }), 401, 'token-required');
  const again = await env.client().join({ ...m, token: (await env.admin.createToken({ originalCidrs: LAN })).token });
  t.not(again.vip, j1.vip);
});

test.serial('peer map: a member joining on coordinator 2 reaches a watcher on coordinator 1 within 2 s', async (t) => {
  const tok = await env.admin.createToken({ originalCidrs: LAN, uses: -1 });
  const a = member('10.4.0.1');
  const ja = await env.client(0).join({ ...a, token: tok.token });
  const ac = new AbortController();
  // Also on failure: a parked long-poll would keep this worker from ever exiting.
  t.teardown(() => ac.abort());
  const updates: PeerMapUpdate[] = [];
  let resolveSeen!: (ms: number) => void;
  const seen = new Promise<number>((r) => { resolveSeen = r; });
  let joinedAt = 0;
  let bVip = '';
  // The watcher may see the new member before join() has returned on our side, so every
  // update is timed and checked again once bVip is known.
  const seenAt: number[] = [];
  const watching = env.client(0).watchPeers(ja.sessionToken, ja.version, (u) => {
    updates.push(u);
    seenAt.push(Date.now());
    if (bVip && u.peers.has(bVip)) resolveSeen(Date.now() - joinedAt);
  }, ac.signal, { initial: ja.peers });
  await new Promise((r) => setTimeout(r, 200)); // the poll is parked on coordinator 1
  joinedAt = Date.now();
  const jb = await env.client(1).join({ ...member('10.4.0.2'), token: tok.token });
  bVip = jb.vip;
  const early = updates.findIndex((u) => u.peers.has(bVip));
  if (early >= 0) resolveSeen(seenAt[early] - joinedAt);
  const ms = await Promise.race([seen, new Promise<number>((r) => setTimeout(() => r(-1), 2000))]);
  t.true(ms >= 0 && ms < 2000, `seen after ${ms} ms`);
  t.log(`join → visible to a watcher on the other coordinator: ${ms} ms`);
  // Removal arrives too.
  const removed = new Promise<void>((r) => { const iv = setInterval(() => { if (!updates.at(-1)?.peers.has(bVip)) { clearInterval(iv); r(); } }, 20); });
  await env.admin.removeNode(bVip);
  await Promise.race([removed, new Promise((_r, rej) => setTimeout(() => rej(new Error('removal not seen')), 2000))]);
  t.deepEqual(updates.at(-1)?.removals, [bVip]);
  ac.abort();
  await watching;
});

test.serial('peers: since missing → full map; since ahead of Redis → full map; empty long-poll returns the same version', async (t) => {
  const tok = await env.admin.createToken({ originalCidrs: LAN });
  const j = await env.client().join({ ...member('10.5.0.1'), token: tok.token });
  const full = await env.client().peers(j.sessionToken);
  t.true(full.full);
  const ahead = await env.client().peers(j.sessionToken, j.version + 1000);
  t.true(ahead.full);
  const cur = await env.registryVersion();
  const t0 = Date.now();
  const empty = await env.client().peers(j.sessionToken, cur, undefined, 300);
  t.false(empty.full);
  t.is(empty.version, cur);
  t.true(Date.now() - t0 >= 250, 'it waited');
});

test.serial('ephemeral members go when their relay session is gone; concurrent sweeps remove once', async (t) => {
  const tok = await env.admin.createToken({ originalCidrs: LAN, uses: -1, ephemeral: true });
  const e1 = await env.client().join({ ...member('10.6.0.1'), token: tok.token });
  const e2 = await env.client().join({ ...member('10.6.0.2'), token: tok.token });
  await env.r.hset(`isthmus:session:${e1.vip}`, { relayId: 'r1' });
  await new Promise((r) => setTimeout(r, 900));
  const v0 = Number(await env.r.get('isthmus:version'));
  const [r0, r1] = await Promise.all([env.coords[0].sweep(), env.coords[1].sweep()]);
  t.deepEqual([...r0, ...r1], [e2.vip]);
  t.is(Number(await env.r.get('isthmus:version')), v0 + 1, 'exactly one removal event');
  t.is(await env.r.exists(`isthmus:node:${e1.vip}`), 1, 'a member with a relay session stays');
  await env.r.del(`isthmus:session:${e1.vip}`);
  t.deepEqual(await env.coords[1].sweep(), [], 'not yet: it was seen by the last sweep');
  await new Promise((r) => setTimeout(r, 900));
  t.deepEqual(await env.coords[0].sweep(), [e1.vip]);
});

test.serial('watchPeers keeps the last map while the coordinator is unreachable and recovers with backoff', async (t) => {
  const tok = await env.admin.createToken({ originalCidrs: LAN, uses: -1 });
  const ja = await env.client().join({ ...member('10.7.0.1'), token: tok.token });
  let down = false;
  let failures = 0;
  let cut: AbortController | undefined;
  const flaky: typeof fetch = async (input, init) => {
    if (down) { failures++; throw new TypeError('fetch failed'); }
    cut = new AbortController();
    return fetch(input, { ...init, signal: AbortSignal.any([init!.signal!, cut.signal]) });
  };
  const c = new CoordinatorClient({ url: env.urls[0], insecure: true, fetch: flaky });
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  const maps: number[] = [];
  let latest: ReadonlyMap<string, unknown> = new Map();
  const w = c.watchPeers(ja.sessionToken, ja.version, (u) => { maps.push(u.peers.size); latest = u.peers; }, ac.signal,
    { initial: ja.peers, minMs: 50, maxMs: 200 });
  await new Promise((r) => setTimeout(r, 100));
  down = true;
  cut!.abort(); // the open stream's connection breaks; reopening it fails while "down".
  const jb = await env.client(1).join({ ...member('10.7.0.2'), token: tok.token });
  await new Promise((r) => setTimeout(r, 700));
  t.true(failures >= 2, `retried ${failures} times`);
  t.false(maps.includes(0), 'the map was never emptied');
  down = false;
  const jc = await env.client(1).join({ ...member('10.7.0.3'), token: tok.token });
  for (let i = 0; i < 40 && !latest.has(jc.vip); i++) await new Promise((r) => setTimeout(r, 50));
  t.true(latest.has(jb.vip) && latest.has(jc.vip) && latest.has(ja.vip), 'caught up after the outage');
  ac.abort();
  await w;
});
