/**
 * Lookup API + SDK + directory cache against a real redis-server, populated the way the
 * coordinator and relays write it (docs/STATE.md), with events published on the channel.
 */
import test from 'ava';
import { Redis } from 'ioredis';
import { startRedis, type RedisHandle } from '../harness/redis';
import { encodeEvent, type NodeEventType } from '../../common/redis-schema';
import { startMapperService, Mapper, UnknownOriginalIpError, InvalidIpError, type MapperService } from '../../mapper';

let redis: RedisHandle;
let r: Redis;
let svc: MapperService;
let base: string;
let version = 0;

async function member(orig: string, vip: string, opts: { hostname?: string; relayPort?: number; publish?: NodeEventType } = {}): Promise<void> {
  await r.set(`isthmus:orig:${orig}`, vip);
  await r.hset(`isthmus:node:${vip}`, { pub: 'k' + vip, orig, hostname: opts.hostname ?? '', tags: '["t1"]', created: '1', lastSeen: '1700000000000', ephemeral: '0' });
  if (opts.hostname) await r.set(`isthmus:host:${opts.hostname}`, vip);
  if (opts.relayPort) {
    await r.hset(`isthmus:session:${vip}`, { relayIp: '192.0.2.1', relayPort: String(opts.relayPort), agentIp: '198.51.100.1', agentPort: '4000', relayId: 'r1', since: '1' });
    await r.expire(`isthmus:session:${vip}`, 30);
  }
  if (opts.publish) await r.publish('isthmus:events', encodeEvent({ type: opts.publish, vip, version: ++version }));
}

test.before(async () => {
  redis = await startRedis();
  r = new Redis(redis.url);
  await member('10.0.0.1', '100.64.0.1', { hostname: 'alpha', relayPort: 51820 });
  await member('10.0.0.2', '100.64.0.2');
  svc = await startMapperService({ redis: redis.url, api: { host: '127.0.0.1', port: 0 } });
  base = `http://127.0.0.1:${svc.addresses.api!.port}`;
});

test.after.always(async () => {
  await svc?.stop();
  r?.disconnect();
  await redis?.stop();
});

const get = async (path: string) => { const res = await fetch(base + path); return { status: res.status, body: await res.json() as Record<string, unknown> }; };

test.serial('GET /v1/map: found, unknown 404, malformed 400', async (t) => {
  const a = await get('/v1/map/10.0.0.1');
  t.is(a.status, 200);
  t.deepEqual(a.body, { originalIp: '10.0.0.1', virtualIp: '100.64.0.1', hostname: 'alpha', online: true, relay: { ip: '192.0.2.1', port: 51820 }, agent: { ip: '198.51.100.1', port: 4000 }, tags: ['t1'], lastSeen: 1700000000000 });
  const off = await get('/v1/map/10.0.0.2');
  t.like(off.body, { online: false, relay: null, agent: null });
  const u = await get('/v1/map/10.9.9.9');
  t.is(u.status, 404);
  t.like(u.body, { error: 'unknown-original-ip' });
  t.regex(String(u.body.reason), /10\.9\.9\.9/);
  for (const bad of ['10.0.0', '999.1.1.1', 'abc', '1.2.3.4.5', '010.0.0.1']) {
    const b = await get('/v1/map/' + bad);
    t.is(b.status, 400, bad);
    t.is(b.body.error, 'bad-request');
    t.truthy(b.body.reason);
  }
});

test.serial('batch and reverse', async (t) => {
  const res = await fetch(base + '/v1/map', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ips: ['10.0.0.1', '10.9.9.9', '10.0.0.2'] }) });
  const body = await res.json() as { found: Array<{ originalIp: string }>; unknown: string[] };
  t.deepEqual(body.found.map((f) => f.originalIp), ['10.0.0.1', '10.0.0.2']);
  t.deepEqual(body.unknown, ['10.9.9.9']);
  const tooMany = await fetch(base + '/v1/map', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ips: Array.from({ length: 257 }, () => '10.0.0.1') }) });
  t.is(tooMany.status, 400);
  const badItem = await fetch(base + '/v1/map', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ips: ['x'] }) });
  t.is(badItem.status, 400);
  t.like((await get('/v1/reverse/100.64.0.1')).body, { originalIp: '10.0.0.1' });
  t.is((await get('/v1/reverse/100.64.9.9')).status, 404);
  t.is((await get('/v1/reverse/nope')).status, 400);
  t.like((await get('/healthz')).body, { ok: true, live: true });
});

