/**
 * Metrics and health on every daemon, as they run: the real CLI (`node dist/cli/main.js`) for
 * the relay, coordinator and mapper with `--metrics 127.0.0.1:0` against a private
 * redis-server; the agent in process (it needs a TUN) on the memory testnet. Every scrape goes
 * through `promtool check metrics` (Debian's `prometheus` package) and must come back clean.
 *
 *   members a, b ──UDP── relay (CLI) ──┐
 *   CoordinatorClient ── coordinator ──┼── redis-server (stopped and restarted on its port)
 *   lookup API client ── mapper ───────┘
 *
 * The tests are serial and share the daemons: the last two use what the first ones started.
 */
import test, { type ExecutionContext } from 'ava';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import Redis from 'ioredis';
import { CoordinatorClient, RATE_LIMITS } from '../../coordinator';
import { registerAgentMetrics } from '../../node-agent';
import { daemonRegistry } from '../../cli/metrics';
import { startRedis, type RedisHandle } from '../harness/redis';
import { icmpEcho } from '../harness/packets';
import { startTestnet } from '../harness/testnet';
import { fakeWg, identity, startMember, until } from './relay-harness';
import { spawnOwned } from '../harness/procs';

const root = join(__dirname, '..', '..');
const CLI = join(root, 'dist', 'cli', 'main.js');
const P = `isthmus-metrics-${process.pid}:`;
const ADMIN = 'admin-token-for-the-metrics-test-0123';

interface Daemon {
  name: string;
  child: ChildProcess;
  /** http://HOST:PORT of the metrics listener, from its "metrics listening" log line */
  url: string;
  log(): string;
  /** the first log line with this msg, parsed */
  line(msg: string): Record<string, unknown>;
  stop(): Promise<void>;
}

let redis: RedisHandle;
const daemons: Daemon[] = [];
/** every scrape's text, for the dashboard test */
const scraped: string[] = [];

function cleanEnv(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ISTHMUS_')) e[k] = v;
  return e;
}

