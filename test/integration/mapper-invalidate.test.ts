/**
 * The mapper's cache invalidates by key (mapper/directory.ts, mapper/alias-cache.ts), against
 * a real redis-server: an event for vip V refetches exactly V's entries (original IP,
 * hostname, vip) while every other member stays cached (no Redis call, counted with
 * INFO commandstats); `policy-changed` invalidates nothing; `node-up` retires negative entries.
 */
import test from 'ava';
import { Redis } from 'ioredis';
import { startRedis, type RedisHandle } from '../harness/redis';
import { encodeEvent, type ClusterEvent } from '../../common/redis-schema';
import { RedisDirectory } from '../../mapper';

const MEMBERS = 2000;
const orig = (i: number) => `10.1.${i >> 8}.${i & 255}`;
const vipOf = (i: number) => `100.64.${i >> 8}.${i & 255}`;
const host = (i: number) => `host-${i}`;

let redis: RedisHandle;
let r: Redis;
let dir: RedisDirectory;

function memberWrites(p: ReturnType<Redis['pipeline']>, i: number, relayPort: number): void {
  p.set(`isthmus:orig:${orig(i)}`, vipOf(i));
  p.set(`isthmus:host:${host(i)}`, vipOf(i));
  p.hset(`isthmus:node:${vipOf(i)}`, { pub: 'k' + i, orig: orig(i), hostname: host(i), tags: '[]', created: '1', lastSeen: '1', ephemeral: '0' });
  p.hset(`isthmus:session:${vipOf(i)}`, { relayIp: '192.0.2.1', relayPort: String(relayPort), agentIp: '198.51.100.1', agentPort: '4000', relayId: 'r1', since: '1' });
}

async function writeMember(i: number, relayPort: number): Promise<void> {
  const p = r.pipeline();
  memberWrites(p, i, relayPort);
  await p.exec();
}