test.serial('SDK: resolve, typed errors, cache, in-flight coalescing', async (t) => {
  let calls = 0;
  const counting: typeof fetch = (input, init) => { calls++; return fetch(input, init); };
  const m = new Mapper({ url: base, fetch: counting });
  const all = await Promise.all(Array.from({ length: 50 }, () => m.resolve('10.0.0.1')));
  t.is(calls, 1);
  t.true(all.every((x) => x.virtualIp === '100.64.0.1'));
  await m.resolve('10.0.0.1');
  t.is(calls, 1);
  const err = await t.throwsAsync(m.resolve('10.9.9.9'), { instanceOf: UnknownOriginalIpError });
  t.is(err?.code, 'ERR_UNKNOWN_ORIGINAL_IP');
  await t.throwsAsync(m.resolve('not-an-ip'), { instanceOf: InvalidIpError });
  t.is((await m.reverse('100.64.0.2'))?.originalIp, '10.0.0.2');
  const many = await m.resolveMany(['10.0.0.1', '10.0.0.2', '10.9.9.9']);
  t.deepEqual([...many.keys()].sort(), ['10.0.0.1', '10.0.0.2']);
  const down = new Mapper({ url: 'http://127.0.0.1:1', timeoutMs: 500 });
  await t.throwsAsync(down.resolve('10.0.0.1'), { code: 'ERR_MAPPER_API' });
});

test.serial('a re-join (new vip) and a relay move are seen within 1 s of the event; not before', async (t) => {
  t.is((await get('/v1/map/10.0.0.1')).body.virtualIp, '100.64.0.1');
  // Re-join under a new vip, written without an event yet: the cache still answers the old one.
  await member('10.0.0.1', '100.64.0.9', { hostname: 'alpha', relayPort: 51821 });
  t.is((await get('/v1/map/10.0.0.1')).body.virtualIp, '100.64.0.1', 'served from cache');
  const t0 = Date.now();
  await r.publish('isthmus:events', encodeEvent({ type: 'node-changed', vip: '100.64.0.1', version: ++version }));
  await r.publish('isthmus:events', encodeEvent({ type: 'node-up', vip: '100.64.0.9', version: ++version }));
  for (;;) {
    const b = (await get('/v1/map/10.0.0.1')).body;
    if (b.virtualIp === '100.64.0.9') { t.like(b, { relay: { ip: '192.0.2.1', port: 51821 } }); break; }
    if (Date.now() - t0 > 1000) { t.fail('not seen within 1 s'); return; }
    await new Promise((res) => setTimeout(res, 20));
  }
  t.log(`re-join seen after ${Date.now() - t0} ms`);
  // Relay move: only the session changes, announced by session-up.
  await r.hset('isthmus:session:100.64.0.9', { relayIp: '192.0.2.2', relayPort: '51900' });
  t.like((await get('/v1/map/10.0.0.1')).body, { relay: { ip: '192.0.2.1' } });
  const t1 = Date.now();
  await r.publish('isthmus:events', encodeEvent({ type: 'session-up', vip: '100.64.0.9', relayId: 'r2' }));
  for (;;) {
    const b = (await get('/v1/map/10.0.0.1')).body as { relay: { ip: string } };
    if (b.relay.ip === '192.0.2.2') break;
    if (Date.now() - t1 > 1000) { t.fail('relay move not seen within 1 s'); return; }
    await new Promise((res) => setTimeout(res, 20));
  }
  // A new member previously looked up as unknown: node-up clears negative entries.
  t.is((await get('/v1/map/10.0.0.3')).status, 404);
  await member('10.0.0.3', '100.64.0.3', { publish: 'node-up' });
  const t2 = Date.now();
  while ((await get('/v1/map/10.0.0.3')).status !== 200) {
    if (Date.now() - t2 > 1000) { t.fail('new member not seen within 1 s'); return; }
    await new Promise((res) => setTimeout(res, 20));
  }
  t.pass();
});

test.serial('subscription loss flushes the cache (events may have been missed)', async (t) => {
  t.is((await get('/v1/map/10.0.0.2')).body.virtualIp, '100.64.0.2');
  await member('10.0.0.2', '100.64.0.22');
  t.is((await get('/v1/map/10.0.0.2')).body.virtualIp, '100.64.0.2', 'served from cache');
  await r.client('KILL', 'TYPE', 'pubsub');
  const t0 = Date.now();
  while ((await get('/v1/map/10.0.0.2')).body.virtualIp !== '100.64.0.22') {
    if (Date.now() - t0 > 3000) { t.fail('cache not flushed after reconnect'); return; }
    await new Promise((res) => setTimeout(res, 50));
  }
  // And caching resumes once resubscribed.
  const t1 = Date.now();
  while (!(await get('/healthz')).body.live) {
    if (Date.now() - t1 > 3000) { t.fail('never resubscribed'); return; }
    await new Promise((res) => setTimeout(res, 50));
  }
  t.pass();
});
