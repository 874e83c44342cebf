/**
 * `isthmus ping` and `isthmus status` on real namespaces (issue 14.3, 14.4): the whole service
 * behind one VIP, two relays meshed through Redis, members pinned to a relay each by giving
 * that relay's own address as --relay, so the paths are known:
 *
 *   vpc1  a1 (tag:agent)       ─► r1 10.93.1.2:7000 ─┐
 *                                                      ├─ mesh (Redis: coordinators, sessions)
 *   vpc2  s1 (tag:controller)  ─► r2 10.93.2.2:7000 ─┤
 *   m1    a2 (tag:agent)       ─► r2 10.93.2.2:7000 ─┘
 *
 *   policy: controller → agent on icmp and tcp/8000; agents reach no one.
 *
 * s1 → a2: one relay; s1 → a1: one mesh hop (r2 → r1); a1 → s1: the policy reason, while s1 →
 * a1 succeeds in the same setup; a2 killed: "peer offline" after a successful ping to it.
 */
import anyTest, { type TestFn } from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { addMemberNamespace, cliPath, startJoinedOverlay, type JoinedMember, type JoinedOverlay, type MemberNamespace } from '../../testbed';
import type { RunResult } from '../harness/procs';
import { forRoot } from '../harness/root';
import type { ProbeResult } from '../../node-agent';
import type { AgentStatus } from '../../cli/status-format';

interface Ctx {
  topo: Topology;
  overlay: JoinedOverlay;
  extra: MemberNamespace[];
  a1: JoinedMember;
  a2: JoinedMember;
  s1: JoinedMember;
}
const test = anyTest as TestFn<Ctx>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'redis-server', 'redis-cli'] });

const POLICY = { rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: ['tcp/8000', 'icmp'] }] };
const RELAY_PORT = 7000;

/** `isthmus ping <args…>` against member m's agent (from its namespace, as root there). */
function ping(c: Ctx, m: JoinedMember, args: string[]): Promise<RunResult> {
  return c.topo.exec(m.ns, process.execPath, [cliPath(), 'ping', ...args, '--state-dir', m.stateDir], { check: false, timeoutMs: 60_000 });
}

/** `--json` output: the probe lines and the final verdict. */
function parseJson(r: RunResult): { probes: ProbeResult[]; done: { ok: boolean } | undefined } {
  const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as ProbeResult | { type: 'done'; ok: boolean });
  return { probes: lines.filter((l): l is ProbeResult => l.type === 'probe'), done: lines.find((l) => l.type === 'done') as { ok: boolean } | undefined };
}

/** Ping until one probe answers (the first needs a handshake), at most `tries` runs. */
async function pingUntilOk(c: Ctx, m: JoinedMember, target: string, tries = 10): Promise<RunResult> {
  let r: RunResult | undefined;
  for (let i = 0; i < tries; i++) {
    r = await ping(c, m, [target, '-c', '1', '--timeout', '2s', '--json']);
    if (r.code === 0) return r;
  }
  return r!;
}

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itpg'), relays: 2 });
  t.context.topo = topo;
  t.context.extra = [await addMemberNamespace(topo, 1)];
  const overlay = await startJoinedOverlay(topo, { cluster: true });
  t.context.overlay = overlay;
  const agents = await overlay.createToken(['--tag', 'agent']);
  const controllers = await overlay.createToken(['--tag', 'controller']);
  const relay = (i: number) => `${topo.addr.relays[i - 1]}:${RELAY_PORT}`;
  // Members reach the relays' own addresses through the hub (the hub forwards vpc ↔ relay).
  for (const [ns, hub] of [[topo.ns.vpc1, topo.addr.hubVpc1], [topo.ns.vpc2, topo.addr.hubVpc2], [t.context.extra[0].ns, '10.95.1.1']]) {
    await topo.exec(ns, 'ip', ['route', 'replace', '10.93.0.0/16', 'via', hub]);
  }
  t.context.a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token: agents, relay: relay(1) });
  t.context.s1 = await overlay.join('s1', topo.ns.vpc2, topo.addr.vpc2, { token: controllers, relay: relay(2) });
  t.context.a2 = await overlay.join('a2', t.context.extra[0].ns, t.context.extra[0].addr, { token: agents, relay: relay(2) });
  const file = join(overlay.dir, 'policy.json');
  writeFileSync(file, JSON.stringify(POLICY));
  const r = await overlay.admin(['policy', 'set', file]);
  if (r.code !== 0) throw new Error(`policy set: ${r.stderr}`);
});
test.after.always(async (t) => {
  await t.context.overlay?.stop();
  for (const m of t.context.extra ?? []) await m.remove();
  await t.context.topo?.destroy();
});

