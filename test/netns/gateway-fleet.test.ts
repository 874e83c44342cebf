/**
 * A gateway fleet as a company runs it: two gateway members (agent + `isthmus mapper
 * --gateway`) behind one VIP, a caller with NO agent, an agent serving a file.
 *
 *   vpc1  a1 10.91.1.2 (tag web): agent + python3 http.server :8000 (blob)
 *   m1    g1 10.95.1.2 (tag gateway): agent + mapper --gateway  SOCKS5 :1080, HTTP :3128, metrics :9100
 *   m2    g2 10.95.2.2 (tag gateway): the same
 *   vpc2  caller 10.92.1.2, no agent: reaches the VIP (and, for the per-gateway checks, g1/g2 directly)
 *   hub   VIP 10.90.0.1: redis, coordinator, relay :7000; and tcp :1080/:3128 DNAT to g1/g2
 *         (nft jhash of source address and port, the testbed's vip-lb chains)
 *
 * Policy: gateway and ops may open tcp/8000 on web; monitoring may not. Proxy users alice,
 * bob (ops) and mallory (monitoring).
 *
 * VIP health: nftables has no health checks. As keepalived/LVS or haproxy would, a small loop
 * in this test (the `health` helper below) probes each gateway's /readyz from the hub every
 * 200 ms and rewrites the DNAT set to the ready ones after 2 failures: that loop is what
 * takes a dead gateway out, and the failover test measures kill → loop removed it → every new
 * connection through the VIP succeeds.
 */
import anyTest, { type TestFn } from 'ava';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { addMemberNamespace, startJoinedOverlay, cliPath, type JoinedOverlay, type JoinedMember, type MemberNamespace } from '../../testbed';
import type { ManagedProcess } from '../harness/procs';
import { forRoot } from '../harness/root';

interface Gateway { ns: MemberNamespace; member: JoinedMember; mapper: ManagedProcess }
interface Ctx {
  topo: Topology; overlay: JoinedOverlay; a1: JoinedMember; gws: Gateway[]; dir: string; blobSha: string;
  pw: Record<string, string>; live: string[];
}
interface Health { stop(): Promise<void>; removed: Map<string, number> }
/** Module-level, not in t.context: ava gives each test a shallow copy of the context, and after.always must stop it. */
let health: Health | undefined;
const test = anyTest as TestFn<Ctx>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'curl', 'python3', 'sha256sum'] });
const BLOB = 8 * 2 ** 20;
const SOCKS = 1080;
const HTTP = 3128;
const METRICS = 9100;
const POLICY = JSON.stringify({ rules: [{ from: ['tag:gateway', 'tag:ops'], to: ['tag:web'], ports: ['tcp/8000'] }] });

async function setBackends(c: Ctx, ips: string[]): Promise<void> {
  c.live = ips;
  await c.topo.setVipBackends('tcp', SOCKS, ips);
  await c.topo.setVipBackends('tcp', HTTP, ips);
}

async function ready(c: Ctx, ip: string): Promise<boolean> {
  const r = await c.topo.exec(c.topo.ns.hub, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '0.5', `http://${ip}:${METRICS}/readyz`], { check: false });
  return r.stdout === '200';
}

