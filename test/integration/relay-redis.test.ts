import test from 'ava';
import Redis from 'ioredis';
import { Registry } from 'prom-client';
import { systemClock } from '../../common/clock';
import { silentLogger } from '../../common/logger';
import { DgramSocket } from '../../native-bindings';
import { createRelay, registerRelayMetrics, RedisMemberDirectory, RedisSessionRecorder } from '../../relay';
import { SessionTable } from '../../relay/session-table';
import { formatAddr } from '../../common/ipv4';
import { AuthFailReason } from '../../protocol/relay-frame';
import { startRedis, type RedisHandle } from '../harness/redis';
import { fakeWg, identity, startMember, until } from './relay-harness';

const P = `isthmus-relay-test-${process.pid}:`;
let redisServer: RedisHandle;
let redis: Redis;

test.before(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
});
test.after.always(async () => {
  redis?.disconnect();
  await redisServer?.stop();
});

test.serial('Redis directory authorizes members; sessions are recorded, refreshed, deleted and announced', async (t) => {
  const a = identity('100.64.1.1');
  const b = identity('100.64.1.2');
  const stranger = identity('100.64.1.3');
  await redis.set(`${P}key:${Buffer.from(a.kp.publicKey).toString('base64')}`, '100.64.1.1');
  await redis.set(`${P}key:${Buffer.from(b.kp.publicKey).toString('base64')}`, '100.64.1.2');

  const sub = new Redis(redisServer.url);
  t.teardown(() => sub.disconnect());
  const events: { type: string; vip: string; relayId: string }[] = [];
  await sub.subscribe(`${P}events`);
  sub.on('message', (_c, m: string) => events.push(JSON.parse(m)));

  const socket = await DgramSocket.open({ host: '127.0.0.1' });
  const port = socket.localAddress.port;
  const sessionListener = new RedisSessionRecorder(redis, { relayId: 'r-redis', relayIp: '127.0.0.1', relayPort: port, prefix: P, ttlMs: 3000, logger: silentLogger() });
  const relay = createRelay({ id: 'r-redis', keepaliveSeconds: 1, tickMs: 50, sessionRefreshMs: 200 })({
    logger: silentLogger(), clock: systemClock, socket, directory: new RedisMemberDirectory(redis, { prefix: P }), sessionListener,
  });
  relay.start();
  const registry = new Registry();
  registerRelayMetrics(registry, relay);
  const ma = await startMember(a, port);
  const mb = await startMember(b, port);
  const ms = await startMember(stranger, port);
  t.teardown(() => { ma.close(); mb.close(); ms.close(); relay.stop(); socket.close(); });
  const fails: number[] = [];
  ms.client.on('auth-failed', (r) => fails.push(r));
  await until(() => ma.client.isReady && mb.client.isReady && fails.length > 0, 'auth outcomes');
  t.is(fails[0], AuthFailReason.UNKNOWN_KEY);

  await until(() => events.filter((e) => e.type === 'session-up').length >= 2, 'session-up events');
  const rec = await redis.hgetall(`${P}session:100.64.1.1`);
  t.is(rec.relayId, 'r-redis');
  t.is(rec.relayIp, '127.0.0.1');
  t.is(rec.relayPort, String(port));
  t.is(rec.agentIp, '127.0.0.1');
  t.is(rec.agentPort, String(ma.socket.localAddress.port));
  // Refreshed: after more than the TTL the key is still there.
  await new Promise((r) => setTimeout(r, 3500));
  t.true((await redis.pttl(`${P}session:100.64.1.1`)) > 0);

  ma.sendData(b.vip, fakeWg());
  await until(() => mb.received.length === 1, 'DATA');
  const text = await registry.metrics();
  t.regex(text, /isthmus_relay_drops_total\{reason="auth-unknown-key"\} [1-9]/);
  t.regex(text, /isthmus_relay_forwarded_frames_total 1/);
  t.regex(text, /isthmus_relay_sessions 2/);

  // A member that goes silent expires: its record is deleted and announced.
  mb.close();
  await until(() => events.some((e) => e.type === 'session-down' && e.vip === '100.64.1.2'), 'session-down', 6000);
  t.is(await redis.exists(`${P}session:100.64.1.2`), 0);
  t.is(await redis.exists(`${P}session:100.64.1.1`), 1);
});

