/**
 * The whole service behind one VIP, as a deployment runs it: two relays (health-checked UDP
 * flow hash, meshed through Redis) and two stateless coordinators (TCP flow hash), all behind
 * 10.90.0.1; members join through the VIP and reach each other wherever they land.
 */
import anyTest, { type TestFn } from 'ava';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { startJoinedOverlay, type JoinedOverlay } from '../../testbed';
import { forRoot } from '../harness/root';

const test = anyTest as TestFn<{ topo: Topology; overlay: JoinedOverlay }>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping', 'curl', 'redis-cli'] });

test.before(async (t) => {
  t.context.topo = await createTopology({ prefix: testPrefix('itcj'), relays: 2 });
  t.context.overlay = await startJoinedOverlay(t.context.topo, { cluster: true });
});
test.after.always(async (t) => {
  await t.context.overlay?.stop();
  await t.context.topo?.destroy();
});

rootTest('members join through coordinators behind the VIP and talk across the relay cluster', async (t) => {
  const { topo, overlay } = t.context;
  const token = await overlay.createToken();
  const a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token });
  const s1 = await overlay.join('s1', topo.ns.vpc2, topo.addr.vpc2, { token });
  const r = await topo.exec(topo.ns.vpc2, 'ping', ['-c', '5', '-i', '0.2', '-w', '10', a1.vip], { check: false });
  t.regex(r.stdout, /[3-5] received/, r.stdout);
  const homes = await Promise.all([a1, s1].map(async (m) =>
    (await topo.exec(topo.ns.hub, 'redis-cli', ['-h', topo.addr.vip, 'HGET', `isthmus:session:${m.vip}`, 'relayId'])).stdout.trim()));
  t.log(`a1 on ${homes[0]}, s1 on ${homes[1]}`);
  t.true(homes.every((h) => /^r[12]$/.test(h)));
  // Both coordinators are up behind the VIP (checked from the hub, which routes to each).
  for (const ip of topo.addr.relays) {
    const h = await topo.exec(topo.ns.hub, 'curl', ['-sS', '--max-time', '5', '--cacert', overlay.tls.ca, `https://${ip}:8080/v1/health`], { check: false });
    t.regex(h.stdout, /ok/, h.stderr);
  }
});
