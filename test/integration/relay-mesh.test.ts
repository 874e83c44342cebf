/**
 * Two relays on loopback meshed through a real Redis: members on different relays exchange
 * DATA in one hop, a member that moves is followed at once (pub/sub), a restarted relay is
 * re-trusted via MESH_REAUTH, and session records come back after Redis loses them.
 *
 *   member a ─► relay r1 ─MESH_DATA─► relay r2 ─► member b
 */
import test from 'ava';
import Redis from 'ioredis';
import { systemClock } from '../../common/clock';
import { silentLogger } from '../../common/logger';
import { DgramSocket } from '../../native-bindings';
import { formatAddr, parseAddr } from '../../common/ipv4';
import { randomBytes } from 'node:crypto';
import { encodeMeshReauth } from '../../relay/mesh-frame';
import { createRelay, deriveMeshKey, Mesh, RedisMemberDirectory, RedisMeshRegistry, RedisSessionRecorder, type Relay } from '../../relay';
import { startRedis, type RedisHandle } from '../harness/redis';
import { fakeWg, identity, startMember, until, type Identity } from './relay-harness';

const P = `isthmus-mesh-test-${process.pid}:`;
const KEY = deriveMeshKey(Buffer.from('integration mesh secret, 32 bytes'));
let server: RedisHandle;
let redis: Redis;

test.before(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
});
test.after.always(async () => {
  redis?.disconnect();
  await server?.stop();
});

interface Node { id: string; relay: Relay; mesh: Mesh; port: number; meshPort: number; meshSocket: DgramSocket; stop(): Promise<void> }

async function startNode(id: string, ports: { port?: number; meshPort?: number } = {}): Promise<Node> {
  const socket = await DgramSocket.open({ host: '127.0.0.1', port: ports.port });
  const meshSocket = await DgramSocket.open({ host: '127.0.0.1', port: ports.meshPort });
  const conn = new Redis(server.url, { maxRetriesPerRequest: 1 });
  const log = silentLogger();
  const registry = new RedisMeshRegistry(conn, {
    relayId: id, meshIp: '127.0.0.1', meshPort: meshSocket.localAddress.port, listenIp: '127.0.0.1',
    listenPort: socket.localAddress.port, prefix: P, heartbeatMs: 200, logger: log,
  });
  const mesh = new Mesh({ relayId: id, key: KEY }, { logger: log, clock: systemClock, socket: meshSocket, routes: registry });
  const relay = createRelay({ id, keepaliveSeconds: 1, tickMs: 50, sessionRefreshMs: 200 })({
    logger: log, clock: systemClock, socket, directory: new RedisMemberDirectory(conn, { prefix: P }), mesh,
    sessionListener: new RedisSessionRecorder(conn, {
      relayId: id, relayIp: '127.0.0.1', relayPort: socket.localAddress.port, prefix: P, ttlMs: 3000, logger: log, eventFields: registry.eventFields(),
    }),
  });
  await registry.start();
  relay.start();
  return {
    id, relay, mesh, port: socket.localAddress.port, meshPort: meshSocket.localAddress.port, meshSocket,
    async stop() {
      await registry.stop();
      relay.stop();
      socket.close();
      meshSocket.close();
      await new Promise((r) => setTimeout(r, 50));
      conn.disconnect();
    },
  };
}

async function enroll(...ids: Identity[]): Promise<void> {
  for (const i of ids) await redis.set(`${P}key:${Buffer.from(i.kp.publicKey).toString('base64')}`, formatAddr(i.vip));
}

test.serial('members on different relays talk through one mesh hop; a moving member is followed', async (t) => {
  const a = identity('100.64.5.1');
  const b = identity('100.64.5.2');
  await enroll(a, b);
  const r1 = await startNode('m1');
  const r2 = await startNode('m2');
  const ma = await startMember(a, r1.port);
  let mb = await startMember(b, r2.port);
  t.teardown(async () => { ma.close(); mb.close(); await r1.stop(); await r2.stop(); });
  await until(() => ma.client.isReady && mb.client.isReady, 'both members authenticated');
  t.is((await redis.hget(`${P}relay:m2`, 'meshPort')) !== null, true);

  // The first frames wait for the route lookup and the mesh handshake, then arrive in order.
  const msgs = [fakeWg(), fakeWg(), fakeWg()];
  for (const m of msgs) ma.sendData(b.vip, m);
  await until(() => mb.received.length === 3, 'a → b via the mesh');
  t.deepEqual(mb.received.map((r) => r.srcVip), [a.vip, a.vip, a.vip]);
  t.deepEqual(mb.received.map((r) => r.payload), msgs);
  mb.sendData(a.vip, msgs[0]);
  await until(() => ma.received.length === 1, 'b → a via the mesh');
  t.is(ma.received[0].srcVip, b.vip);
  t.is(r1.relay.stats().meshSent, 3);
  t.is(r2.relay.stats().meshDelivered, 3);

  // b moves to r1 (as after a failover): r1 delivers locally, r2 drops its stale binding.
  mb.close();
  mb = await startMember(b, r1.port);
  await until(() => mb.client.isReady, 'b on r1');
  await until(() => r2.relay.sessions().length === 0, 'r2 let go of b');
  ma.sendData(b.vip, msgs[1]);
  await until(() => mb.received.length === 1, 'a → b locally');
  t.is(r1.relay.stats().meshSent, 3, 'no mesh hop any more');
  t.is((await redis.hgetall(`${P}session:${formatAddr(b.vip)}`)).relayId, 'm1');
});