/** Redis commands the directory could issue, so far. */
async function redisReads(): Promise<number> {
  const info = await r.info('commandstats');
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(get|hgetall|exec):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

async function publishAndWait(e: ClusterEvent): Promise<void> {
  const before = dir.stats.events;
  await r.publish('isthmus:events', encodeEvent(e));
  const until = Date.now() + 2000;
  while (dir.stats.events === before) {
    if (Date.now() > until) throw new Error('event not delivered');
    await new Promise((res) => setTimeout(res, 5));
  }
}

async function lookupAll(skip?: number): Promise<void> {
  for (let i = 0; i < MEMBERS; i++) {
    if (i === skip) continue;
    const a = await dir.byOriginalIp(orig(i));
    const b = await dir.byHostname(host(i));
    const c = await dir.byVirtualIp(vipOf(i));
    if (a?.virtualIp !== vipOf(i) || b?.virtualIp !== vipOf(i) || c?.originalIp !== orig(i)) throw new Error(`member ${i} wrong`);
  }
}

test.before(async () => {
  redis = await startRedis();
  r = new Redis(redis.url);
  const p = r.pipeline();
  for (let i = 0; i < MEMBERS; i++) memberWrites(p, i, 51820);
  await p.exec();
  dir = new RedisDirectory({ redis: redis.url, ttlMs: 600_000, negativeTtlMs: 600_000 });
  await dir.start();
  await lookupAll();
});

test.after.always(async () => {
  await dir?.close();
  r?.disconnect();
  await redis?.stop();
});

test.serial('session-up for V refetches exactly V\'s three entries; the others stay cached (no Redis call)', async (t) => {
  const V = 777;
  await writeMember(V, 60000);
  const inv = dir.stats.invalidated;
  await publishAndWait({ type: 'session-up', vip: vipOf(V), relayId: 'r2' });
  t.is(dir.stats.invalidated - inv, 3, 'node entry, original IP, hostname');

  const reads = await redisReads();
  const misses = dir.stats.misses;
  await lookupAll(V);
  t.is(dir.stats.misses, misses, `${MEMBERS - 1} other members: all hits`);
  t.is(await redisReads(), reads, 'and not one Redis read');

  t.is((await dir.byVirtualIp(vipOf(V)))?.relay?.port, 60000);
  t.is((await dir.byOriginalIp(orig(V)))?.relay?.port, 60000);
  t.is((await dir.byHostname(host(V)))?.relay?.port, 60000);
  t.true(dir.stats.misses > misses, 'V\'s entries were refetched');
  t.true(await redisReads() > reads);
});

test.serial('policy-changed invalidates nothing', async (t) => {
  const inv = dir.stats.invalidated;
  await publishAndWait({ type: 'policy-changed', version: 42 });
  const reads = await redisReads();
  const misses = dir.stats.misses;
  await lookupAll();
  t.is(dir.stats.invalidated, inv);
  t.is(dir.stats.misses, misses);
  t.is(await redisReads(), reads);
});

test.serial('node-up retires negative entries (a new member may own the name); positive entries stay', async (t) => {
  const NEW = MEMBERS + 5;
  t.is(await dir.byOriginalIp(orig(NEW)), null);
  const misses = dir.stats.misses;
  t.is(await dir.byOriginalIp(orig(NEW)), null);
  t.is(dir.stats.misses, misses, 'unknown: cached as negative');
  await writeMember(NEW, 51820);
  await publishAndWait({ type: 'node-up', vip: vipOf(NEW), version: 1 });
  t.is((await dir.byOriginalIp(orig(NEW)))?.virtualIp, vipOf(NEW));
  const reads = await redisReads();
  await lookupAll();
  t.is(await redisReads(), reads, 'the other members are still cached');
});

test.serial('a burst of events for members not in the cache costs no scan and evicts nothing', async (t) => {
  const size = { hits: dir.stats.hits, inv: dir.stats.invalidated };
  const p = r.pipeline();
  for (let i = 0; i < 10_000; i++) p.publish('isthmus:events', encodeEvent({ type: 'session-up', vip: `100.65.${i >> 8}.${i & 255}`, relayId: 'r3' }));
  const events = dir.stats.events;
  const t0 = Date.now();
  await p.exec();
  const until = Date.now() + 10_000;
  while (dir.stats.events < events + 10_000) {
    if (Date.now() > until) return t.fail('events not delivered');
    await new Promise((res) => setTimeout(res, 10));
  }
  t.log(`10,000 events handled in ${Date.now() - t0} ms with ${3 * MEMBERS} entries cached`);
  t.is(dir.stats.invalidated, size.inv);
  const reads = await redisReads();
  await lookupAll();
  t.is(await redisReads(), reads);
  t.true(dir.stats.hits > size.hits);
});

/** Calls of one command so far (INFO commandstats). */
async function calls(cmd: string): Promise<number> {
  const m = new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(await r.info('commandstats'));
  return m ? Number(m[1]) : 0;
}

test.serial('a session key that expires without an event ends its online entry then; an entry whose session has no TTL stays cached', async (t) => {
  const GONE = MEMBERS + 10;
  const KEPT = MEMBERS + 11;
  await writeMember(GONE, 51820);
  await writeMember(KEPT, 51820);
  // GONE's relay "dies": its session key just runs out (no session-down is ever published).
  await r.pexpire(`isthmus:session:${vipOf(GONE)}`, 400);
  t.true((await dir.byOriginalIp(orig(GONE)))?.online);
  t.true((await dir.byOriginalIp(orig(KEPT)))?.online);
  const misses = dir.stats.misses;
  t.true((await dir.byOriginalIp(orig(GONE)))?.online, 'cached while the session key lives');
  t.is(dir.stats.misses, misses);
  await new Promise((res) => setTimeout(res, 600));
  t.is(await r.exists(`isthmus:session:${vipOf(GONE)}`), 0, 'Redis expired it');
  const e = await dir.byOriginalIp(orig(GONE));
  t.false(e?.online, 'offline once the session key is gone, without any event (ttlMs is 10 min here)');
  t.is(e?.relay, null);
  t.is(dir.stats.misses, misses + 1);
  // Positive control, same setup: the member whose session key has no TTL is still a hit.
  t.true((await dir.byOriginalIp(orig(KEPT)))?.online);
  t.is(dir.stats.misses, misses + 1);
});

test.serial('a miss is one round trip: one script call, no GET or MULTI of its own', async (t) => {
  const M = MEMBERS + 20;
  await writeMember(M, 51820);
  const before = { evalsha: await calls('evalsha'), multi: await calls('multi'), get: await calls('get') };
  const misses = dir.stats.misses;
  t.is((await dir.byHostname(host(M)))?.virtualIp, vipOf(M));
  t.is(dir.stats.misses, misses + 1);
  t.is(await calls('evalsha'), before.evalsha + 1);
  t.is(await calls('multi'), before.multi, 'no MULTI');
  // The script's own GET counts in commandstats too: exactly one.
  t.is(await calls('get'), before.get + 1);
  // And unknown names: one script call, answered null.
  t.is(await dir.byHostname('nobody-here'), null);
  t.is(await calls('evalsha'), before.evalsha + 2);
});
