/**
 * Three relays behind the VIP, meshed through Redis; a1 pinned to relay r1 and s1 to relay r2,
 * so every packet between them takes one mesh hop:
 *
 *   vpc1 a1 ─► r1 10.93.1.2:7000 ─MESH_DATA─► r2 10.93.2.2:7001 ─► vpc2 s1
 */
import anyTest, { type TestFn } from 'ava';
import { join } from 'node:path';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { startClusterOverlay, type ClusterOverlay } from '../../testbed';
import { forRoot } from '../harness/root';

const test = anyTest as TestFn<{ topo: Topology; overlay: ClusterOverlay }>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping'] });
const FIX = join(__dirname, 'fixtures');

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itcl'), relays: 3 });
  t.context.topo = topo;
  t.context.overlay = await startClusterOverlay(topo, { a1Relay: 1, s1Relay: 2 });
});
test.after.always(async (t) => {
  await t.context.overlay?.stop();
  await t.context.topo?.destroy();
});

rootTest('members on different relays reach each other through one mesh hop', async (t) => {
  const { topo, overlay } = t.context;
  t.is(overlay.homeOf(overlay.a1), 'r1');
  t.is(overlay.homeOf(overlay.s1), 'r2');
  const r = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '10', '-i', '0.2', '-w', '15', overlay.s1.vip], { check: false });
  t.regex(r.stdout, /[1-9]\d* received/, r.stdout);
  const back = await topo.exec(topo.ns.vpc2, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', overlay.a1.vip]);
  t.regex(back.stdout, /3 received/);
  // Both relays know each other in the registry.
  for (const id of ['r1', 'r2', 'r3']) t.regex(await overlay.redisCli(['HGET', `isthmus:relay:${id}`, 'meshPort']), /7001/);
});

rootTest('a 64 MiB TCP transfer across the mesh arrives intact', async (t) => {
  const { topo, overlay } = t.context;
  const sink = topo.spawn(topo.ns.vpc2, process.execPath, [join(FIX, 'tcp-sink.js'), overlay.s1.vip, '9000'], { name: 'tcp-sink' });
  await sink.waitForLine(/listening/);
  const source = await topo.exec(topo.ns.vpc1, process.execPath, [join(FIX, 'tcp-source.js'), overlay.s1.vip, '9000', String(64 * 2 ** 20)], { timeoutMs: 120_000 });
  const sent = JSON.parse(source.stdout.trim()) as { bytes: number; sha256: string };
  const received = JSON.parse(await sink.waitForLine(/sha256/, 30_000)) as { bytes: number; sha256: string };
  t.is(received.bytes, 64 * 2 ** 20);
  t.is(received.sha256, sent.sha256);
});

rootTest('the session records name the relay and 4-tuple each member really uses', async (t) => {
  const { topo, overlay } = t.context;
  for (const [m, relay, ip] of [[overlay.a1, 'r1', topo.addr.vpc1], [overlay.s1, 'r2', topo.addr.vpc2]] as const) {
    const rec = await overlay.sessionRecord(m);
    const sock = await overlay.agentRelaySocket(m);
    t.true(sock.ready);
    t.is(rec.relayId, relay);
    t.is(rec.agentIp, ip);
    t.is(Number(rec.agentPort), sock.port);
    t.is(rec.relayIp, topo.addr.vip);
  }
});