test.serial('a directory failure answers AUTH with "unavailable" and is counted', async (t) => {
  const a = identity('100.64.2.1');
  const broken = new Redis('redis://127.0.0.1:1', { maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: () => null });
  broken.on('error', () => {});
  t.teardown(() => broken.disconnect());
  const socket = await DgramSocket.open({ host: '127.0.0.1' });
  const relay = createRelay({ id: 'r-broken' })({ logger: silentLogger(), clock: systemClock, socket, directory: new RedisMemberDirectory(broken, { prefix: P }) });
  relay.start();
  const ma = await startMember(a, socket.localAddress.port);
  t.teardown(() => { ma.close(); relay.stop(); socket.close(); });
  const fails: number[] = [];
  ma.client.on('auth-failed', (r) => fails.push(r));
  await until(() => fails.length > 0, 'AUTH_FAIL');
  t.is(fails[0], AuthFailReason.UNAVAILABLE);
  t.true(relay.stats().drops['auth-unavailable'] >= 1);
});

test.serial('a refresh of thousands of sessions goes out in chunks and re-creates every lost record; records of other relays stay', async (t) => {
  const prefix = `${P}chunks:`;
  const table = new SessionTable();
  const n = 2500;
  for (let i = 0; i < n; i++) table.bind(0x64500000 + i, 0x7f000001, 10_000 + i, new Uint8Array(32), 0);
  const rec = new RedisSessionRecorder(redis, { relayId: 'r-chunks', relayIp: '127.0.0.1', relayPort: 7000, prefix, ttlMs: 60_000, logger: silentLogger() });
  // One member moved to another relay meanwhile: its record must not be taken back.
  const moved = `${prefix}session:${formatAddr(0x64500000 + 7)}`;
  await redis.hset(moved, { relayId: 'r-other', relayIp: '127.0.0.2', relayPort: '7000', agentIp: '127.0.0.9', agentPort: '1', since: '1' });
  rec.refresh(table.sessions());
  const count = async () => (await redis.keys(`${prefix}session:*`)).length;
  for (const end = Date.now() + 20_000; (await count()) < n && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
  t.is(await count(), n, 'every session has its record (more than two chunks of 1000)');
  const last = `${prefix}session:${formatAddr(0x64500000 + n - 1)}`;
  t.is(await redis.hget(last, 'relayId'), 'r-chunks');
  t.is(await redis.hget(last, 'agentPort'), String(10_000 + n - 1));
  t.true((await redis.pttl(last)) > 0, 'with a TTL');
  t.is(await redis.hget(moved, 'relayId'), 'r-other', 'a record another relay owns is left alone');
  t.is(await redis.pttl(moved), -1);
  await redis.del(...(await redis.keys(`${prefix}*`)));
});

test.serial('the directory cache drops expired entries as lookups go by; live ones still spare Redis', async (t) => {
  const prefix = `${P}dircache:`;
  let now = 0;
  const dir = new RedisMemberDirectory(redis, { prefix, cacheMs: 5000, now: () => now });
  const keys = Array.from({ length: 4 }, (_, i) => new Uint8Array(32).fill(i + 1));
  for (const [i, k] of keys.entries()) await redis.set(`${prefix}key:${Buffer.from(k).toString('base64')}`, `100.80.0.${i + 1}`);
  for (const k of keys.slice(0, 3)) t.truthy(await dir.lookupByKey(k));
  t.is(dir.cached, 3);
  // Still cached: answered without Redis (the key is gone there, the cache still has it).
  await redis.del(`${prefix}key:${Buffer.from(keys[0]).toString('base64')}`);
  now = 4000;
  t.deepEqual(await dir.lookupByKey(keys[0]), { vip: (100 << 24 | 80 << 16 | 1) >>> 0 });
  // Past their lifetime: the next lookup (of another key) sweeps them out.
  now = 6000;
  t.truthy(await dir.lookupByKey(keys[3]));
  t.is(dir.cached, 1, 'only the fresh entry is left');
  t.is(await dir.lookupByKey(keys[0]), undefined, 'an expired entry is not used: Redis says the key is gone');
  await redis.del(...(await redis.keys(`${prefix}*`)));
});
