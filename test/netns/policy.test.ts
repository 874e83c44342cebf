/**
 * The access policy (issue 10) on real namespaces, the whole service behind one VIP: two
 * coordinators and two relays (cluster mode), members in separate VPC namespaces that join
 * with tagged tokens. The mission's policy: controllers reach agents, agents reach no one.
 *
 *   vpc1  a1 (tag:agent)                        ─┐                      ┌─ r1 · coordinator1
 *   m1    a2 (tag:agent)                        ─┤                      │
 *   vpc2  s1 (tag:controller)                   ─┼─ hub: VIP 10.90.0.1 ─┤
 *   m2    a3 (tag:agent; goes quiet, removed)   ─┤   redis              └─ r2 · coordinator2
 *   m3    an attacker, then an honest agent     ─┘
 *
 *   policy: { "rules": [ { "from": ["tag:controller"], "to": ["tag:agent"], "ports": ["tcp/8000", "icmp"] } ] }
 *
 * Every member serves HTTP on tcp/8000 (a1 also on tcp/8001, a port no rule opens). Every
 * negative check has its positive control in the same test: the same path working for a
 * member the policy lets use it, or the same server answering locally.
 * The identity takeovers the integration test (test/integration/coordinator-identity.test.ts)
 * tries through the API are tried here too, by real agents in their own VPCs.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { addMemberNamespace, cliPath, startJoinedOverlay, type JoinedMember, type JoinedOverlay, type MemberNamespace } from '../../testbed';
import { run, type RunResult } from '../harness/procs';
import { forRoot } from '../harness/root';

interface Ctx {
  topo: Topology;
  overlay: JoinedOverlay;
  extra: MemberNamespace[];
  agentToken: string;
  a1: JoinedMember;
  a2: JoinedMember;
  s1: JoinedMember;
  /** sha256 of the 256 KiB file every member's HTTP server serves as /blob. */
  blobSha: string;
}
const test = anyTest as TestFn<Ctx>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping', 'curl', 'python3', 'redis-server', 'redis-cli'] });

const HTTP_PORT = 8000;
const CLOSED_PORT = 8001;
const MISSION = { rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: [`tcp/${HTTP_PORT}`, 'icmp'] }] };
const AGENTS_TOO = { rules: [...MISSION.rules, { from: ['tag:agent'], to: ['tag:agent'], ports: [`tcp/${HTTP_PORT}`] }] };
const NO_ICMP = { rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: [`tcp/${HTTP_PORT}`] }] };

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** `isthmus <args…>` as the admin (from vpc1, through the VIP). */
function isthmusAdmin(c: Ctx, args: string[], input?: string): Promise<RunResult> {
  return c.overlay.admin(args, input);
}

let fileSeq = 0;
/** Write `policy` (an object, or raw text) to a file and `isthmus policy set` it; returns the CLI's result and the path. */
async function setPolicy(c: Ctx, policy: object | string): Promise<RunResult & { path: string }> {
  const path = join(c.overlay.dir, `policy-${++fileSeq}.json`);
  writeFileSync(path, typeof policy === 'string' ? policy : JSON.stringify(policy, null, 2) + '\n');
  return { ...(await isthmusAdmin(c, ['policy', 'set', path])), path };
}

async function mustSetPolicy(t: ExecutionContext<Ctx>, policy: object): Promise<void> {
  const r = await setPolicy(t.context, policy);
  if (r.code !== 0) t.fail(`policy set: ${r.stderr}`);
}