async function startDaemon(name: string, args: string[]): Promise<Daemon> {
  const child = spawnOwned(process.execPath, [CLI, ...args], { cwd: root, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const line = (msg: string): Record<string, unknown> => {
    for (const l of stderr.split('\n')) {
      if (!l.startsWith('{')) continue;
      const o = JSON.parse(l) as Record<string, unknown>;
      if (o.msg === msg) return o;
    }
    throw new Error(`${name}: no "${msg}" log line in:\n${stderr}`);
  };
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const d: Daemon = {
    name, child, url: '', log: () => stderr, line,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
  daemons.push(d);
  await until(() => stderr.includes('"msg":"metrics listening"') || child.exitCode !== null, `${name} metrics listening`, 20_000)
    .catch((e: Error) => { throw new Error(`${e.message}\n${stderr}`); });
  if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}:\n${stderr}`);
  d.url = line('metrics listening').metrics as string;
  return d;
}

async function scrape(d: Daemon): Promise<string> {
  const r = await fetch(`${d.url}/metrics`);
  if (r.status !== 200) throw new Error(`${d.name} /metrics: ${r.status}`);
  if (!r.headers.get('content-type')?.startsWith('text/plain')) throw new Error(`${d.name} /metrics: content-type ${r.headers.get('content-type')}`);
  const text = await r.text();
  scraped.push(text);
  return text;
}

/** `promtool check metrics` on the exposition: exit 0 and nothing to say. */
function promtoolClean(t: ExecutionContext, text: string, what: string): void {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool: ${r.error.message} (apt-get install -y --no-install-recommends prometheus)`);
  t.is(r.status, 0, `${what}: promtool check metrics failed:\n${r.stdout}${r.stderr}`);
  t.is(`${r.stdout}${r.stderr}`.trim(), '', `${what}: promtool has remarks`);
}

/** The value of one sample (`name` or `name{a="b"}` exactly as exposed), undefined if absent. */
function sample(text: string, series: string): number | undefined {
  for (const l of text.split('\n')) {
    if (l.startsWith(`${series} `)) return Number(l.slice(series.length + 1));
  }
  return undefined;
}

async function status(url: string): Promise<number> {
  try {
    return (await fetch(url)).status;
  } catch {
    return 0;
  }
}

async function waitStatus(url: string, want: number, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = 0;
  while ((last = await status(url)) !== want) {
    if (Date.now() > end) throw new Error(`${what}: ${url} answered ${last}, wanted ${want}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function tcpConnects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

test.before(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run npx tsc -p tsconfig.json first`);
  redis = await startRedis();
});
test.after.always(async () => {
  for (const d of daemons) await d.stop();
  await redis?.stop();
});

let relay: Daemon;
let coordinator: Daemon;
let mapper: Daemon;

test.serial('relay: --metrics is promtool-clean and its forwarded bytes move when two members talk through it', async (t) => {
  const a = identity('100.64.3.1');
  const b = identity('100.64.3.2');
  const r = new Redis(redis.url);
  t.teardown(() => r.disconnect());
  for (const m of [a, b]) await r.set(`${P}key:${Buffer.from(m.kp.publicKey).toString('base64')}`, `100.64.3.${m === a ? 1 : 2}`);
  relay = await startDaemon('relay', ['relay', '--listen', '127.0.0.1:0', '--redis', redis.url, '--redis-prefix', P, '--id', 'metrics-relay',
    '--metrics', '127.0.0.1:0', '--health-tcp', '127.0.0.1:0', '--stats-interval', '0s']);
  await until(() => relay.log().includes('"msg":"relay ready"'), 'relay ready', 10_000);
  const port = Number(String(relay.line('relay started').udpAddr).split(':')[1]);

  const before = await scrape(relay);
  promtoolClean(t, before, 'relay, idle');
  t.is(sample(before, 'isthmus_relay_forwarded_bytes_total'), 0);
  t.is(sample(before, 'isthmus_relay_drops_total{reason="unknown-destination"}'), 0, 'every drop reason is exposed, at 0');

  const ma = await startMember(a, port);
  const mb = await startMember(b, port);
  t.teardown(() => { ma.close(); mb.close(); });
  await until(() => ma.client.isReady && mb.client.isReady, 'members authenticated', 10_000);
  for (let i = 0; i < 5; i++) ma.sendData(b.vip, fakeWg(200));
  await until(() => mb.received.length >= 5, 'b received what a sent through the relay', 5000);

  const after = await scrape(relay);
  promtoolClean(t, after, 'relay, after traffic');
  t.true(sample(after, 'isthmus_relay_forwarded_bytes_total')! >= 5 * 200, 'forwarded bytes counted');
  t.is(sample(after, 'isthmus_relay_forwarded_frames_total'), 5);
  t.is(sample(after, 'isthmus_relay_sessions'), 2);
  // At least one per member: a member whose AUTH answer is late (a loaded machine) sends it again.
  t.true(sample(after, 'isthmus_relay_auth_ok_total')! >= 2, 'authentications counted');
  t.regex(after, /^process_cpu_seconds_total /m, 'process metrics too');

  t.is(await status(`${relay.url}/healthz`), 200);
  t.is(await status(`${relay.url}/readyz`), 200);
  const h = String(relay.line('health port open').healthTcp).split(':');
  t.true(await tcpConnects(h[0]!, Number(h[1])), 'the TCP health port accepts while ready');
});

test.serial('coordinator: --metrics is promtool-clean and counts joins by result and members', async (t) => {
  coordinator = await startDaemon('coordinator', ['coordinator', '--redis', redis.url, '--redis-prefix', P, '--listen', '127.0.0.1:0',
    '--admin-token', ADMIN, '--metrics', '127.0.0.1:0', '--rate-limit-join', '100']);
  await until(() => coordinator.log().includes('"msg":"coordinator listening"'), 'coordinator listening', 10_000);
  const url = `http://${String(coordinator.line('coordinator listening').listen)}`;
  const admin = new CoordinatorClient({ url, insecure: true, adminToken: ADMIN });
  const { token } = await admin.createToken({ originalCidrs: ['10.0.0.0/8'] });
  const kp = identity('100.64.0.0').kp;
  await new CoordinatorClient({ url, insecure: true }).join({ privateKey: kp.secretKey, publicKey: kp.publicKey, token, originalIp: '10.3.3.3', hostname: 'metrics-m1' });
  const bad = await fetch(`${url}/v1/join`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"nonsense":true}' });
  t.is(bad.status, 400);

  const text = await scrape(coordinator);
  promtoolClean(t, text, 'coordinator');
  t.is(sample(text, 'isthmus_coordinator_joins_total{result="created"}'), 1);
  t.is(sample(text, 'isthmus_coordinator_joins_total{result="refused"}'), 1);
  t.is(sample(text, 'isthmus_coordinator_joins_total{result="failed"}'), 0);
  for (const limit of RATE_LIMITS) t.is(sample(text, `isthmus_coordinator_rate_limited_total{limit="${limit}"}`), 0, 'every limit is exposed, at 0');
  t.is(sample(text, 'isthmus_coordinator_members'), 1);
  t.is(sample(text, 'isthmus_coordinator_redis_up'), 1);
  t.true(sample(text, 'isthmus_coordinator_redis_ping_seconds')! > 0);
  t.true(sample(text, 'isthmus_coordinator_changes_total')! >= 1, 'the join was seen on the events channel');
  t.is(sample(text, 'isthmus_coordinator_peer_map_watchers'), 0);
  t.is(await status(`${coordinator.url}/readyz`), 200);
});

test.serial('mapper: --metrics is promtool-clean and counts lookups and cache hits', async (t) => {
  mapper = await startDaemon('mapper', ['mapper', '--redis', redis.url, '--redis-prefix', P, '--api', '127.0.0.1:0', '--socks', '127.0.0.1:0',
    '--metrics', '127.0.0.1:0']);
  await until(() => mapper.log().includes('"msg":"mapper running"'), 'mapper running', 10_000);
  const api = mapper.line('mapper running').api as { host: string; port: number };
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`http://${api.host}:${api.port}/v1/map/10.3.3.3`);
    t.is(r.status, 200, 'the member the coordinator test joined is found');
  }
  const text = await scrape(mapper);
  promtoolClean(t, text, 'mapper');
  t.true(sample(text, 'isthmus_mapper_lookups_total')! >= 3);
  t.true(sample(text, 'isthmus_mapper_cache_hits_total')! >= 2, 'repeated lookups hit the cache');
  t.is(sample(text, 'isthmus_mapper_cache_live'), 1);
  t.is(await status(`${mapper.url}/readyz`), 200);
});

