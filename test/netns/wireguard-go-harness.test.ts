/**
 * Proves the peer harnesses: two stock wireguard-go instances, in vpc1 and the hub, complete a
 * handshake over the veth and carry ping over their tunnel addresses; stop() ends the daemon and
 * removes its UAPI socket. Then the bench's peer subjects (wireguard-go hub-and-spoke, nebula via
 * relay) carry vpc1 → vpc2 traffic while the hub still refuses to forward between the veths.
 * Root only.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { createTopology, destroyAllWithPrefix, testPrefix, listNamespaces } from '../harness/netns';
import { pidAlive } from '../harness/procs';
import { startWireguardGo, wgGenKey, wgPubKey, WG_RUN_DIR } from '../harness/wireguard-go';
import { wireguardGoHubSubject, waitForPing, type SubjectFactory } from '../../testbed';
import { nebulaRelaySubject } from '../harness/nebula';
import { forRoot } from '../harness/root';

const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping', 'wireguard-go', 'wg', 'nebula'] });

const p = testPrefix('itn7');
const p2 = testPrefix('itn7');
test.after.always(async () => {
  await destroyAllWithPrefix(p);
  await destroyAllWithPrefix(p2);
});

rootTest('two wireguard-go peers handshake and carry ping; stop() ends them', async (t) => {
  const topo = await createTopology({ prefix: p });
  try {
    const [k1, k2] = [await wgGenKey(), await wgGenKey()];
    t.regex(k1, /^[A-Za-z0-9+/]{43}=$/);
    const [pub1, pub2] = [await wgPubKey(k1), await wgPubKey(k2)];
    t.not(pub1, pub2);
    const hub = await startWireguardGo(topo, {
      ns: topo.ns.hub, ifname: `${p}-wgh`, privateKey: k2, listenPort: 51820, address: '10.99.0.1/24',
      peers: [{ publicKey: pub1, allowedIps: ['10.99.0.2/32'] }],
    });
    const spoke = await startWireguardGo(topo, {
      ns: topo.ns.vpc1, ifname: `${p}-wg1`, privateKey: k1, address: '10.99.0.2/24',
      peers: [{ publicKey: pub2, allowedIps: ['10.99.0.0/24'], endpoint: `${topo.addr.vip}:51820`, persistentKeepalive: 25 }],
    });
    t.is(spoke.publicKey, pub1);
    const ping = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.99.0.1'], { check: false });
    t.is(ping.code, 0, ping.stdout + ping.stderr);
    const [peerOfHub] = await hub.peers();
    t.is(peerOfHub?.publicKey, pub1);
    t.true((peerOfHub?.latestHandshake ?? 0) > 0, 'handshake recorded');
    t.true((peerOfHub?.rxBytes ?? 0) > 0);
    t.regex(peerOfHub?.endpoint ?? '', /^10\.91\.1\.2:\d+$/, 'the hub sees the spoke at its vpc1 address');

    // A peer removed from the hub gets no answers: the tunnel really is the path.
    await hub.removePeer(pub1);
    const cut = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '1', '-W', '1', '10.99.0.1'], { check: false });
    t.not(cut.code, 0);

    await spoke.stop();
    await hub.stop();
    t.false(pidAlive(hub.process.pid));
    t.false(existsSync(`${WG_RUN_DIR}/${p}-wgh.sock`), 'UAPI socket removed');
  } finally {
    await topo.destroy();
  }
  t.deepEqual((await listNamespaces()).filter((n) => n.startsWith(p)), []);
});

rootTest('bench peer subjects carry vpc1 → vpc2 through the hub, and only through their own tunnel', async (t) => {
  const topo = await createTopology({ prefix: p2 });
  try {
    // Routes to each other's veth via the hub: only the hub's forward policy can stop this.
    await topo.exec(topo.ns.vpc1, 'ip', ['route', 'add', '10.92.1.0/24', 'via', topo.addr.hubVpc1]);
    await topo.exec(topo.ns.vpc2, 'ip', ['route', 'add', '10.91.1.0/24', 'via', topo.addr.hubVpc2]);
    for (const factory of [wireguardGoHubSubject, nebulaRelaySubject] as SubjectFactory[]) {
      const subject = factory();
      try {
        const ep = await subject.setup(topo);
        await waitForPing(topo, ep.serverAddr, 30_000);
        const ping = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '3', '-i', '0.1', '-W', '2', '-I', ep.clientAddr, ep.serverAddr], { check: false });
        t.is(ping.code, 0, `${subject.name}: ${ping.stdout}`);
        const veth = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '1', '-W', '1', topo.addr.vpc2], { check: false });
        t.not(veth.code, 0, `${subject.name}: the hub must not forward vpc1 → vpc2 outside the tunnel`);
        t.true((ep.pids?.() ?? []).every((pid) => pidAlive(pid)));
        t.regex(await subject.describe(), new RegExp(subject.name));
      } finally {
        await subject.teardown();
      }
    }
  } finally {
    await topo.destroy();
  }
  t.deepEqual((await listNamespaces()).filter((n) => n.startsWith(p2)), []);
});
