/**
 * `isthmus agent --tun-offload=false`: the plain TUN (no IFF_VNET_HDR, no TSO), as before the
 * offloads, still carries the overlay; `isthmus status` and the kernel both say offloads are off.
 * (With the default, overlay-relay.test.ts checks they are on and used.)
 *
 *   vpc1: a1 100.64.0.1 ──► hub: relay ──► vpc2: s1 100.64.0.2
 */
import anyTest, { type TestFn } from 'ava';
import { join } from 'node:path';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { startStaticOverlay, cliPath, type StaticOverlay } from '../../testbed';
import { forRoot } from '../harness/root';

const test = anyTest as TestFn<{ topo: Topology; overlay: StaticOverlay }>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping', 'ethtool'] });
const FIX = join(__dirname, 'fixtures');

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itof') });
  t.context.topo = topo;
  t.context.overlay = await startStaticOverlay(topo, { agentArgs: ['--tun-offload=false'] });
});
test.after.always(async (t) => {
  await t.context.overlay?.stop();
  await t.context.topo?.destroy();
});

rootTest('--tun-offload=false: a plain TUN (status and ethtool agree) carries a TCP transfer intact', async (t) => {
  const { topo, overlay } = t.context;
  await topo.exec(topo.ns.vpc1, 'ping', ['-c', '3', '-i', '0.2', '-w', '10', overlay.s1.vip]);
  const sink = topo.spawn(topo.ns.vpc2, process.execPath, [join(FIX, 'tcp-sink.js'), overlay.s1.vip, '9000'], { name: 'tcp-sink' });
  await sink.waitForLine(/listening/);
  const source = await topo.exec(topo.ns.vpc1, process.execPath, [join(FIX, 'tcp-source.js'), overlay.s1.vip, '9000', String(64 * 2 ** 20)], { timeoutMs: 120_000 });
  const sent = JSON.parse(source.stdout.trim()) as { bytes: number; sha256: string };
  const received = JSON.parse(await sink.waitForLine(/sha256/, 30_000)) as { bytes: number; sha256: string };
  t.is(received.bytes, 64 * 2 ** 20);
  t.is(received.sha256, sent.sha256);
  for (const [ns, m] of [[topo.ns.vpc1, 'a1'], [topo.ns.vpc2, 's1']] as const) {
    const status = JSON.parse((await topo.exec(ns, process.execPath, [cliPath(), 'status', '--json', '--state-dir', join(overlay.dir, `state-${m}`)])).stdout) as
      { tun: string; tunOffload: { on: boolean; superPacketsRead?: number } };
    t.deepEqual(status.tunOffload, { on: false }, m);
    const k = (await topo.exec(ns, 'ethtool', ['-k', status.tun])).stdout;
    t.regex(k, /^\s*tx-tcp-segmentation: off/m, `${m}: the kernel sees no TSO`);
  }
});