async function pingOk(topo: Topology, ns: string, addr: string, count = 2): Promise<boolean> {
  const r = await topo.exec(ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', addr], { check: false });
  return r.code === 0;
}

let blobSeq = 0;
/** A GET of http://addr:port/blob from `ns`: the request goes one way, 256 KiB come back (hashed here). */
async function fetchBlob(c: Ctx, ns: string, addr: string, port = HTTP_PORT): Promise<{ ok: boolean; sha: string; why: string }> {
  const out = join(c.overlay.dir, `got-${++blobSeq}`);
  const r = await c.topo.exec(ns, 'curl', ['-sS', '-o', out, '--connect-timeout', '2', '--max-time', '6', `http://${addr}:${port}/blob`],
    { check: false, timeoutMs: 10_000 });
  if (r.code !== 0) return { ok: false, sha: '', why: `curl ${r.code}: ${r.stderr.trim()}` };
  const sha = createHash('sha256').update(readFileSync(out)).digest('hex');
  rmSync(out, { force: true });
  return { ok: true, sha, why: 'ok' };
}

/** Does a TCP connection to addr:port from `ns` open (and an HTTP answer come back)? Gives up after 2 s. */
async function tcpOpens(topo: Topology, ns: string, addr: string, port = HTTP_PORT): Promise<boolean> {
  const r = await topo.exec(ns, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--connect-timeout', '2', '--max-time', '4',
    `http://${addr}:${port}/`], { check: false, timeoutMs: 10_000 });
  return r.code === 0 && r.stdout === '200';
}

/** Poll `probe` until it gives `want` or `ms` pass; the elapsed time, or undefined when it never did. */
async function within(ms: number, want: boolean, probe: () => Promise<boolean>): Promise<number | undefined> {
  const start = Date.now();
  for (;;) {
    if ((await probe()) === want) return Date.now() - start;
    if (Date.now() - start > ms) return undefined;
    await sleep(100);
  }
}

interface Status { drops: Record<string, number>; peers: { allowedIps: string[] }[] }

/** The agent's status document (`isthmus status --json`, from its control socket). */
async function statusOf(m: JoinedMember): Promise<Status> {
  const r = await run(process.execPath, [cliPath(), 'status', '--state-dir', m.stateDir, '--json']);
  return JSON.parse(r.stdout) as Status;
}

const policyDrops = async (m: JoinedMember) => (await statusOf(m)).drops.policy ?? 0;
const peerVips = async (m: JoinedMember) => (await statusOf(m)).peers.flatMap((p) => p.allowedIps).map((a) => a.replace(/\/32$/, ''));

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itpo'), relays: 2 });
  t.context.topo = topo;
  t.context.extra = [await addMemberNamespace(topo, 1), await addMemberNamespace(topo, 2), await addMemberNamespace(topo, 3)];
  const overlay = await startJoinedOverlay(topo, { cluster: true });
  t.context.overlay = overlay;
  // Tags come from the tokens only.
  t.context.agentToken = await overlay.createToken(['--tag', 'agent']);
  const controllerToken = await overlay.createToken(['--tag', 'controller']);
  t.context.a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token: t.context.agentToken });
  t.context.a2 = await overlay.join('a2', t.context.extra[0].ns, t.context.extra[0].addr, { token: t.context.agentToken });
  t.context.s1 = await overlay.join('s1', topo.ns.vpc2, topo.addr.vpc2, { token: controllerToken });

  const www = join(overlay.dir, 'www');
  mkdirSync(www);
  const blob = randomBytes(256 * 1024);
  writeFileSync(join(www, 'blob'), blob);
  t.context.blobSha = createHash('sha256').update(blob).digest('hex');
  const serve = async (ns: string, port: number) => {
    topo.spawn(ns, 'python3', ['-m', 'http.server', String(port), '--bind', '0.0.0.0', '--directory', www], { name: `http-${port}` });
    await topo.waitForListen(ns, port, 'tcp');
  };
  for (const m of [t.context.a1, t.context.a2, t.context.s1]) await serve(m.ns, HTTP_PORT);
  await serve(t.context.a1.ns, CLOSED_PORT);

  const r = await setPolicy(t.context, MISSION);
  if (r.code !== 0) throw new Error(`policy set: ${r.stderr}`);
});
test.after.always(async (t) => {
  await t.context.overlay?.stop();
  for (const m of t.context.extra ?? []) await m.remove();
  await t.context.topo?.destroy();
});

