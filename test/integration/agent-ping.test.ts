/**
 * `isthmus ping`'s agent side (node-agent/ping.ts) on the in-process testnet: real relays and
 * real Agents on memory TUNs and UDP. Each failure reason is produced by the condition it
 * names, next to a probe that succeeds in the same setup. (test/netns/ping.test.ts runs the
 * same through the CLI, real namespaces, the coordinator and Redis.)
 */
import test from 'ava';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestnet, waitFor, type Testnet } from '../harness/testnet';
import type { PingRequest, ProbeResult } from '../../node-agent/ping';
import { PROBE_REPLIES_PER_SECOND } from '../../node-agent/ping';
import { spawnOwned } from '../harness/procs';

async function ping(net: Testnet, from: string, target: string, o: Partial<PingRequest> = {}): Promise<{ ok: boolean; probes: ProbeResult[] }> {
  const probes: ProbeResult[] = [];
  const ok = await net.agent(from).agent.ping({ target, count: 1, timeoutMs: 1000, intervalMs: 0, ...o }, (r) => probes.push(r));
  return { ok, probes };
}

/** Ping until answered (the first probe waits for a handshake). */
async function pingOk(net: Testnet, from: string, target: string): Promise<ProbeResult> {
  let last: ProbeResult | undefined;
  for (let i = 0; i < 10; i++) {
    const r = await ping(net, from, target);
    last = r.probes[0];
    if (r.ok) return last;
  }
  throw new Error(`${from} → ${target}: ${JSON.stringify(last)}`);
}

test('two relays: the path names both relays and the mesh hop, or the one shared relay', async (t) => {
  const net = await startTestnet({ agents: ['a', 'b', 'c'], relays: 2 });
  t.teardown(() => net.stop());
  await net.ready();
  const home = (n: string) => net.homeOf(n)!.id;
  t.not(home('a'), home('b'), 'a and b on different relays (round-robin)');
  t.is(home('a'), home('c'), 'a and c on one');
  const across = await pingOk(net, 'a', net.agent('b').vip);
  t.like(across, { ok: true, path: { kind: 'relay', relayId: home('a'), peerRelayId: home('b'), meshHop: true }, allowed: '*' });
  t.true(across.rttMs! >= 0 && across.rttMs! < 1000);
  const same = await pingOk(net, 'a', net.agent('c').vip);
  t.like(same, { ok: true, path: { relayId: home('a'), peerRelayId: home('a'), meshHop: false } });
  const three = await ping(net, 'a', net.agent('c').vip, { count: 3 });
  t.true(three.ok);
  t.deepEqual(three.probes.map((p) => p.seq), [1, 2, 3]);
  // A probe is answered by the agent: nothing reaches the peer's TUN, nothing is dropped there.
  t.is(net.agent('c').agent.device.drops.policy, 0);
});

test('policy: the peer allows us nothing → reason policy (path and RTT still shown); the other direction succeeds', async (t) => {
  const net = await startTestnet({ agents: ['a', 'b'] });
  t.teardown(() => net.stop());
  await net.ready();
  net.setInbound('b', 'a', []); // at b: a may open nothing
  net.setInbound('a', 'b', ['icmp']); // at a: b may ping
  const allowed = await pingOk(net, 'b', net.agent('a').vip);
  t.like(allowed, { ok: true, allowed: 'icmp' }, 'positive control: b → a');
  const r = await ping(net, 'a', net.agent('b').vip);
  t.false(r.ok);
  t.like(r.probes[0], { ok: false, reason: 'policy', allowed: 'none', path: { kind: 'relay', meshHop: false } });
  t.true(typeof r.probes[0].rttMs === 'number');
  t.regex(r.probes[0].message!, /^policy: this member may not open flows to 100\.64\.0\.2/);
});

