/**
 * Port exposure over the real overlay: a gateway member (agent + `isthmus mapper --gateway
 * --expose-range`) exposes an agent's port for a central proxy user (`isthmus proxy-user
 * create`), and a caller with no agent, in a namespace that reaches only the gateway, connects
 * to (gatewayIp, gatewayPort) and gets the agent's data, intact.
 *
 *   vpc1:   a1 (tag:agent, original 10.91.1.2) serves a 32 MiB blob over HTTP on tcp/8000 and tcp/8001
 *   vpc2:   gw (tag:gateway) runs its agent and `isthmus mapper --gateway --api 0.0.0.0:7070 --socks …
 *           --expose-range … --expose-listen 0.0.0.0 --expose-advertise 10.96.0.1` (identity: its
 *           agent, through the control socket, as for the proxy)
 *   <p>-c:  the caller, eth0 10.96.0.2/24 ── veth ── vpc2 to-caller 10.96.0.1/24; no agent, no route to the overlay
 *   hub:    redis · coordinator · relay
 *
 *   policy: tag:gateway → tag:agent on tcp/8000 only; tag:ops → tag:agent on tcp/8000-8001
 *   proxy users: ops (tag ops), mon (tag monitoring, reaches nothing)
 */
import anyTest, { type TestFn } from 'ava';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { cliPath, startJoinedOverlay, type JoinedMember, type JoinedOverlay } from '../../testbed';
import { run, type ManagedProcess } from '../harness/procs';
import { forRoot } from '../harness/root';

interface Ctx { topo: Topology; overlay: JoinedOverlay; a1: JoinedMember; gw: JoinedMember; mapper: ManagedProcess; caller: string; dir: string; blobSha: string; pw: Record<string, string> }
const test = anyTest as TestFn<Ctx>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'curl', 'python3', 'sha256sum'] });
const BLOB = 32 * 2 ** 20;
const GATEWAY_IP = '10.96.0.1';
const CALLER_IP = '10.96.0.2';
const RANGE = [20000, 20999] as const;
const API = `http://${GATEWAY_IP}:7070`;

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itex') });
  t.context.topo = topo;
  const dir = mkdtempSync(join(tmpdir(), 'itex-www-'));
  t.context.dir = dir;
  const blob = Buffer.alloc(BLOB);
  for (let i = 0; i < BLOB; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(dir, 'blob'), blob);
  t.context.blobSha = createHash('sha256').update(blob).digest('hex');

  // The caller: its own namespace on a link to the gateway's host only.
  const caller = `${topo.prefix}-c`;
  await run('ip', ['netns', 'add', caller]);
  t.context.caller = caller;
  await run('ip', ['link', 'add', 'to-caller', 'netns', topo.ns.vpc2, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', caller]);
  await topo.exec(topo.ns.vpc2, 'ip', ['addr', 'add', `${GATEWAY_IP}/24`, 'dev', 'to-caller']);
  await topo.exec(topo.ns.vpc2, 'ip', ['link', 'set', 'to-caller', 'up']);
  await topo.exec(caller, 'ip', ['link', 'set', 'lo', 'up']);
  await topo.exec(caller, 'ip', ['addr', 'add', `${CALLER_IP}/24`, 'dev', 'eth0']);
  await topo.exec(caller, 'ip', ['link', 'set', 'eth0', 'up']);

  const overlay = await startJoinedOverlay(topo);
  t.context.overlay = overlay;
  t.context.a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token: await overlay.createToken(['--tag', 'agent']) });
  t.context.gw = await overlay.join('gw', topo.ns.vpc2, topo.addr.vpc2, { token: await overlay.createToken(['--tag', 'gateway']) });
  const policyFile = join(overlay.dir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify({ rules: [
    { from: ['tag:gateway'], to: ['tag:agent'], ports: ['tcp/8000'] },
    { from: ['tag:ops'], to: ['tag:agent'], ports: ['tcp/8000-8001'] },
  ] }));
  const set = await overlay.admin(['policy', 'set', policyFile]);
  if (set.code !== 0) throw new Error(`policy set: ${set.stderr}`);
  for (const port of [8000, 8001]) {
    topo.spawn(topo.ns.vpc1, 'python3', ['-m', 'http.server', String(port), '--bind', '0.0.0.0', '--directory', dir], { name: `http-${port}` });
    await topo.waitForListen(topo.ns.vpc1, port, 'tcp');
  }
  t.context.pw = {};
  for (const [name, tag] of [['ops', 'ops'], ['mon', 'monitoring']] as const) {
    const r = await overlay.admin(['proxy-user', 'create', name, '--tag', tag]);
    if (r.code !== 0) throw new Error(`proxy-user create: ${r.stderr}`);
    t.context.pw[name] = r.stdout.trim().split('\n').pop()!;
  }
  t.context.mapper = topo.spawn(topo.ns.vpc2, process.execPath, [cliPath(), 'mapper', '--gateway', '--redis', overlay.redisUrl,
    '--api', '0.0.0.0:7070', '--socks', '127.0.0.1:1080', '--agent-socket', join(t.context.gw.stateDir, 'agent.sock'),
    '--expose-range', `${RANGE[0]}-${RANGE[1]}`, '--expose-listen', '0.0.0.0', '--expose-advertise', GATEWAY_IP], { name: 'mapper' });
  await topo.waitForListen(topo.ns.vpc2, 7070, 'tcp');
});