rootTest('a controller reaches an agent on the allowed ports only; the agent counts the policy drop', async (t) => {
  const { topo, a1, s1 } = t.context;
  t.truthy(await within(10_000, true, () => pingOk(topo, s1.ns, a1.vip, 1)), 'first ping s1 → a1 (handshake)');
  t.true(await pingOk(topo, s1.ns, a1.vip, 3), 'icmp is allowed: s1 pings a1');
  const got = await fetchBlob(t.context, s1.ns, a1.vip);
  t.true(got.ok, got.why);
  t.is(got.sha, t.context.blobSha, 'tcp/8000 is allowed: s1 fetches 256 KiB from a1');
  // tcp/8001 on the same agent: the server answers locally, not through the overlay.
  t.true(await tcpOpens(topo, a1.ns, '127.0.0.1', CLOSED_PORT), 'positive control: a1 serves tcp/8001');
  const before = await policyDrops(a1);
  t.false(await tcpOpens(topo, s1.ns, a1.vip, CLOSED_PORT), 'tcp/8001: no rule opens it');
  const after = await policyDrops(a1);
  t.true(after > before, `a1's policy drops ${before} → ${after}`);
  t.log(`a1 dropped ${after - before} SYN(s) to tcp/${CLOSED_PORT} (drop reason policy)`);
  const shown = await run(process.execPath, [cliPath(), 'status', '--state-dir', a1.stateDir]);
  t.regex(shown.stdout, /^drops: .*\bpolicy [1-9]\d*/m, 'and `isthmus status` shows it');
  t.true(await tcpOpens(topo, s1.ns, a1.vip), 'and tcp/8000 still opens right after');
});

rootTest('an agent cannot reach another agent, while the controller reaches both', async (t) => {
  const { topo, a1, a2, s1 } = t.context;
  for (const a of [a1, a2]) {
    t.truthy(await within(10_000, true, () => pingOk(topo, s1.ns, a.vip, 1)), `s1 pings ${a.name}`);
    t.true(await tcpOpens(topo, s1.ns, a.vip), `s1 opens tcp/8000 on ${a.name}`);
  }
  for (const [from, to] of [[a1, a2], [a2, a1]] as const) {
    t.false(await pingOk(topo, from.ns, to.vip, 2), `${from.name} pings ${to.name}`);
    t.false(await tcpOpens(topo, from.ns, to.vip), `${from.name} opens tcp/8000 on ${to.name}`);
  }
  // The first of the three enforcements: the coordinator never told one agent about the other.
  const s1Peers = await peerVips(s1);
  t.true(s1Peers.includes(a1.vip) && s1Peers.includes(a2.vip), `s1's peers: ${s1Peers.join(', ')}`);
  t.false((await peerVips(a1)).includes(a2.vip), 'a2 is not in a1\'s peer map');
  t.false((await peerVips(a2)).includes(a1.vip), 'a1 is not in a2\'s peer map');
});

rootTest('an agent cannot open a flow to the controller, while the controller\'s connection to it carries data both ways', async (t) => {
  const { topo, a1, s1 } = t.context;
  const got = await fetchBlob(t.context, s1.ns, a1.vip);
  t.true(got.ok, got.why);
  t.is(got.sha, t.context.blobSha, 's1 → a1: request out, 256 KiB back');
  t.true(await tcpOpens(topo, s1.ns, '127.0.0.1'), 'positive control: s1 serves tcp/8000');
  // a1 knows s1 (the replies of s1's flows come back through it) but may open nothing towards it.
  t.true((await peerVips(a1)).includes(s1.vip), 'a1 has s1 in its peer map');
  const before = await policyDrops(s1);
  t.false(await tcpOpens(topo, a1.ns, s1.vip), 'a1 → s1 tcp/8000');
  t.false(await pingOk(topo, a1.ns, s1.vip, 2), 'a1 → s1 ping');
  const after = await policyDrops(s1);
  t.true(after > before, `s1's policy drops ${before} → ${after}`);
  t.true(await tcpOpens(topo, s1.ns, a1.vip), 'the controller\'s flows still open right after');
});