test.serial('a restarted home relay re-trusts its peer (MESH_REAUTH) and records come back after Redis loses them', async (t) => {
  const a = identity('100.64.6.1');
  const b = identity('100.64.6.2');
  await enroll(a, b);
  const r1 = await startNode('n1');
  let r2 = await startNode('n2');
  const ma = await startMember(a, r1.port);
  let mb = await startMember(b, r2.port);
  t.teardown(async () => { ma.close(); mb.close(); await r1.stop(); await r2.stop(); });
  await until(() => ma.client.isReady && mb.client.isReady, 'both members authenticated');
  ma.sendData(b.vip, fakeWg());
  await until(() => mb.received.length === 1, 'first frame');

  // n2 restarts on the same ports, knowing nobody: r1's MESH_DATA is answered with
  // MESH_REAUTH, r1 handshakes again, and b (re-authenticated) gets a's frames again.
  const ports = { port: r2.port, meshPort: r2.meshPort };
  await r2.stop();
  mb.close();
  r2 = await startNode('n2', ports);
  mb = await startMember(b, r2.port);
  await until(() => mb.client.isReady, 'b on the new n2');
  await until(() => { ma.sendData(b.vip, fakeWg()); return mb.received.length >= 1; }, 'a → b after the restart', 5000);
  t.true(mb.received.every((r) => r.srcVip === a.vip));
  t.true(r2.relay.stats().drops['mesh-untrusted'] >= 1, 'the restarted relay refused the stale sender first');

  // Redis loses everything (a restart without persistence): the relays re-assert sessions.
  await redis.flushall();
  await new Promise((r) => setTimeout(r, 600));
  const recA = await redis.hgetall(`${P}session:${formatAddr(a.vip)}`);
  const recB = await redis.hgetall(`${P}session:${formatAddr(b.vip)}`);
  t.is(recA.relayId, 'n1');
  t.is(Number(recA.agentPort), ma.socket.localAddress.port);
  t.is(recB.relayId, 'n2');
  t.is(Number(recB.agentPort), mb.socket.localAddress.port);
  t.not(await redis.hget(`${P}relay:n1`, 'meshPort'), null, 'heartbeat re-registered the relay');
});

test.serial('hostile: MESH_REAUTHs sent to the mesh port without the mesh key or from another address are dropped and counted; the peer\'s genuine one makes the relay HELLO again', async (t) => {
  const a = identity('100.64.7.1');
  const b = identity('100.64.7.2');
  await enroll(a, b);
  const r1 = await startNode('h1');
  const r2 = await startNode('h2');
  const ma = await startMember(a, r1.port);
  const mb = await startMember(b, r2.port);
  const attacker = await DgramSocket.open({ host: '127.0.0.1' });
  t.teardown(async () => { attacker.close(); ma.close(); mb.close(); await r1.stop(); await r2.stop(); });
  await until(() => ma.client.isReady && mb.client.isReady, 'both members authenticated');
  ma.sendData(b.vip, fakeWg());
  await until(() => mb.received.length === 1, 'a → b through the mesh');
  const h2 = () => r1.mesh.peerStates().find((p) => p.id === 'h2')!;
  t.like(h2(), { ready: true, reauths: 0 });

  const reauth = (k: Uint8Array, relayId = 'h2') => encodeMeshReauth({ timestampMs: Date.now(), nonce: randomBytes(16), relayId }, k);
  const forged = [
    Buffer.from([0x23, 0, 0, 0]), // the old unauthenticated form
    reauth(deriveMeshKey(Buffer.from('a guess at the mesh secret, 32 bytes'))),
    reauth(KEY), // right key (leaked), but not from h2's mesh address
  ];
  const loopback = parseAddr('127.0.0.1');
  for (const f of forged) attacker.send(f, 0, f.length, loopback, r1.meshPort);
  attacker.flush();
  await until(() => (r1.relay.stats().drops['mesh-bad-reauth'] ?? 0) === forged.length, 'the forged REAUTHs counted');
  t.like(h2(), { ready: true, reauths: 0 }, 'no re-handshake');
  ma.sendData(b.vip, fakeWg());
  await until(() => mb.received.length === 2, 'traffic unaffected');

  // Positive control: the same frame from h2's own mesh socket takes effect, and traffic resumes after the HELLO.
  const genuine = reauth(KEY);
  r2.meshSocket.send(genuine, 0, genuine.length, loopback, r1.meshPort);
  r2.meshSocket.flush();
  await until(() => h2().reauths === 1, 'the genuine REAUTH honoured');
  await until(() => { ma.sendData(b.vip, fakeWg()); return mb.received.length >= 3; }, 'a → b after the new HELLO', 5000);
  t.true(h2().ready);
  t.is(r1.relay.stats().drops['mesh-bad-reauth'], forged.length);
});
