/**
 * The relay's one `P:events` subscription (relay/redis-events.ts) against a real redis-server:
 * the mesh registry, the policy source and member removals share one subscriber connection,
 * each hears its own event types, and after the connection is cut (what a Redis restart or a
 * Sentinel switch does to it) the subscription comes back and the route cache and the policy
 * are told to re-read, while member removals keep arriving.
 */
import test from 'ava';
import Redis from 'ioredis';
import { silentLogger } from '../../common/logger';
import { parseAddr } from '../../common/ipv4';
import { EventType, encodeEvent, redisKeys } from '../../common/redis-schema';
import { followMemberRemovals, RedisMeshRegistry, RedisPolicySource, RelayEventSubscriber, type MeshSessionEvent, type PolicySourceEvent } from '../../relay';
import { startRedis, type RedisHandle } from '../harness/redis';
import { until } from './relay-harness';

let server: RedisHandle;
test.before(async () => { server = await startRedis(); });
test.after.always(async () => { await server?.stop(); });

const log = silentLogger();
const registryOpts = (P: string, events?: RelayEventSubscriber) => ({
  relayId: 'r1', meshIp: '127.0.0.1', meshPort: 1, listenIp: '127.0.0.1', listenPort: 2, prefix: P, logger: log, heartbeatMs: 1000, events,
});

async function subscribers(admin: Redis, channel: string): Promise<number> {
  const [, n] = await admin.pubsub('NUMSUB', channel) as [string, number];
  return Number(n);
}

test.serial('without a shared subscription each part opens its own connection (the count this test relies on)', async (t) => {
  const P = `ev-own-${process.pid}:`;
  const admin = new Redis(server.url);
  const conn = new Redis(server.url, { maxRetriesPerRequest: 1 });
  const registry = new RedisMeshRegistry(conn, registryOpts(P));
  const policy = new RedisPolicySource(conn, { prefix: P, logger: log });
  t.teardown(async () => {
    await registry.stop();
    await policy.stop();
    conn.disconnect();
    admin.disconnect();
  });
  await registry.start();
  await policy.start();
  t.is(await subscribers(admin, redisKeys(P).events), 2);
  await policy.stop();
  t.is(await subscribers(admin, redisKeys(P).events), 1, 'a part that opened its own closes it');
});

test.serial('one connection for mesh routes, policy and member removals; each hears its own events; resubscribed after the connection is cut', async (t) => {
  const P = `ev-shared-${process.pid}:`;
  const K = redisKeys(P);
  const admin = new Redis(server.url);
  const conn = new Redis(server.url, { maxRetriesPerRequest: 1 });
  const events = new RelayEventSubscriber(conn, { prefix: P, logger: log });
  const registry = new RedisMeshRegistry(conn, registryOpts(P, events));
  const policy = new RedisPolicySource(conn, { prefix: P, logger: log, events });
  const mesh: (MeshSessionEvent | undefined)[] = [];
  const pol: (PolicySourceEvent | undefined)[] = [];
  const removed: number[] = [];
  registry.onEvent((e) => mesh.push(e));
  policy.onEvent((e) => pol.push(e));
  let stopRemovals: (() => void) | undefined;
  t.teardown(async () => {
    stopRemovals?.();
    await registry.stop();
    await policy.stop();
    await events.stop();
    conn.disconnect();
    admin.disconnect();
  });
  await registry.start();
  await policy.start();
  stopRemovals = await followMemberRemovals(events, (vip) => removed.push(vip));
  t.is(await subscribers(admin, K.events), 1, 'one subscriber connection for the three');

  await admin.publish(K.events, encodeEvent({ type: EventType.SessionUp, vip: '100.64.0.9', relayId: 'r2', meshIp: '127.0.0.1', meshPort: 7000 }));
  await admin.publish(K.events, encodeEvent({ type: EventType.PolicyChanged, version: 3 }));
  await admin.publish(K.events, encodeEvent({ type: EventType.NodeChanged, vip: '100.64.0.8', version: 4 }));
  await admin.publish(K.events, encodeEvent({ type: EventType.NodeRemoved, vip: '100.64.0.7', version: 5 }));
  await admin.publish(K.events, '{"type":"node-removed","vip":"junk","version":6}');
  await admin.publish(K.events, encodeEvent({ type: EventType.ProxyUserChanged, name: 'u' }));
  await until(() => removed.length >= 1 && pol.length >= 3 && mesh.length >= 1, 'events dispatched');
  await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(mesh, [{ type: EventType.SessionUp, vip: parseAddr('100.64.0.9'), relayId: 'r2', mesh: { addr: parseAddr('127.0.0.1'), port: 7000 } }]);
  t.deepEqual(pol, [
    { type: EventType.PolicyChanged },
    { type: EventType.NodeChanged, vip: parseAddr('100.64.0.8') },
    { type: EventType.NodeRemoved, vip: parseAddr('100.64.0.7') },
  ]);
  t.deepEqual(removed, [parseAddr('100.64.0.7')], 'the malformed vip and the other types reach no removal');

  // Cut the subscriber connection (a Redis restart or a Sentinel switch does this to it).
  mesh.length = 0;
  pol.length = 0;
  const killed = await admin.client('KILL', 'TYPE', 'pubsub') as number;
  t.is(killed, 1, 'exactly one pub/sub connection to cut');
  await until(() => mesh.length === 1 && pol.length === 1, 'resubscribed listeners told', 5000);
  t.deepEqual(mesh, [undefined], 'the mesh drops its cached routes');
  t.deepEqual(pol, [undefined], 'the policy and tags are re-read');
  for (let i = 0; i < 50 && await subscribers(admin, K.events) === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.is(await subscribers(admin, K.events), 1, 'still one subscriber after the reconnect');
  await admin.publish(K.events, encodeEvent({ type: EventType.NodeRemoved, vip: '100.64.0.6', version: 7 }));
  await until(() => removed.length === 2, 'removal after the reconnect');
  t.is(removed[1], parseAddr('100.64.0.6'));

  // A part that stops hears nothing more; the others still do.
  await policy.stop();
  t.is(await subscribers(admin, K.events), 1, 'a part using the shared subscription leaves it open');
  pol.length = 0;
  await admin.publish(K.events, encodeEvent({ type: EventType.PolicyChanged, version: 8 }));
  await admin.publish(K.events, encodeEvent({ type: EventType.NodeRemoved, vip: '100.64.0.5', version: 9 }));
  await until(() => removed.length === 3, 'removal after the policy source stopped');
  t.deepEqual(pol, []);
});