test.after.always(async (t) => {
  await t.context.mapper?.stop();
  await t.context.overlay?.stop();
  if (t.context.caller) await run('ip', ['netns', 'del', t.context.caller], { check: false });
  await t.context.topo?.destroy();
  if (t.context.dir) rmSync(t.context.dir, { recursive: true, force: true });
});

/** curl from the caller's namespace; `input` is a curl config on stdin (credentials stay off the command line). */
function curl(c: Ctx, args: string[], timeoutMs = 30_000, input?: string) {
  return c.topo.exec(c.caller, 'curl', ['-sS', '--max-time', String(Math.floor(timeoutMs / 1000) - 5), ...args], { check: false, timeoutMs, ...(input === undefined ? {} : { input }) });
}

/** The gateway's API as proxy user `user` (default ops). */
async function api(c: Ctx, method: string, path: string, body?: object, user = 'ops'): Promise<{ status: number; body: Record<string, unknown> }> {
  const out = await curl(c, ['-K', '-', '-X', method, '-w', '\n%{http_code}', ...(body ? ['-H', 'content-type: application/json', '-d', JSON.stringify(body)] : []), `${API}${path}`], 30_000, `user = "${user}:${c.pw[user]!}"\n`);
  const lines = out.stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  return { status, body: JSON.parse(lines.join('\n') || '{}') as Record<string, unknown> };
}

rootTest('the caller has no way into the overlay on its own (positive control: it reaches the gateway\'s API)', async (t) => {
  const direct = await curl(t.context, ['--connect-timeout', '2', `http://${t.context.a1.vip}:8000/`], 10_000);
  t.not(direct.code, 0, 'no route from the caller to the agent\'s virtual IP');
  const unauth = await curl(t.context, ['-o', '/dev/null', '-w', '%{http_code}', `${API}/v1/expose?originalIp=${t.context.topo.addr.vpc1}&port=8000`]);
  t.is(unauth.stdout, '401', 'the API answers, and wants credentials');
  const lookup = await curl(t.context, ['-o', '/dev/null', '-w', '%{http_code}', `${API}/v1/map/${t.context.topo.addr.vpc1}`]);
  t.is(lookup.stdout, '401', 'the lookup API of a gateway wants a proxy user too');
  const asOps = await curl(t.context, ['-K', '-', '-o', '/dev/null', '-w', '%{http_code}', `${API}/v1/map/${t.context.topo.addr.vpc1}`], 30_000, `user = "ops:${t.context.pw.ops!}"\n`);
  t.is(asOps.stdout, '200', 'positive control: with a proxy user');
});

rootTest('an exposed agent port forwards a 32 MiB stream intact (SHA-256) to a caller with no agent; gone after DELETE', async (t) => {
  const c = t.context;
  const orig = c.topo.addr.vpc1;
  const made = await api(c, 'POST', '/v1/expose', { originalIp: orig, port: 8000 });
  t.is(made.status, 201, JSON.stringify(made.body));
  t.like(made.body, { gatewayIp: GATEWAY_IP, originalIp: orig, port: 8000, gatewayId: c.gw.vip });
  const gp = made.body.gatewayPort as number;
  t.true(gp >= RANGE[0] && gp <= RANGE[1], `port ${gp} in the range`);
  const got = await c.topo.exec(c.caller, 'sh', ['-c', `curl -sS --max-time 60 http://${GATEWAY_IP}:${gp}/blob | sha256sum`], { timeoutMs: 70_000 });
  t.is(got.stdout.split(' ')[0], c.blobSha, got.stderr);
  const found = await api(c, 'GET', `/v1/expose?originalIp=${orig}&port=8000`);
  t.is(found.status, 200);
  t.is(found.body.gatewayPort, gp);

  const del = await api(c, 'DELETE', `/v1/expose/${gp}`);
  t.is(del.status, 200, JSON.stringify(del.body));
  const after = await curl(c, ['--connect-timeout', '3', `http://${GATEWAY_IP}:${gp}/`], 10_000);
  t.is(after.code, 7, `curl: connection refused after DELETE (${after.stderr.trim()})`);
  t.is((await api(c, 'GET', `/v1/expose?originalIp=${orig}&port=8000`)).status, 404);
});

rootTest('a port the policy does not open to the gateway, or to the user, is refused at POST (403 with the reason); the allowed one works', async (t) => {
  const c = t.context;
  const orig = c.topo.addr.vpc1;
  const denied = await api(c, 'POST', '/v1/expose', { originalIp: orig, port: 8001 });
  t.is(denied.status, 403);
  t.like(denied.body, { error: 'policy-denied' });
  // ops may open tcp/8001, the gateway member may not: the gateway's tags (from its agent) count too.
  t.regex(String(denied.body.reason), /this gateway \(tags gateway\) open tcp\/8001 to \S+ \(tags agent\)/);
  const mon = await api(c, 'POST', '/v1/expose', { originalIp: orig, port: 8000 }, 'mon');
  t.is(mon.status, 403);
  t.regex(String(mon.body.reason), /proxy user mon \(tags monitoring\) open tcp\/8000/);
  // Positive control: same gateway, same agent, the port the policy opens.
  const ok = await api(c, 'POST', '/v1/expose', { originalIp: orig, port: 8000 });
  t.is(ok.status, 201, JSON.stringify(ok.body));
  const page = await curl(c, ['-o', '/dev/null', '-w', '%{http_code}', `http://${GATEWAY_IP}:${ok.body.gatewayPort as number}/`]);
  t.is(page.stdout, '200');
  t.is((await api(c, 'DELETE', `/v1/expose?originalIp=${orig}&port=8000`)).status, 200);
});