rootTest('ping through one relay: the relay, no mesh hop, an RTT per probe', async (t) => {
  const { s1, a2, topo } = t.context;
  const first = await pingUntilOk(t.context, s1, 'a2');
  t.is(first.code, 0, first.stdout + first.stderr);
  const r = await ping(t.context, s1, [a2.vip, '-c', '3', '--interval', '200ms', '--json']);
  t.is(r.code, 0, r.stderr);
  const { probes, done } = parseJson(r);
  t.is(probes.length, 3);
  t.deepEqual(done, { type: 'done', ok: true });
  for (const p of probes) {
    t.true(p.ok, JSON.stringify(p));
    t.is(p.peer.hostname, 'a2');
    t.like(p.path, { kind: 'relay', address: `${topo.addr.relays[1]}:${RELAY_PORT}`, relayId: 'r2', peerRelayId: 'r2', meshHop: false });
    t.true(typeof p.rttMs === 'number' && p.rttMs >= 0 && p.rttMs < 2000, `rtt ${p.rttMs}`);
    t.is(p.allowed, 'tcp/8000,icmp', 'what s1 may open towards a2, by a2\'s own filter');
  }
  const human = await ping(t.context, s1, ['a2', '-c', '1']);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, /^pong from a2 \(100\.\d+\.\d+\.\d+\) via relay r2 at 10\.93\.2\.2:7000 \(same relay\) in \d+\.\d\d ms$/m);
  t.log(human.stdout.trim());
});

rootTest('ping across the relay mesh reports the hop; hostname, original IP and virtual IP all name the peer', async (t) => {
  const { s1, a1, topo } = t.context;
  const first = await pingUntilOk(t.context, s1, a1.vip);
  t.is(first.code, 0, first.stdout + first.stderr);
  for (const target of ['a1', a1.originalIp, a1.vip]) {
    const r = await ping(t.context, s1, [target, '-c', '1', '--json']);
    t.is(r.code, 0, `${target}: ${r.stdout}${r.stderr}`);
    const [p] = parseJson(r).probes;
    t.like(p, { ok: true, peer: { vip: a1.vip, hostname: 'a1' } });
    t.like(p.path, { kind: 'relay', address: `${topo.addr.relays[1]}:${RELAY_PORT}`, relayId: 'r2', peerRelayId: 'r1', meshHop: true });
  }
  const human = await ping(t.context, s1, ['a1', '-c', '2', '--interval', '100ms']);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, /^pong from a1 \(\S+\) via relay r2 at 10\.93\.2\.2:7000 → mesh → relay r1 in \d+\.\d\d ms$/m);
  t.log(human.stdout.trim());
});