rootTest('`isthmus policy check` names the rule for an allowed pair and none for a denied one', async (t) => {
  const { a1, a2, s1 } = t.context;
  // Members by hostname, virtual IP and original IP.
  const allowed = await isthmusAdmin(t.context, ['policy', 'check', '--from', 's1', '--to', a1.vip, '--port', `tcp/${HTTP_PORT}`]);
  t.is(allowed.code, 0, allowed.stderr);
  t.regex(allowed.stdout, /allowed/);
  t.regex(allowed.stdout, /rule 0/);
  t.regex(allowed.stdout, /tag:controller/);
  const icmp = await isthmusAdmin(t.context, ['policy', 'check', '--from', s1.originalIp, '--to', 'a2', '--port', 'icmp']);
  t.regex(icmp.stdout, /allowed.*rule 0/s);
  for (const [from, to, port] of [['a1', 'a2', `tcp/${HTTP_PORT}`], [a1.originalIp, s1.vip, `tcp/${HTTP_PORT}`], ['s1', 'a1', `tcp/${CLOSED_PORT}`], [a2.vip, 's1', 'icmp']]) {
    const denied = await isthmusAdmin(t.context, ['policy', 'check', '--from', from, '--to', to, '--port', port]);
    t.regex(denied.stdout + denied.stderr, /denied/, `${from} → ${to} ${port}`);
    t.notRegex(denied.stdout + denied.stderr, /rule \d/, `${from} → ${to} ${port} names no rule`);
  }
  const unknown = await isthmusAdmin(t.context, ['policy', 'check', '--from', 'no-such-host', '--to', 'a1', '--port', 'icmp']);
  t.not(unknown.code, 0);
  t.regex(unknown.stderr, /no-such-host/);
});

rootTest('a malformed policy file is refused with its path and line; the old policy still holds', async (t) => {
  const { topo, a1, a2, s1 } = t.context;
  const before = await isthmusAdmin(t.context, ['policy', 'get']);
  t.is(before.code, 0, before.stderr);
  // Line 4: a port no policy can have, in a rule that would also have opened agent → agent.
  const bad = await setPolicy(t.context, [
    '{ "rules": [',
    '  { "from": ["tag:controller"], "to": ["tag:agent"], "ports": ["tcp/8000", "icmp"] },',
    '  { "from": ["tag:agent"], "to": ["tag:agent"],',
    '    "ports": ["tcp/80000"] }',
    '] }',
  ].join('\n'));
  t.not(bad.code, 0);
  // FILE:LINE:COLUMN: the value's path in the document: the reason.
  t.true(bad.stderr.includes(`${bad.path}:4:`), `names the file and line 4: ${bad.stderr}`);
  t.regex(bad.stderr, /rules\[1\]\.ports\[0\].*80000/);
  const unknownField = await setPolicy(t.context, '{ "rules": [ { "from": ["*"], "to": ["*"], "port": ["*"] } ] }\n');
  t.not(unknownField.code, 0);
  t.true(unknownField.stderr.includes(`${unknownField.path}:1:`), unknownField.stderr);
  t.regex(unknownField.stderr, /port/);
  const after = await isthmusAdmin(t.context, ['policy', 'get']);
  t.is(after.stdout, before.stdout, 'policy get shows the old policy');
  t.false(await tcpOpens(topo, a1.ns, a2.vip), 'agents still cannot reach each other');
  t.true(await tcpOpens(topo, s1.ns, a1.vip), 'positive control: the controller still reaches an agent');
  // From stdin too (`policy set -`): the trailing comma on line 2 is found where JSON ends, line 3.
  const stdin = await isthmusAdmin(t.context, ['policy', 'set', '-'], '{ "rules": [\n  { "from": ["tag:controller"], "to": ["tag:agent"], "ports": ["tcp/8000"] },\n] }\n');
  t.not(stdin.code, 0);
  t.regex(stdin.stderr, /<stdin>:3:\d+/);
  t.is((await isthmusAdmin(t.context, ['policy', 'get'])).stdout, before.stdout);
});