test('unknown target, relay down, no session, peer offline', async (t) => {
  const net = await startTestnet({ agents: ['a', 'b', 'c'] });
  t.teardown(() => net.stop());
  await net.ready();
  t.like(await pingOk(net, 'a', net.agent('b').vip), { ok: true }, 'positive control');

  const unknown = await ping(net, 'a', '100.64.0.99');
  t.like(unknown.probes[0], { ok: false, reason: 'unknown-target' });
  t.regex(unknown.probes[0].message!, /not in this member's peer map/);
  t.like((await ping(net, 'a', 'no-such-host')).probes[0], { reason: 'unknown-target' });
  t.like((await ping(net, 'a', net.agent('a').vip)).probes[0], { reason: 'unknown-target', message: `${net.agent('a').vip} is this member (${net.agent('a').vip})` });

  // c does not know a: a's handshake initiations are dropped there, no session ever forms.
  net.agent('c').agent.removePeer(net.agent('a').publicKey);
  const noSession = await ping(net, 'a', net.agent('c').vip, { timeoutMs: 500 });
  t.like(noSession.probes[0], { ok: false, reason: 'no-session' });
  t.regex(noSession.probes[0].message!, /^no session: the handshake with 100\.64\.0\.3 did not complete/);

  // b's agent stops: the relay drops its session and answers our DATA with UNREACHABLE.
  await net.agent('b').agent.stop();
  await waitFor(() => net.homeOf('b') === undefined || !net.relays[0].relay.sessions().some((s) => s.vip === net.agent('b').vip), { timeoutMs: 10_000, what: 'b unbound' });
  const offline = await ping(net, 'a', net.agent('b').vip, { timeoutMs: 800 });
  t.like(offline.probes[0], { ok: false, reason: 'peer-offline' });
  t.regex(offline.probes[0].message!, /^peer offline: /);

  // The only relay goes down: once a notices, probes fail at once with the relay named.
  net.killRelay(net.relays[0]);
  await waitFor(() => (net.agent('a').agent.status() as { relay: { ready: boolean } }).relay.ready === false, { timeoutMs: 10_000, what: 'a notices' });
  const down = await ping(net, 'a', net.agent('c').vip);
  t.like(down.probes[0], { ok: false, reason: 'relay-down' });
  t.regex(down.probes[0].message!, /^relay down: not authenticated to relay 10\.90\.0\.1:7000/);
});

test('probe answers are rate-limited: a burst gets at most PROBE_REPLIES_PER_SECOND answers', async (t) => {
  const net = await startTestnet({ agents: ['a', 'b'] });
  t.teardown(() => net.stop());
  await net.ready();
  await pingOk(net, 'a', net.agent('b').vip);
  await new Promise((r) => setTimeout(r, 1100)); // a fresh one-second window at b
  const vip = net.agent('a').agent.peers.get(net.agent('b').publicKey)!.allowedIps[0].addr;
  const answers = await Promise.all(Array.from({ length: PROBE_REPLIES_PER_SECOND + 50 }, () => net.agent('a').agent.prober.probe(vip, 800)));
  const answered = answers.filter(Boolean).length;
  t.true(answered > 0, 'some answered');
  t.true(answered <= PROBE_REPLIES_PER_SECOND, `${answered} answered`);
});

test('the CLI names bad flags (exit 2) and says when no agent answers (exit 1)', async (t) => {
  const cli = (args: string[]) => new Promise<{ code: number | null; err: string }>((resolve) => {
    const child = spawnOwned(process.execPath, [join(__dirname, '..', '..', 'dist', 'cli', 'main.js'), 'ping', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += String(d); });
    child.once('close', (code) => resolve({ code, err }));
  });
  for (const [args, re] of [
    [['x', '--count', '0'], /--count must be a whole number from 1 to 1000/],
    [['x', '-c', '2.5'], /--count must be a whole number/],
    [['x', '--timeout', 'soon'], /--timeout: not a duration/],
    [['x', '--timeout', '5m'], /--timeout must be between 10 ms and 60 s/],
    [['x', '--interval', '2x'], /--interval: not a duration/],
  ] as const) {
    const r = await cli([...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.err, re);
  }
  const none = await cli(['100.64.0.2', '--socket', join(tmpdir(), `isthmus-no-agent-${process.pid}.sock`)]);
  t.is(none.code, 1);
  t.regex(none.err, /no agent is running with control socket/);
});
