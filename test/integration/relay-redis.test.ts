import test from 'ava';
import Redis from 'ioredis';
import { Registry } from 'prom-client';
import { systemClock } from '../../common/clock';
import { silentLogger } from '../../common/logger';
import { DgramSocket } from '../../native-bindings';
import { createRelay, registerRelayMetrics, RedisMemberDirectory, RedisSessionRecorder } from '../../relay';
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