rootTest('a policy change takes effect on the live members within seconds, and so does undoing it', async (t) => {
  const { topo, a1, a2, s1 } = t.context;
  const BOUND = 5000;
  t.false(await tcpOpens(topo, a1.ns, a2.vip), 'before: a1 cannot reach a2');
  // Agents may now open tcp/8000 on each other (not icmp).
  await mustSetPolicy(t, AGENTS_TOO);
  const opened = await within(BOUND, true, () => tcpOpens(topo, a1.ns, a2.vip));
  t.not(opened, undefined, `a1 → a2 tcp/8000 not open ${BOUND} ms after the change`);
  t.log(`agent → agent tcp/8000 open ${opened} ms after policy set`);
  const got = await fetchBlob(t.context, a2.ns, a1.vip);
  t.is(got.sha, t.context.blobSha, `and a2 → a1 too: ${got.why}`);
  t.false(await tcpOpens(topo, a1.ns, a2.vip, CLOSED_PORT), 'but only on tcp/8000');
  t.false(await pingOk(topo, a1.ns, a2.vip, 2), 'and not icmp');
  t.false(await tcpOpens(topo, a1.ns, s1.vip), 'and still not to the controller');
  // Back to the mission's policy: new flows between agents stop.
  await mustSetPolicy(t, MISSION);
  const closed = await within(BOUND, false, () => tcpOpens(topo, a1.ns, a2.vip));
  t.not(closed, undefined, `a1 → a2 still opens ${BOUND} ms after the undo`);
  t.log(`agent → agent closed again ${closed} ms after policy set`);
  t.true(await tcpOpens(topo, s1.ns, a2.vip), 'positive control: s1 → a2 tcp/8000');

  // Remove icmp: the controller's pings stop while its TCP flows go on; then put it back.
  await mustSetPolicy(t, NO_ICMP);
  const noPing = await within(BOUND, false, () => pingOk(topo, s1.ns, a1.vip, 1));
  t.not(noPing, undefined, `s1 still pings a1 ${BOUND} ms after icmp was removed`);
  t.true(await tcpOpens(topo, s1.ns, a1.vip), 'tcp/8000 still opens');
  await mustSetPolicy(t, MISSION);
  const pingAgain = await within(BOUND, true, () => pingOk(topo, s1.ns, a1.vip, 1));
  t.not(pingAgain, undefined, `s1 does not ping a1 ${BOUND} ms after icmp came back`);
  t.log(`icmp closed ${noPing} ms and reopened ${pingAgain} ms after the changes`);
});

rootTest('no policy: everyone reaches everyone; setting it again restores the mission\'s policy', async (t) => {
  const { topo, a1, a2, s1 } = t.context;
  const cleared = await isthmusAdmin(t.context, ['policy', 'clear']);
  t.is(cleared.code, 0, cleared.stderr);
  t.not(await within(5000, true, () => tcpOpens(topo, a1.ns, s1.vip)), undefined, 'a1 → s1 with no policy');
  t.true(await tcpOpens(topo, a1.ns, a2.vip), 'a1 → a2 with no policy');
  await mustSetPolicy(t, MISSION);
  t.not(await within(5000, false, () => tcpOpens(topo, a1.ns, s1.vip)), undefined, 'a1 → s1 denied again');
  t.true(await tcpOpens(topo, s1.ns, a1.vip), 'positive control: s1 → a1');
});

