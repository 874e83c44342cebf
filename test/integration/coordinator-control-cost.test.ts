/**
 * Control-plane cost per change (issue 12 item 2), against a real redis-server: a no-op
 * re-join emits nothing; a long-poll's authentication writes nothing; session tokens renew on
 * use (bounded: only past half their TTL); members sort by address numerically. Redis work is
 * counted with INFO commandstats (commands run inside scripts are counted too).
 */
import test from 'ava';
import type Redis from 'ioredis';
import { hashSecret } from '../../coordinator/token-rules';
import { startEnv, member, snapshotRedis, LAN, type Env } from './coordinator-helpers';

const SESSION_TTL_MS = 60_000;
let env: Env;
let token = '';
test.before(async () => {
  // The auth script's own Redis work is counted here: no session cache in front of it (coordinator-shared-answers tests that).
  env = await startEnv(1, { sessionTtlMs: SESSION_TTL_MS, ephemeralTimeoutMs: 1_000, sessionCache: false });
  token = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
});
test.after.always(async () => { await env?.stop(); });

const WRITES = ['hset', 'hdel', 'set', 'del', 'incr', 'xadd', 'publish', 'pexpire', 'expire', 'sadd', 'srem', 'zadd', 'zrem', 'hincrby'];

/** Calls per command (lower-case name) since the server started. */
async function commandStats(r: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await r.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([a-z|]+):calls=(\d+)/.exec(line.trim());
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** Calls per command made while `fn` ran (commands of the test's own INFO excluded). */
async function countDuring(r: Redis, fn: () => Promise<unknown>): Promise<Map<string, number>> {
  const before = await commandStats(r);
  await fn();
  const after = await commandStats(r);
  const d = new Map<string, number>();
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) d.set(k, v - (before.get(k) ?? 0));
  d.set('info', (d.get('info') ?? 0) - 1);
  if (d.get('info')! <= 0) d.delete('info');
  return d;
}

const writesIn = (d: Map<string, number>) => WRITES.reduce((n, c) => n + (d.get(c) ?? 0), 0);
const xlen = () => env.r.xlen('isthmus:changes');

test.serial('a re-join that changes nothing emits no event and bumps no version; one that changes something does', async (t) => {
  const m = member('10.21.0.1', 'noop-a');
  const j = await env.client().join({ ...m, token });
  const v0 = await env.registryVersion();
  const len0 = await xlen();
  const nodeBefore = await env.r.hgetall(`isthmus:node:${j.vip}`);

  const d = await countDuring(env.r, async () => {
    const again = await env.client().join({ ...m }); // by key, no token: same key, original IP, hostname
    t.is(again.vip, j.vip);
    t.is(again.version, v0, 'the answer names the current version');
    // The new session works.
    const p = await env.client().peers(again.sessionToken);
    t.is(p.version, v0);
  });
  t.log('no-op re-join + one peers call, Redis commands:', Object.fromEntries(d));
  t.is(await env.registryVersion(), v0, 'no version bump');
  t.is(await xlen(), len0, 'no change-feed entry');
  t.falsy(d.get('publish'), 'no event published');
  t.falsy(d.get('xadd'));
  t.falsy(d.get('incr'));
  const nodeAfter = await env.r.hgetall(`isthmus:node:${j.vip}`);
  t.deepEqual({ ...nodeAfter, lastSeen: '' }, { ...nodeBefore, lastSeen: '' }, 'member record unchanged (but lastSeen)');

  // Positive control: the same key with another hostname is a change.
  const d2 = await countDuring(env.r, async () => {
    const moved = await env.client().join({ ...m, hostname: 'noop-a2' });
    t.is(moved.vip, j.vip);
    t.is(moved.version, v0 + 1);
  });
  t.is(d2.get('publish'), 1, 'one event published');
  t.is(await xlen(), len0 + 1);
  const [[, fields]] = await env.r.xrange('isthmus:changes', `${v0 + 1}-0`, `${v0 + 1}-0`);
  t.is(fields[fields.indexOf('type') + 1], 'node-changed');
  // And a changed original IP too.
  const moved2 = await env.client().join({ ...m, hostname: 'noop-a2', originalIp: '10.21.0.2' });
  t.is(moved2.version, v0 + 2);
  t.is(await env.r.get('isthmus:orig:10.21.0.2'), j.vip);
  t.is(await env.r.get('isthmus:orig:10.21.0.1'), null, 'the old original IP is released');
  // A hostname that differs only in case is a change of the registered name (it is shown as registered).
  const moved3 = await env.client().join({ ...m, hostname: 'NOOP-A2', originalIp: '10.21.0.2' });
  t.is(moved3.version, v0 + 3);
  t.is(await env.r.hget(`isthmus:node:${j.vip}`, 'hostname'), 'NOOP-A2');
  // Back to nothing new: no event again.
  const still = await env.client().join({ ...m, hostname: 'NOOP-A2', originalIp: '10.21.0.2' });
  t.is(still.version, v0 + 3);
  t.is(await env.registryVersion(), v0 + 3);
});

test.serial('a long-poll\'s authentication does no Redis write: N polls leave Redis unchanged', async (t) => {
  const j = await env.client().join({ ...member('10.22.0.1', 'poller'), token });
  const c = env.client();
  const v = await env.registryVersion();
  const before = await snapshotRedis(env.r);
  const N = 20;
  const d = await countDuring(env.r, async () => {
    for (let i = 0; i < N; i++) {
      const p = await c.peers(j.sessionToken, v, undefined, 0);
      t.false(p.full);
    }
  });
  t.log(`${N} polls (wait=0), Redis commands:`, Object.fromEntries(d));
  t.is(writesIn(d), 0, 'no write command');
  t.falsy(d.get('hset'), 'no lastSeen HSET per poll');
  t.deepEqual(await snapshotRedis(env.r), before, 'Redis byte-for-byte unchanged');
  // Positive control: the counting sees writes (a join writes), and a refused bearer is still refused.
  const dj = await countDuring(env.r, () => env.client().join({ ...member('10.22.0.2', 'poller-2'), token }));
  t.true(writesIn(dj) > 0);
  await t.throwsAsync(c.peers('iss_nope', v, undefined, 0), { message: /session token/ });
});

test.serial('session tokens renew on use once less than half their TTL is left, without a re-join; expiry and removal still end them', async (t) => {
  const j = await env.client().join({ ...member('10.23.0.1', 'renewer'), token });
  const key = `isthmus:stoken:${hashSecret(j.sessionToken)}`;
  const c = env.client();
  const v = await env.registryVersion();
  const ttl0 = await env.r.pttl(key);
  t.true(ttl0 > SESSION_TTL_MS / 2 && ttl0 <= SESSION_TTL_MS, String(ttl0));

  // More than half left: a poll does not touch the TTL (no PEXPIRE).
  const d = await countDuring(env.r, () => c.peers(j.sessionToken, v, undefined, 0));
  t.falsy(d.get('pexpire'));
  t.true(await env.r.pttl(key) <= ttl0);

  // Less than half left: the next authenticated call renews it to the full TTL, once.
  await env.r.pexpire(key, 5_000);
  const d2 = await countDuring(env.r, async () => {
    await c.peers(j.sessionToken, v, undefined, 0);
    await c.peers(j.sessionToken, v, undefined, 0);
  });
  t.is(d2.get('pexpire'), 1, 'one renewal for two polls');
  const ttl1 = await env.r.pttl(key);
  t.true(ttl1 > SESSION_TTL_MS / 2, `renewed: ${ttl1} ms left`);

  // Expiry still ends a token nobody used in time (negative next to the positive above).
  await env.r.pexpire(key, 1);
  await new Promise((r) => setTimeout(r, 20));
  await t.throwsAsync(c.peers(j.sessionToken, v, undefined, 0), { message: /session token/ });

  // A renewed token dies with its member.
  const k = await env.client().join({ ...member('10.23.0.2', 'renewer-2'), token });
  const key2 = `isthmus:stoken:${hashSecret(k.sessionToken)}`;
  await env.r.pexpire(key2, 5_000);
  await c.peers(k.sessionToken, v, undefined, 0);
  t.true(await env.r.pttl(key2) > SESSION_TTL_MS / 2);
  await env.admin.removeNode(k.vip);
  await t.throwsAsync(c.peers(k.sessionToken, undefined, undefined, 0), { message: /session token/ });
});

test.serial('liveness comes from relay sessions: an ephemeral member that only polls is swept, one with a relay session is kept', async (t) => {
  const eph = await env.admin.createToken({ uses: -1, originalCidrs: LAN, ephemeral: true });
  const withSession = await env.client().join({ ...member('10.24.0.1', 'eph-relayed'), token: eph.token });
  const pollOnly = await env.client().join({ ...member('10.24.0.2', 'eph-polling'), token: eph.token });
  await env.r.hset(`isthmus:session:${withSession.vip}`, { relayIp: '10.0.0.9', relayPort: '51820', agentIp: '10.24.0.1', agentPort: '4000', relayId: 'r1', since: '1' });
  await new Promise((r) => setTimeout(r, 1_200)); // past the 1 s ephemeral timeout
  const v = await env.registryVersion();
  await env.client().peers(pollOnly.sessionToken, v, undefined, 0); // polling does not count as seen
  const removed = await env.coords[0].sweep();
  t.deepEqual(removed, [pollOnly.vip]);
  t.truthy(await env.r.hget(`isthmus:node:${withSession.vip}`, 'pub'), 'the member with a relay session stays');
  t.true(Number(await env.r.hget(`isthmus:node:${withSession.vip}`, 'lastSeen')) > Date.now() - 1_000, 'the sweep marked it seen');
  // `node list` reports a member with a relay session as seen now, one without by its last join.
  const nodes = await env.admin.listNodes();
  const listed = nodes.find((n) => n.vip === withSession.vip)!;
  t.true(listed.lastSeen > Date.now() - 1_000, 'with a relay session: seen now');
  await env.r.hset(`isthmus:node:${withSession.vip}`, 'lastSeen', '1000');
  await env.r.del(`isthmus:session:${withSession.vip}`);
  t.is((await env.admin.listNodes()).find((n) => n.vip === withSession.vip)!.lastSeen, 1000, 'without one: the stored lastSeen');
  await env.admin.removeNode(withSession.vip);
});

test.serial('members sort by address numerically: 100.64.0.9 before 100.64.0.10 before 100.64.0.100', async (t) => {
  // Written straight into Redis (a registry that has grown that far), in a scrambled order.
  const vips = ['100.64.0.100', '100.64.0.10', '100.64.1.2', '100.64.0.9', '100.64.0.11'];
  for (const [i, vip] of vips.entries()) {
    await env.r.hset(`isthmus:node:${vip}`, { pub: `sortkey${i}`, orig: `10.25.0.${i + 1}`, hostname: `sort-${i}`, tags: '[]', created: '1', lastSeen: '1', ephemeral: '0' });
    await env.r.sadd('isthmus:nodes', vip);
  }
  const want = ['100.64.0.9', '100.64.0.10', '100.64.0.11', '100.64.0.100', '100.64.1.2'];
  const listed = (await env.admin.listNodes()).map((n) => n.vip).filter((v) => vips.includes(v));
  t.deepEqual(listed, want, 'GET /v1/nodes');
  const snap = (await env.coords[0].registry.snapshot()).peers.map((p) => p.vip).filter((v) => vips.includes(v));
  t.deepEqual(snap, want, 'registry snapshot');
  // Control: a string sort would put .10 before .9.
  t.notDeepEqual([...want].sort(), want);
  for (const vip of vips) {
    await env.r.del(`isthmus:node:${vip}`);
    await env.r.srem('isthmus:nodes', vip);
  }
});