test.serial('readyz is 503 on relay, coordinator and mapper while Redis is down and 200 when it is back; healthz stays 200', async (t) => {
  const all = [relay, coordinator, mapper];
  for (const d of all) t.is(await status(`${d.url}/readyz`), 200, `${d.name} ready before`);
  const h = String(relay.line('health port open').healthTcp).split(':');
  const port = redis.port;
  await redis.stop();
  for (const d of all) await waitStatus(`${d.url}/readyz`, 503, `${d.name} readyz with Redis stopped`);
  for (const d of all) t.is(await status(`${d.url}/healthz`), 200, `${d.name} alive`);
  const body = await (await fetch(`${relay.url}/readyz`)).json() as { ready: boolean; checks: Record<string, boolean> };
  t.deepEqual(body, { ready: false, checks: { socket: true, setup: true, redis: false } });
  await until(() => relay.log().includes('"msg":"health port closed"'), 'health port closed', 5000);
  t.false(await tcpConnects(h[0]!, Number(h[1])), 'the TCP health port refuses while not ready');
  const down = await scrape(coordinator);
  promtoolClean(t, down, 'coordinator, Redis down');
  t.is(sample(down, 'isthmus_coordinator_redis_up'), 0);

  redis = await startRedis({ port });
  for (const d of all) await waitStatus(`${d.url}/readyz`, 200, `${d.name} readyz with Redis back`, 30_000);
  await until(() => relay.log().split('"msg":"health port open"').length > 2, 'health port open again', 5000);
  t.true(await tcpConnects(h[0]!, Number(h[1])), 'the TCP health port accepts again, on the same port');
});

test.serial('agent: per-peer metrics by overlay address, drops, relay state; promtool-clean', async (t) => {
  const n = await startTestnet({});
  t.teardown(() => n.stop());
  await n.ready();
  const a = n.agent('a');
  const b = n.agent('b');
  const registry = daemonRegistry();
  registerAgentMetrics(registry, a.agent);
  a.tun.inject(icmpEcho(a.vip, b.vip, { seq: 1 }));
  await b.tun.next({ timeoutMs: 2000 });
  const text = await registry.metrics();
  scraped.push(text);
  promtoolClean(t, text, 'agent');
  t.true(sample(text, `isthmus_agent_peer_sent_bytes_total{peer="${b.vip}"}`)! > 0, 'bytes to b, labelled by b\'s overlay address');
  t.true(sample(text, `isthmus_agent_peer_last_handshake_timestamp_seconds{peer="${b.vip}"}`)! > Date.now() / 1000 - 60);
  t.is(sample(text, 'isthmus_agent_peers'), 1);
  t.is(sample(text, 'isthmus_agent_live_peers'), 1, 'b talked: live');
  t.is(sample(text, 'isthmus_agent_relay_up'), 1);
  t.is(sample(text, 'isthmus_agent_relay_state{state="ready"}'), 1);
  t.is(sample(text, 'isthmus_agent_relay_rebinds_total'), 0);
  t.is(sample(text, 'isthmus_agent_drops_total{reason="no-route"}'), 0);
  t.notRegex(text, new RegExp(b.publicKey.replace(/[+/=]/g, '.')), 'no key in the labels');
});

test.serial('the Grafana dashboard is valid JSON and names only metrics the daemons export', (t) => {
  const dash = JSON.parse(readFileSync(join(root, 'docs', 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
  const exported = new Set<string>();
  for (const text of scraped) for (const m of text.matchAll(/^# TYPE (\S+) /gm)) exported.add(m[1]!);
  const used = new Set<string>();
  for (const p of dash.panels) for (const tg of p.targets ?? []) for (const m of tg.expr.matchAll(/\bisthmus_[a-z0-9_]+/g)) used.add(m[0]);
  t.true(used.size >= 20, `the dashboard uses ${used.size} metrics`);
  for (const daemon of ['relay', 'agent', 'coordinator', 'mapper']) t.true([...used].some((n) => n.startsWith(`isthmus_${daemon}_`)), `a panel for the ${daemon}`);
  const missing = [...used].filter((n) => !exported.has(n));
  t.deepEqual(missing, [], 'every metric in the dashboard is exported by some daemon');
});