rootTest('identity takeovers from member VPCs are refused through two coordinators; the honest joins succeed', async (t) => {
  const { topo, overlay, agentToken, a1, s1, extra } = t.context;
  const [, m2, m3] = extra;
  /** An agent started in `ns` that must be refused; its stderr says why. */
  const attempt = async (ns: string, name: string, stateName: string, args: string[]) => {
    const r = await topo.exec(ns, process.execPath, [cliPath(), 'agent', ...overlay.coordinatorArgs, '--relay', overlay.relayAddr,
      '--hostname', name, '--state-dir', join(overlay.dir, `state-${stateName}`), ...args], { check: false, timeoutMs: 20_000 });
    return { code: r.code, err: r.stderr };
  };
  const redisCli = async (...args: string[]) =>
    (await topo.exec(topo.ns.hub, 'redis-cli', ['-h', topo.addr.vip, ...args])).stdout.trim();

  // A self-asserted tag: refused before anything is sent; the controller's tag comes only from its token.
  const selfTag = await attempt(m3.ns, 'sneaky', 'sneaky', ['--token', agentToken, '--original-ip', m3.addr, '--tag', 'controller']);
  t.not(selfTag.code, 0);
  t.regex(selfTag.err, /--tag is no longer accepted/);
  t.is(await redisCli('GET', `isthmus:orig:${m3.addr}`), '', 'nothing registered');

  // A hostname in use (any case): 409; the same agent with a free name joins (positive control below).
  for (const name of ['s1', 'S1']) {
    const host = await attempt(m3.ns, name, `host-${name}`, ['--token', agentToken, '--original-ip', m3.addr]);
    t.not(host.code, 0);
    t.regex(host.err, new RegExp(`409 hostname-taken.*${s1.vip.replace(/\./g, '\\.')}`));
  }
  // A virtual IP as an original IP: 400.
  const vip = await attempt(m3.ns, 'thief-vip', 'thief-vip', ['--token', agentToken, '--original-ip', s1.vip]);
  t.regex(vip.err, /400 original-ip-in-overlay/);
  // Outside the token's prefixes (and not the address it joins from): 403.
  const narrow = await overlay.createToken(['--tag', 'agent', '--original-cidr', '10.96.0.0/16']);
  const outside = await attempt(m3.ns, 'thief-out', 'thief-out', ['--token', narrow, '--original-ip', '10.97.0.5']);
  t.regex(outside.err, /403 original-ip-not-allowed.*10\.96\.0\.0\/16/);
  // A live member's original IP, even with a token whose prefix holds it: 409 naming the holder.
  const wide = await overlay.createToken(['--tag', 'agent', '--original-cidr', '10.95.0.0/16', '--original-cidr', '10.91.1.0/24']);
  const live = await attempt(m3.ns, 'thief-live', 'thief-live', ['--token', wide, '--original-ip', a1.originalIp]);
  t.regex(live.err, new RegExp(`409 original-ip-taken .*held by ${a1.vip.replace(/\./g, '\\.')} \\(a1\\)`));
  t.is(await redisCli('GET', `isthmus:orig:${a1.originalIp}`), a1.vip, 'a1 keeps its address');
  t.true(await tcpOpens(topo, s1.ns, a1.vip), 'and the controller still reaches it');

  // A member last seen minutes ago: a3's host goes down (SIGKILL, no leave), its relay session
  // is gone and it was last seen 10 minutes ago. Its original IP is still not free.
  const a3 = await overlay.join('a3', m2.ns, m2.addr, { token: agentToken });
  await a3.process.stop(0);
  await redisCli('DEL', `isthmus:session:${a3.vip}`);
  await redisCli('HSET', `isthmus:node:${a3.vip}`, 'lastSeen', String(Date.now() - 10 * 60_000));
  const quiet = await attempt(m3.ns, 'thief-quiet', 'thief-quiet', ['--token', wide, '--original-ip', m2.addr]);
  t.regex(quiet.err, new RegExp(`409 original-ip-taken .*held by ${a3.vip.replace(/\./g, '\\.')} \\(a3\\)`));
  t.is(await redisCli('GET', `isthmus:orig:${m2.addr}`), a3.vip);

  // The admin removes a3: its key is refused from then on, even with the still-valid multi-use token.
  const removed = await isthmusAdmin(t.context, ['node', 'remove', a3.vip]);
  t.is(removed.code, 0, removed.stderr);
  overlay.members.delete('a3');
  const again = await attempt(m2.ns, 'a3', 'a3', ['--token', agentToken, '--original-ip', m2.addr]);
  t.not(again.code, 0);
  t.regex(again.err, /403 key-removed/);

  // Positive controls: the freed address is claimed by a new key joining from it; the
  // attacker's namespace joins with its own address and a free hostname, as an agent (its
  // token's tag only), and so reaches no one but is reached by the controller.
  const successor = await overlay.join('a3-successor', m2.ns, m2.addr, { token: agentToken });
  t.is(await redisCli('GET', `isthmus:orig:${m2.addr}`), successor.vip);
  const honest = await overlay.join('m3-host', m3.ns, m3.addr, { token: agentToken });
  t.is(await redisCli('GET', `isthmus:orig:${m3.addr}`), honest.vip);
  const nodes = JSON.parse((await isthmusAdmin(t.context, ['node', 'list', '--json'])).stdout) as { vip: string; tags: string[] }[];
  t.deepEqual(nodes.find((n) => n.vip === honest.vip)?.tags, ['agent'], 'tags from the token only');
  t.truthy(await within(10_000, true, () => pingOk(topo, s1.ns, honest.vip, 1)), 's1 reaches the new agent');
  t.false(await tcpOpens(topo, honest.ns, s1.vip), 'the new agent cannot open a flow to s1');
});
