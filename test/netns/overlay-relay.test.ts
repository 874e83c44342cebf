/**
 * The data path on real TUN devices in real namespaces: members a1 (vpc1) and s1 (vpc2)
 * reach each other only through the relay on the hub's VIP.
 *
 *   vpc1: a1 100.64.0.1 ──► hub: relay 10.90.0.1:7000 ──► vpc2: s1 100.64.0.2
 */
import anyTest, { type TestFn } from 'ava';
import { join } from 'node:path';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { startStaticOverlay, cliPath, type StaticOverlay } from '../../testbed';
import { forRoot } from '../harness/root';

const test = anyTest as TestFn<{ topo: Topology; overlay: StaticOverlay }>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping'] });
const FIX = join(__dirname, 'fixtures');

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itov') });
  t.context.topo = topo;
  t.context.overlay = await startStaticOverlay(topo, { logLevel: 'info' });
});
test.after.always(async (t) => {
  await t.context.overlay?.stop();
  await t.context.topo?.destroy();
});

rootTest('the VPCs cannot reach each other directly', async (t) => {
  const { topo } = t.context;
  const r = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '1', '-W', '1', topo.addr.vpc2], { check: false });
  t.not(r.code, 0);
});

rootTest('ping both ways through the relay', async (t) => {
  const { topo, overlay } = t.context;
  // The first packet triggers the handshake; allow a few seconds for it.
  const first = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '10', '-i', '0.3', '-w', '10', overlay.s1.vip], { check: false });
  t.regex(first.stdout, / 0% packet loss|[1-9] received/);
  const back = await topo.exec(topo.ns.vpc2, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', overlay.a1.vip]);
  t.regex(back.stdout, /3 received/);
});

rootTest('a 1 GiB TCP transfer arrives intact (SHA-256 at both ends)', async (t) => {
  const { topo, overlay } = t.context;
  const sink = topo.spawn(topo.ns.vpc2, process.execPath, [join(FIX, 'tcp-sink.js'), overlay.s1.vip, '9000'], { name: 'tcp-sink' });
  await sink.waitForLine(/listening/);
  const source = await topo.exec(topo.ns.vpc1, process.execPath, [join(FIX, 'tcp-source.js'), overlay.s1.vip, '9000', String(2 ** 30)], { timeoutMs: 240_000 });
  const sent = JSON.parse(source.stdout.trim()) as { bytes: number; sha256: string };
  const line = await sink.waitForLine(/sha256/, 30_000);
  const received = JSON.parse(line) as { bytes: number; sha256: string };
  t.is(received.bytes, 2 ** 30);
  t.is(received.sha256, sent.sha256);
  // With TUN offloads (the default) the sender's kernel handed over TCP super-packets and the
  // receiver wrote coalesced ones; nothing was dropped as malformed.
  type Offload = { on: boolean; superPacketsRead: number; superPacketsWritten: number; malformed: number };
  const offload = async (ns: string, m: string) => (JSON.parse((await topo.exec(ns, process.execPath,
    [cliPath(), 'status', '--json', '--state-dir', join(overlay.dir, `state-${m}`)])).stdout) as { tunOffload: Offload }).tunOffload;
  const [a1, s1] = [await offload(topo.ns.vpc1, 'a1'), await offload(topo.ns.vpc2, 's1')];
  t.true(a1.on && s1.on);
  t.true(a1.superPacketsRead > 0, JSON.stringify(a1));
  t.true(s1.superPacketsWritten > 0, JSON.stringify(s1));
  t.is(a1.malformed + s1.malformed, 0);
});

rootTest('UDP datagrams cross both ways', async (t) => {
  const { topo, overlay } = t.context;
  // Session up first: during a handshake only 128 packets are held (then the oldest drop).
  await topo.exec(topo.ns.vpc1, 'ping', ['-c', '1', '-w', '10', overlay.s1.vip]);
  const echo = topo.spawn(topo.ns.vpc2, process.execPath, [join(FIX, 'udp-echo.js'), overlay.s1.vip, '9001'], { name: 'udp-echo' });
  await echo.waitForLine(/listening/);
  const r = await topo.exec(topo.ns.vpc1, process.execPath, [join(FIX, 'udp-probe.js'), overlay.s1.vip, '9001', '200', '1200']);
  const { sent, echoed } = JSON.parse(r.stdout.trim()) as { sent: number; echoed: number };
  t.is(sent, 200);
  // UDP may lose a datagram on a loaded 2-core machine; nearly all must arrive.
  t.true(echoed >= 190, `echoed ${echoed} of ${sent}`);
  await echo.stop();
});

rootTest('a packet whose inner source the peer does not own is dropped and counted', async (t) => {
  const { topo, overlay } = t.context;
  // s1 puts a second address on its TUN and sends from it: s1's session is genuine, but
  // a1 only lets s1 speak for 100.64.0.2/32 (cryptokey routing).
  const tun = (await topo.exec(topo.ns.vpc2, 'ip', ['-o', 'link', 'show', 'type', 'tun'])).stdout.split(': ')[1];
  await topo.exec(topo.ns.vpc2, 'ip', ['addr', 'add', '100.64.0.99/32', 'dev', tun]);
  const r = await topo.exec(topo.ns.vpc2, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', '-I', '100.64.0.99', overlay.a1.vip], { check: false });
  t.regex(r.stdout, /0 received/);
  const a1 = overlay.a1.process!;
  process.kill(a1.pid, 'SIGUSR1');
  const status = await a1.waitForLine(/"source-not-allowed":[1-9]/, 5000);
  t.truthy(status);
});

rootTest('`isthmus status` shows the relay session, the peer, its handshake and traffic', async (t) => {
  const { topo, overlay } = t.context;
  const r = await topo.exec(topo.ns.vpc1, process.execPath, [cliPath(), 'status', '--state-dir', join(overlay.dir, 'state-a1')]);
  t.regex(r.stdout, /^member 100\.64\.0\.1 /m);
  t.regex(r.stdout, /authenticated/);
  t.regex(r.stdout, /^\S+…\s+100\.64\.0\.2\s+-\s+relay\s+.* ago .*  \*$/m, 'static peer without Inbound: may open anything');
  t.regex(r.stdout, /^inbound filter: policy 0, not-our-address \d+; own addresses 100\.64\.0\.1; reply flows \d+\/65536$/m);
  const json = JSON.parse((await topo.exec(topo.ns.vpc1, process.execPath, [cliPath(), 'status', '--json', '--state-dir', join(overlay.dir, 'state-a1')])).stdout) as { peers: { txBytes: number }[] };
  t.true(json.peers[0].txBytes > 2 ** 30);
  const none = await topo.exec(topo.ns.vpc1, process.execPath, [cliPath(), 'status', '--state-dir', join(overlay.dir, 'nope')], { check: false });
  t.is(none.code, 1);
  t.regex(none.stderr, /no agent is running/);
});
