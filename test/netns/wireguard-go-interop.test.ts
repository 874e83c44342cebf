/**
 * Our session protocol against a stock wireguard-go (Debian), on real TUN devices:
 *
 *   <p>-vpc1: isthmus agent  10.99.1.2   eth0 10.91.1.2:51820
 *               ║ direct UDP, no relay
 *   <p>-hub:  wireguard-go   10.99.1.1   to-vpc1 10.91.1.1:51820
 *
 * Handshake both ways (we initiate, then wireguard-go initiates), ping, TCP in both
 * directions, and a real rekey: our agent runs with REKEY_AFTER_TIME shortened to 3 s.
 */
import anyTest, { type TestFn } from 'ava';
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { startWireguardGo, wgGenKey, type WireguardGo } from '../harness/wireguard-go';
import { sleep, type ManagedProcess } from '../harness/procs';
import { cliPath } from '../../testbed';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64 } from '../../protocol/keys';
import { forRoot } from '../harness/root';

interface Ctx { topo: Topology; wg: WireguardGo; agent: ManagedProcess; agentPub: string; dir: string }
const test = anyTest as TestFn<Ctx>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping', 'wireguard-go', 'wg'] });
const FIX = join(__dirname, 'fixtures');
const OURS = '10.99.1.2';
const THEIRS = '10.99.1.1';

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itwg') });
  t.context.topo = topo;
  t.context.dir = mkdtempSync(join(tmpdir(), 'itwg-'));
  const priv = generatePrivateKey();
  t.context.agentPub = keyToBase64(publicKeyFromPrivate(priv));
  const wg = await startWireguardGo(topo, {
    ns: topo.ns.hub, ifname: `${topo.prefix}wg`, privateKey: await wgGenKey(), listenPort: 51820, address: `${THEIRS}/24`,
    peers: [{ publicKey: t.context.agentPub, allowedIps: [`${OURS}/32`] }],
  });
  t.context.wg = wg;
  const conf = join(t.context.dir, 'agent.conf');
  writeFileSync(conf, [
    '[Interface]', `PrivateKey = ${keyToBase64(priv)}`, `Address = ${OURS}/24`, 'ListenPort = 51820',
    '[Peer]', `PublicKey = ${wg.publicKey}`, `AllowedIPs = ${THEIRS}/32`, `Endpoint = ${topo.addr.hubVpc1}:51820`, '',
  ].join('\n'), { mode: 0o600 });
  t.context.agent = topo.spawn(topo.ns.vpc1, process.execPath, [cliPath(), 'agent', '--peers', conf, '--rekey-after-time', '3s', '--state-dir', join(t.context.dir, 'state')],
    { name: 'isthmus-agent', env: { ...process.env, ISTHMUS_LOG_LEVEL: 'info' } });
  await t.context.agent.waitForLine(/agent started/, 15_000);
});
test.after.always(async (t) => {
  await t.context.agent?.stop();
  await t.context.wg?.stop();
  await t.context.topo?.destroy();
  if (t.context.dir) rmSync(t.context.dir, { recursive: true, force: true });
});

rootTest('we initiate: handshake with wireguard-go and ping both ways', async (t) => {
  const { topo, wg } = t.context;
  const r = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '5', '-i', '0.2', '-w', '10', THEIRS], { check: false });
  t.regex(r.stdout, /[1-9] received/, r.stdout);
  const back = await topo.exec(topo.ns.hub, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', OURS]);
  t.regex(back.stdout, /3 received/);
  const [peer] = await wg.peers();
  t.true(peer.latestHandshake > 0);
  t.is(peer.endpoint, `${topo.addr.vpc1}:51820`);
});

for (const [dir, fromNs, toAddr] of [['isthmus → wireguard-go', 'vpc1', THEIRS], ['wireguard-go → isthmus', 'hub', OURS]] as const) {
  rootTest(`TCP ${dir}: 64 MiB with matching SHA-256`, async (t) => {
    const { topo } = t.context;
    const toNs = fromNs === 'vpc1' ? topo.ns.hub : topo.ns.vpc1;
    const port = fromNs === 'vpc1' ? '9100' : '9101';
    const sink = topo.spawn(toNs, process.execPath, [join(FIX, 'tcp-sink.js'), toAddr, port], { name: 'tcp-sink' });
    await sink.waitForLine(/listening/);
    const src = await topo.exec(topo.ns[fromNs], process.execPath, [join(FIX, 'tcp-source.js'), toAddr, port, String(64 * 2 ** 20)], { timeoutMs: 120_000 });
    const sent = JSON.parse(src.stdout.trim()) as { sha256: string };
    const got = JSON.parse(await sink.waitForLine(/sha256/, 30_000)) as { bytes: number; sha256: string };
    t.is(got.bytes, 64 * 2 ** 20);
    t.is(got.sha256, sent.sha256);
  });
}

rootTest('rekey: after REKEY_AFTER_TIME our agent starts a new handshake and traffic keeps flowing', async (t) => {
  const { topo, wg, agent } = t.context;
  const before = (await wg.peers())[0].latestHandshake;
  // Traffic for ~8 s: with REKEY_AFTER_TIME = 3 s at least two new handshakes must happen.
  const r = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '40', '-i', '0.2', THEIRS], { timeoutMs: 30_000, check: false });
  const received = Number(/(\d+) received/.exec(r.stdout)?.[1]);
  t.true(received >= 38, `only ${received}/40 pings answered across rekeys`);
  const after = (await wg.peers())[0].latestHandshake;
  t.true(after > before, `wireguard-go saw no new handshake (${before} → ${after})`);
  process.kill(agent.pid, 'SIGUSR1');
  const line = await agent.waitForLine(/"handshakes":([3-9]|\d\d)/, 5000);
  t.truthy(line);
});

rootTest('wireguard-go initiates: our responder path', async (t) => {
  const { topo, wg, agentPub } = t.context;
  // Make wireguard-go forget the session and know our endpoint, so it must initiate.
  await wg.removePeer(agentPub);
  await wg.setPeer({ publicKey: agentPub, allowedIps: [`${OURS}/32`], endpoint: `${topo.addr.vpc1}:51820` });
  await sleep(100);
  const r = await topo.exec(topo.ns.hub, 'ping', ['-c', '5', '-i', '0.2', '-w', '10', OURS], { check: false });
  t.regex(r.stdout, /[1-9] received/, r.stdout);
  t.true((await wg.peers())[0].latestHandshake > 0);
});