/** The stand-in for the LB's health checker: /readyz every 200 ms, out after 2 failures. */
function startHealth(c: Ctx): Health {
  let running = true;
  const fails = new Map<string, number>();
  const removed = new Map<string, number>();
  const loop = (async () => {
    while (running) {
      for (const ip of [...c.live]) {
        const ok = await ready(c, ip);
        const n = ok ? 0 : (fails.get(ip) ?? 0) + 1;
        fails.set(ip, n);
        if (n >= 2 && c.live.includes(ip)) {
          await setBackends(c, c.live.filter((x) => x !== ip));
          removed.set(ip, Date.now());
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return { removed, async stop() { running = false; await loop; } };
}

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itgw') });
  t.context.topo = topo;
  t.context.gws = [];
  t.context.pw = {};
  const dir = mkdtempSync(join(tmpdir(), 'itgw-www-'));
  t.context.dir = dir;
  const blob = Buffer.alloc(BLOB);
  for (let i = 0; i < BLOB; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(dir, 'blob'), blob);
  t.context.blobSha = createHash('sha256').update(blob).digest('hex');

  const overlay = await startJoinedOverlay(topo);
  t.context.overlay = overlay;
  const set = await overlay.admin(['policy', 'set', '-'], POLICY);
  if (set.code !== 0) throw new Error(`policy set: ${set.stderr}`);
  const web = await overlay.createToken(['--tag', 'web']);
  const gwToken = await overlay.createToken(['--tag', 'gateway']);
  t.context.a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token: web });
  topo.spawn(topo.ns.vpc1, 'python3', ['-m', 'http.server', '8000', '--bind', '0.0.0.0', '--directory', dir], { name: 'http-server' });
  await topo.waitForListen(topo.ns.vpc1, 8000, 'tcp');

  // The caller reaches the gateways through the hub (VIP DNAT, and directly for per-gateway checks).
  await topo.allowHubForward('to-vpc2', 'to-m*');
  await topo.exec(topo.ns.vpc2, 'ip', ['route', 'add', '10.95.0.0/16', 'via', topo.addr.hubVpc2]);
  for (const i of [1, 2]) {
    const ns = await addMemberNamespace(topo, i);
    // Replies to the caller go back through the hub (as behind an LVS-NAT director).
    await topo.exec(topo.ns.hub, 'sysctl', ['-qw', `net.ipv4.conf.to-m${i}.forwarding=1`]);
    await topo.exec(ns.ns, 'ip', ['route', 'add', '10.92.1.0/24', 'via', `10.95.${i}.1`]);
    const member = await overlay.join(`g${i}`, ns.ns, ns.addr, { token: gwToken });
    const mapper = topo.spawn(ns.ns, process.execPath, [cliPath(), 'mapper', '--gateway', '--redis', overlay.redisUrl,
      '--socks', `0.0.0.0:${SOCKS}`, '--http-proxy', `0.0.0.0:${HTTP}`, '--agent-socket', join(member.stateDir, 'agent.sock'),
      '--metrics', `0.0.0.0:${METRICS}`], { name: `gateway-g${i}`, env: { ...process.env, ISTHMUS_LOG_LEVEL: 'info' } });
    t.context.gws.push({ ns, member, mapper });
  }
  for (const g of t.context.gws) {
    const t0 = Date.now();
    while (!await ready(t.context, g.ns.addr)) {
      if (Date.now() - t0 > 20_000) throw new Error(`gateway ${g.ns.addr} not ready: ${g.mapper.output().slice(-800)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await setBackends(t.context, t.context.gws.map((g) => g.ns.addr));
  for (const [name, tag] of [['alice', 'ops'], ['bob', 'ops'], ['mallory', 'monitoring']] as const) {
    const r = await overlay.admin(['proxy-user', 'create', name, '--tag', tag]);
    if (r.code !== 0) throw new Error(`proxy-user create: ${r.stderr}`);
    t.context.pw[name] = r.stdout.trim().split('\n').pop()!;
  }
});
test.after.always(async (t) => {
  await health?.stop();
  for (const g of t.context.gws ?? []) await g.mapper.stop();
  await t.context.overlay?.stop();
  for (const g of t.context.gws ?? []) await g.ns.remove();
  await t.context.topo?.destroy();
  if (t.context.dir) rmSync(t.context.dir, { recursive: true, force: true });
});

const VIP = '10.90.0.1';
function fetchHash(t: { context: Ctx }, proxyArgs: string, path = 'blob') {
  return t.context.topo.exec(t.context.topo.ns.vpc2, 'sh', ['-c',
    `curl -sS --max-time 30 ${proxyArgs} http://${t.context.topo.addr.vpc1}:8000/${path} | sha256sum`], { check: false, timeoutMs: 40_000 });
}
const curl = (t: { context: Ctx }, args: string[]) =>
  t.context.topo.exec(t.context.topo.ns.vpc2, 'curl', ['-sS', '--max-time', '10', ...args], { check: false, timeoutMs: 20_000 });
const file = (t: { context: Ctx }) => `http://${t.context.topo.addr.vpc1}:8000/blob`;

rootTest('a caller without an agent fetches a file by original IP through the VIP: SOCKS5 and HTTP proxy, right credentials only', async (t) => {
  const { pw, blobSha } = t.context;
  for (let i = 0; i < 3; i++) {
    const s = await fetchHash(t, `--socks5-hostname alice:${pw.alice}@${VIP}:${SOCKS}`);
    t.is(s.stdout.split(' ')[0], blobSha, s.stderr);
    const h = await fetchHash(t, `-x http://alice:${pw.alice}@${VIP}:${HTTP}`);
    t.is(h.stdout.split(' ')[0], blobSha, h.stderr);
  }
  // Each gateway on its own (the VIP picks one per connection).
  for (const g of t.context.gws) {
    const s = await fetchHash(t, `--socks5-hostname alice:${pw.alice}@${g.ns.addr}:${SOCKS}`);
    t.is(s.stdout.split(' ')[0], blobSha, `${g.ns.addr}: ${s.stderr}`);
  }
  const wrongSocks = await curl(t, ['-o', '/dev/null', '--socks5-hostname', `alice:${pw.bob}@${VIP}:${SOCKS}`, file(t)]);
  t.not(wrongSocks.code, 0);
  const noCreds = await curl(t, ['-o', '/dev/null', '--socks5-hostname', `${VIP}:${SOCKS}`, file(t)]);
  t.not(noCreds.code, 0);
  const wrongHttp = await curl(t, ['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://alice:${pw.bob}@${VIP}:${HTTP}`, file(t)]);
  t.is(wrongHttp.stdout, '407');
});

rootTest('a user whose tags the policy does not connect to the agent is refused; an ops user is allowed', async (t) => {
  const { pw } = t.context;
  const ok = await curl(t, ['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://bob:${pw.bob}@${VIP}:${HTTP}`, file(t)]);
  t.is(ok.stdout, '200', ok.stderr);
  const h = await curl(t, ['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://mallory:${pw.mallory}@${VIP}:${HTTP}`, file(t)]);
  t.is(h.stdout, '403');
  const s = await curl(t, ['-o', '/dev/null', '--socks5-hostname', `mallory:${pw.mallory}@${VIP}:${SOCKS}`, file(t)]);
  t.not(s.code, 0);
  t.regex(s.stderr, /\(2\)|not allowed/i, s.stderr);
});

rootTest('a revoked user is refused by every gateway within a second', async (t) => {
  const { pw, gws } = t.context;
  const code = (ip: string) => curl(t, ['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://bob:${pw.bob}@${ip}:${HTTP}`, `http://${t.context.topo.addr.vpc1}:8000/`]);
  for (const g of gws) t.is((await code(g.ns.addr)).stdout, '200', `bob works through ${g.ns.addr} before (cached there now)`);
  const r = await t.context.overlay.admin(['proxy-user', 'revoke', 'bob']);
  t.is(r.code, 0, r.stderr);
  const revokedAt = Date.now();
  const after = await Promise.all(gws.map(async (g) => {
    for (;;) {
      if ((await code(g.ns.addr)).stdout === '407') return Date.now() - revokedAt;
      if (Date.now() - revokedAt > 5000) return Infinity;
    }
  }));
  t.log(`refused by g1 after ${after[0]} ms, g2 after ${after[1]} ms (each includes one curl through the proxy)`);
  for (const ms of after) t.true(ms < 1000, `${ms} ms`);
  const again = await code(gws[1]!.ns.addr);
  t.is(again.stdout, '407', 'bob stays refused');
  const other = await curl(t, ['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://alice:${pw.alice}@${gws[1]!.ns.addr}:${HTTP}`, file(t)]);
  t.is(other.stdout, '200', 'other users are unaffected');
});

rootTest('kill -9 one gateway: the health loop drops it and new connections through the VIP succeed within 3 s', async (t) => {
  const c = t.context;
  const [g1, g2] = c.gws as [Gateway, Gateway];
  t.true(await ready(c, g1.ns.addr) && await ready(c, g2.ns.addr), 'both ready before');
  health = startHealth(c);
  process.kill(g1.mapper.pid, 'SIGKILL');
  const killedAt = Date.now();
  // New connections until 10 in a row succeed, all started after the health loop removed g1
  // (before that, a connection succeeds or not by which backend the hash picks).
  let streakStart = 0;
  let streak = 0;
  let failures = 0;
  while (streak < 10 && Date.now() - killedAt < 15_000) {
    const start = Date.now();
    const r = await curl(t, ['-o', '/dev/null', '-w', '%{http_code}', '--connect-timeout', '1', '--socks5-hostname', `alice:${c.pw.alice}@${VIP}:${SOCKS}`, `http://${c.topo.addr.vpc1}:8000/`]);
    const afterRemoval = health.removed.has(g1.ns.addr) && start > health.removed.get(g1.ns.addr)!;
    if (r.stdout === '200' && afterRemoval) {
      if (streak === 0) streakStart = start;
      streak++;
    } else if (r.stdout !== '200') {
      streak = 0;
      failures++;
    }
  }
  const removedAt = health.removed.get(g1.ns.addr);
  t.log(`health loop removed g1 ${removedAt ? removedAt - killedAt : '-'} ms after kill; ${failures} connections failed (refused by the dead backend) before; 10 in a row from ${streakStart - killedAt} ms`);
  t.is(streak, 10);
  t.truthy(removedAt, 'the health loop removed the dead gateway');
  t.true(streakStart - killedAt < 3000, `${streakStart - killedAt} ms`);
  t.deepEqual(c.live, [g2.ns.addr]);
  t.true(await ready(c, g2.ns.addr), 'the survivor stays ready');
  await health.stop();
});

rootTest('a gateway whose agent is gone is not ready (overlay check), while Redis still is', async (t) => {
  const c = t.context;
  const g2 = c.gws[1]!;
  const readyz = async () => {
    const r = await c.topo.exec(c.topo.ns.hub, 'curl', ['-s', '--max-time', '2', `http://${g2.ns.addr}:${METRICS}/readyz`], { check: false });
    return JSON.parse(r.stdout || '{}') as { ready?: boolean; checks?: Record<string, boolean> };
  };
  t.deepEqual(await readyz(), { ready: true, checks: { sockets: true, redis: true, overlay: true } }, 'positive control: ready with its agent');
  await g2.member.process.stop();
  const t0 = Date.now();
  let r = await readyz();
  while (r.ready !== false && Date.now() - t0 < 5000) { await new Promise((res) => setTimeout(res, 100)); r = await readyz(); }
  t.deepEqual(r, { ready: false, checks: { sockets: true, redis: true, overlay: false } });
});