rootTest('policy: an agent pinging the controller gets the policy reason and a non-zero exit, the controller\'s ping succeeds', async (t) => {
  const { s1, a1 } = t.context;
  const allowed = await pingUntilOk(t.context, s1, 'a1');
  t.is(allowed.code, 0, 'positive control: s1 → a1');
  // a1 has s1 in its map (s1's flows' replies come back through it) but may open nothing to it.
  const r = await ping(t.context, a1, ['s1', '-c', '1']);
  t.is(r.code, 1, r.stdout);
  t.regex(r.stdout, /but policy: a1 \(tag:agent\) may not open flows to s1 \(tag:controller\)/);
  t.regex(r.stderr, /ping s1 failed: policy: a1 \(tag:agent\) may not open flows to s1/);
  const j = parseJson(await ping(t.context, a1, [t.context.s1.vip, '-c', '1', '--json']));
  t.like(j.probes[0], { ok: false, reason: 'policy', allowed: 'none', path: { meshHop: true, relayId: 'r1', peerRelayId: 'r2' } });
  t.deepEqual(j.done, { type: 'done', ok: false });
  // Agents are not connected at all: not in each other's maps.
  const unknown = await ping(t.context, a1, ['a2', '-c', '1', '--json']);
  t.is(unknown.code, 1);
  t.like(parseJson(unknown).probes[0], { ok: false, reason: 'unknown-target' });
  t.regex(parseJson(unknown).probes[0].message!, /not in this member's peer map/);
  const nobody = await ping(t.context, s1, ['10.200.0.9', '-c', '1']);
  t.is(nobody.code, 1);
  t.regex(nobody.stdout, /10\.200\.0\.9: not in this member's peer map/);
});

rootTest('`isthmus status --json`: peers with hostname and original IP, the relay, the coordinator connection, the peer-map version', async (t) => {
  const { s1, a1, a2, topo } = t.context;
  const r = await topo.exec(s1.ns, process.execPath, [cliPath(), 'status', '--json', '--state-dir', s1.stateDir]);
  const s = JSON.parse(r.stdout) as AgentStatus;
  t.is(s.vip, s1.vip);
  t.like(s.relay, { address: `${topo.addr.relays[1]}:${RELAY_PORT}`, relayId: 'r2', ready: true });
  t.like(s.coordinator, { url: t.context.overlay.coordinatorUrl, connected: true });
  t.true(s.coordinator!.lastContactWallMs > Date.now() - 120_000, 'a recent answer');
  t.true(Number.isInteger(s.peerMap?.version) && s.peerMap!.version! > 0, `version ${s.peerMap?.version}`);
  t.is(s.peerMap?.entries, 3, 's1 itself, a1, a2');
  // The signed membership record it keeps (checked on receipt against the pinned key): its expiry, nothing refused.
  t.true(s.record!.expiresWallMs! > Date.now() && s.record!.expiresWallMs! > s.record!.issuedWallMs!, `record ${JSON.stringify(s.record)}`);
  t.like(s.record, { refused: 0 });
  for (const m of [a1, a2]) {
    const p = s.peers.find((x) => x.vip === m.vip);
    t.like(p, { hostname: m.name, originalIp: m.originalIp, tags: ['agent'], inbound: 'none' });
    t.true(p!.lastHandshakeWallMs > 0, 'pinged before: a session');
  }
  const human = await topo.exec(s1.ns, process.execPath, [cliPath(), 'status', '--state-dir', s1.stateDir]);
  t.regex(human.stdout, /^coordinator https:\/\/\S+  connected \(peer-map long-poll open\), last answer \d+s ago$/m);
  t.regex(human.stdout, /^peer map version \d+, 3 entries/m);
  t.regex(human.stdout, /^membership record expires \d{4}-\d\d-\d\dT\S+Z \(in \d+[smhd]\)$/m);
  t.regex(human.stdout, new RegExp(`^a1\\s+${a1.vip.replace(/\./g, '\\.')}\\s+${a1.originalIp.replace(/\./g, '\\.')}\\s+relay\\s`, 'm'));
  for (const line of human.stdout.split('\n')) t.true(line.length <= 120, line);
  t.log(human.stdout);
});

rootTest('a peer whose agent was killed: "peer offline" and a non-zero exit', async (t) => {
  const { s1, a2 } = t.context;
  const before = await pingUntilOk(t.context, s1, 'a2');
  t.is(before.code, 0, 'positive control: a2 answers while its agent runs');
  process.kill(a2.process.pid, 'SIGKILL'); // no goodbye: its relay session stays until it expires
  await a2.process.waitForExit(5000);
  const r = await ping(t.context, s1, ['a2', '-c', '2', '--timeout', '1s', '--interval', '100ms', '--json']);
  t.is(r.code, 1);
  const { probes, done } = parseJson(r);
  t.is(probes.length, 2);
  for (const p of probes) t.like(p, { ok: false, reason: 'peer-offline' });
  t.regex(probes[0].message!, /^peer offline: /);
  t.log(probes[0].message);
  t.deepEqual(done, { type: 'done', ok: false });
  const human = await ping(t.context, s1, ['a2', '-c', '1', '--timeout', '1s']);
  t.is(human.code, 1);
  t.regex(human.stderr, /ping a2 failed: peer offline/);
});
