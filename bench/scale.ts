/**
 * `npm run bench:scale -- --members 1000,10000`: the control plane at N members (issue 12).
 * See bench/README.md ("Scale") for what each figure means, how long each N takes and what
 * limits N on this machine.
 *
 * Per N, from nothing: a private redis-server, two coordinators, two relays and a mapper as
 * real processes (`node dist/cli/main.js ...`, signing key and admin token from 0600 files),
 * a policy where controllers may open tcp/22 to agents (so an agent sees only controllers and a
 * controller sees every agent), then N simulated members in `--workers` processes
 * (bench/scale-worker.ts: real joins with key proofs, real relay sessions, real long-poll
 * watches) and one controller running the real agent code (bench/scale-agent.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { Pool, WebSocket } from 'undici';
import Redis from 'ioredis';
import { CoordinatorClient, generateSigningKey } from '../coordinator';
import { ManagedProcess, startRedis, type RedisHandle } from '../testbed';
import type { FromWorker, Probe, Role, ToWorker, WorkerInit } from './scale-worker';
import { originalIpOf } from './scale-worker';
import type { FromAgent, ToAgent } from './scale-agent';

const CLI = resolve(__dirname, '..', 'cli', 'main.js');
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ScaleOptions {
  members: number;
  /** Worker processes for the simulated members. @default max(4, ceil(N / 8000)): each holds ~2 fds per member, under `ulimit -n` */ workers?: number;
  /** Coordinators. Joins go through the first two (joinsPerSec is for two); the others only carry
   *  watchers. @default max(2, ceil(N / 14000)): each holds < 15k long-poll connections */ coordinators?: number;
  /** Controllers among the members. @default clamp(N / 200, 5, 50) */ controllers?: number;
  /** Seconds of the idle window (keepalive and baseline rates). @default 12 */ idleSeconds?: number;
  /** Seconds of churn while the mapper is asked. @default 5 */ churnSeconds?: number;
  /** Relay sessions started per second, all workers together; 0 = every member at once (a relay
   *  failover's worst case). @default 0 up to 20,000 members, else 400 (2/3 of the two relays' AUTH budget) */
  sessionRate?: number;
  log?: (s: string) => void;
}

export interface ChangeResult {
  change: string;
  watchers: number;
  seen: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  redisOps: number;
  coordinatorCpuMs: number;
  signatures: number;
  signedAnswers: number;
}

export interface ScaleResult {
  members: number;
  controllers: number;
  workers: number;
  /** Coordinators: two take the joins, all of them carry watchers. */
  coordinators: number;
  joinsPerSec: number;
  joinP50Ms: number;
  joinP99Ms: number;
  joinErrors: number;
  /** Both coordinators' CPU during the joins ÷ joins: what a join costs them, whatever the load. */
  coordinatorCpuMsPerJoin: number;
  /** Worst p99 over the change kinds (a controller joining or leaving: every agent must see it). */
  changeToAllWatchersP99Ms: number;
  /** Mean over all measured changes, idle background subtracted. */
  redisOpsPerChange: number;
  coordinatorCpuMsPerChange: number;
  coordinatorRssMb: number;
  relayRssMb: number;
  relaySessions: number;
  /** Seconds until every member's relay session was up (or the wait ended: see relaySessions). */
  relaySessionsSec: number;
  /** Sessions started per second (0: all at once). */
  relaySessionRate: number;
  /** Members whose relay session was up at the end of the run. */
  relaySessionsAtEnd: number;
  /** Both relays' RSS at steady state (after the idle window) − before any session, ÷ sessions: an upper bound. */
  relayBytesPerIdleSession: number;
  /** The same, right after the last session came up (the AUTH burst's garbage and heap growth included). */
  relayBytesPerSessionAfterBurst: number;
  /** Both relays' V8 heap in use after a full GC (inspector), steady state − before, ÷ sessions: what a session costs live. */
  relayHeapBytesPerIdleSession: number;
  /** The same right after the burst (the relay's single-use challenge sets still held). */
  relayHeapBytesPerSessionAfterBurst: number;
  relayPacketsPerSecIdle: number;
  relayPacketsPerSecIdlePerMember: number;
  /** Of relayPacketsPerSecIdle: probes (a member heard no PONG within 300 ms and asked again). */
  relayProbesPerSecIdle: number;
  agentPeers: number;
  agentRssMbPerPeer: number;
  /** The same, V8 heap in use after gc() instead of RSS. */
  agentHeapMbPerPeer: number;
  agentFullApplyMs: number;
  agentApplyDeltaMs: number;
  agentApplyDeltaMaxMs: number;
  agentIdleCpuMsPerSec: number;
  /** Lookups/s while members churn, the mapper's cache warm (every address asked once first). */
  mapperLookupsPerSec: number;
  /** The warm-up pass: lookups/s with a cold cache (every lookup a miss: one Redis round trip each). */
  mapperColdLookupsPerSec: number;
  mapperLookupErrors: number;
  churnChangesPerSec: number;
  idleRedisOpsPerSec: number;
  /** Of which the relays' session refreshes (every 10 s per session). */
  idleRefreshRedisOpsPerSec: number;
  idleCoordinatorCpuMsPerSec: number;
  changes: ChangeResult[];
  /** Wall clock per phase (setup, joins, agent, sessions, watch, settle, idle, changes, churn). */
  phaseSeconds: Record<string, number>;
  seconds: number;
  /** Load average (1 min) at the start and the end. */
  loadAverage: [number, number];
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
}

async function freeTcpPort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => res(p)); });
    s.on('error', rej);
  });
}

async function freeUdpPort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
    s.on('error', rej);
  });
}

/** utime + stime of a process, ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 10; // clock ticks of 10 ms
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * Redis commands run so far, all clients (INFO commandstats counts commands inside scripts too),
 * and those of the relays' periodic session refresh apart: each refresh is one EVAL (only the
 * relays use plain EVAL; ioredis runs the coordinators' scripts with EVALSHA) running HGET and
 * PEXPIRE (relay/redis-directory.ts REFRESH_IF_OURS), so it is 3 commands per EVAL.
 */
async function redisCalls(r: Redis): Promise<{ all: number; refresh: number; other: number }> {
  let all = 0;
  let evals = 0;
  for (const line of (await r.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (!m) continue;
    all += Number(m[2]);
    if (m[1] === 'eval') evals += Number(m[2]);
  }
  all -= 1; // this INFO
  return { all, refresh: 3 * evals, other: all - 3 * evals };
}

async function metric(url: string, name: string): Promise<number> {
  let res: Response | undefined;
  // Once more on a connection error: a kept-alive socket the daemon closed at the same moment
  // (ECONNRESET under load) says nothing about the daemon. A second failure is reported.
  for (let attempt = 0; !res; attempt++) {
    try {
      res = await fetch(`${url}/metrics`);
    } catch (err) {
      if (attempt === 0) continue;
      throw new Error(`${url}/metrics: ${(err as Error).message} (${String((err as { cause?: Error }).cause?.message ?? '')})`);
    }
  }
  const text = await res.text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** The soft and hard `ulimit -n` of this process (its children inherit them). */
function fdLimit(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const n = (x: string | undefined) => (x === undefined || x === 'unlimited' ? Infinity : Number(x));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/**
 * V8 heap in use after a full GC in another Node process started with `--inspect=127.0.0.1:0`
 * (bench only: the relays run with it so their heap can be read; loopback, this run's processes).
 */
async function heapAfterGc(wsUrl: string): Promise<number> {
  const ws = new WebSocket(wsUrl);
  try {
    await new Promise<void>((res, rej) => { ws.onopen = () => res(); ws.onerror = () => rej(new Error(`inspector ${wsUrl}: cannot connect`)); });
    const pending = new Map<number, (m: { result?: unknown; error?: { message: string } }) => void>();
    ws.onmessage = (ev) => {
      const m = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string } };
      if (m.id !== undefined) pending.get(m.id)?.(m);
    };
    let id = 0;
    const call = <T>(method: string) => new Promise<T>((res, rej) => {
      const i = ++id;
      pending.set(i, (m) => (m.error ? rej(new Error(`${method}: ${m.error.message}`)) : res(m.result as T)));
      ws.send(JSON.stringify({ id: i, method }));
    });
    await call('HeapProfiler.collectGarbage');
    return (await call<{ usedSize: number }>('Runtime.getHeapUsage')).usedSize;
  } finally {
    ws.close();
  }
}

class Worker {
  readonly child: ChildProcess;
  private waiting: Array<{ type: string; resolve: (m: FromWorker) => void }> = [];

  constructor() {
    this.child = fork(resolve(__dirname, 'scale-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromWorker) => {
      const i = this.waiting.findIndex((w) => w.type === m.type);
      if (i >= 0) this.waiting.splice(i, 1)[0].resolve(m);
    });
  }

  ask<T extends FromWorker['type']>(msg: ToWorker, type: T): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((res, rej) => {
      const onExit = (code: number | null, sig: string | null) => rej(new Error(`scale worker ${this.child.pid} exited (${sig ?? `code ${code}`}${sig === 'SIGKILL' ? ': out of memory?' : ''})`));
      this.child.once('exit', onExit);
      this.waiting.push({ type, resolve: (m) => { this.child.off('exit', onExit); res(m as Extract<FromWorker, { type: T }>); } });
      this.child.send(msg);
    });
  }
}

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const log = o.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const N = o.members;
  const W = o.workers ?? Math.max(4, Math.ceil(N / 8000));
  const K = o.coordinators ?? Math.max(2, Math.ceil(N / 14_000));
  if (K < 2) throw new Error('--coordinators: at least 2 (joins go through two)');
  const C = o.controllers ?? Math.min(50, Math.max(5, Math.round(N / 200)));
  const joinConcurrency = 16;
  // What limits N here, before anything starts: the per-process fd limit (it cannot be raised
  // without root). A worker holds a UDP socket and a TCP long-poll per member; a coordinator a
  // TCP connection per member watching it, plus the joins in flight.
  const lim = fdLimit();
  const perWorker = 2 * Math.ceil(N / W) + joinConcurrency + 100;
  const perCoordinator = Math.ceil(N / K) + Math.ceil((W * joinConcurrency) / 2) + 100;
  if (perWorker > lim.soft) {
    throw new Error(`N=${N} does not fit in ${W} workers: each needs ~${perWorker} file descriptors (a UDP socket and a TCP long-poll per member), `
      + `over ulimit -n ${lim.soft} (hard ${lim.hard}); use --workers ${Math.ceil((2 * N) / (lim.soft - joinConcurrency - 200))} or more`);
  }
  if (perCoordinator > lim.soft) {
    throw new Error(`N=${N} does not fit on ${K} coordinators: each needs ~${perCoordinator} file descriptors (one long-poll connection per member), `
      + `over ulimit -n ${lim.soft} (hard ${lim.hard}); use --coordinators ${Math.ceil(N / (lim.soft - 2000))} or more`);
  }
  const t00 = Date.now();
  const load0 = loadavg()[0];
  const phase: Record<string, number> = {};
  let tPhase = performance.now();
  const lap = (name: string) => { const t = performance.now(); phase[name] = Math.round((t - tPhase) / 100) / 10; tPhase = t; };
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-scale-'));
  const procs: ManagedProcess[] = [];
  const workers: Worker[] = [];
  let agentChild: ChildProcess | undefined;
  let redis: RedisHandle | undefined;
  let r: Redis | undefined;
  // Ctrl-C or a kill: end everything this run started, by PID, and remove its files.
  const onSignal = (sig: NodeJS.Signals) => {
    for (const w of workers) try { w.child.kill('SIGKILL'); } catch { /* gone */ }
    try { agentChild?.kill('SIGKILL'); } catch { /* gone */ }
    for (const p of procs) p.stopSync(500);
    try { if (redis?.process.pid) process.kill(redis.process.pid, 'SIGKILL'); } catch { /* gone */ }
    if (redis) rmSync(redis.dir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`bench:scale: ${sig}, everything it started is stopped\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    redis = await startRedis();
    r = new Redis(redis.url);
    const admin = 'scale-admin-' + generateSigningKey().publicKey.replace(/[^A-Za-z0-9]/g, '');
    writeFileSync(join(dir, 'admin.token'), admin, { mode: 0o600 });
    const sk = generateSigningKey();
    writeFileSync(join(dir, 'signing.key'), sk.pem, { mode: 0o600 });

    // Daemons, each a real CLI process.
    const coords: Array<{ url: string; metrics: string; p: ManagedProcess }> = [];
    for (let i = 0; i < K; i++) {
      const [port, mport] = [await freeTcpPort(), await freeTcpPort()];
      const p = new ManagedProcess(process.execPath, [CLI, 'coordinator', '--listen', `127.0.0.1:${port}`, '--redis', redis.url,
        '--admin-token-file', join(dir, 'admin.token'), '--signing-key', join(dir, 'signing.key'), '--metrics', `127.0.0.1:${mport}`,
        // Every simulated member joins from 127.0.0.1: the per-source limits would measure themselves.
        '--rate-limit-join', '0', '--rate-limit-challenge', '0', '--rate-limit-admin', '0', '--admin-auth-failures', '0'], { name: `coordinator-${i}` });
      procs.push(p);
      coords.push({ url: `http://127.0.0.1:${port}`, metrics: `http://127.0.0.1:${mport}`, p });
    }
    const relays: Array<{ ip: string; port: number; p: ManagedProcess; inspector: string }> = [];
    for (let i = 0; i < 2; i++) {
      const port = await freeUdpPort();
      // --inspect on loopback, bench only: to read the relay's heap after a GC (heapAfterGc).
      const p = new ManagedProcess(process.execPath, ['--inspect=127.0.0.1:0', CLI, 'relay', '--listen', `127.0.0.1:${port}`, '--redis', redis.url, '--id', `scale-relay-${i}`,
        '--stats-interval', '0'], { name: `relay-${i}` });
      procs.push(p);
      const inspector = /(ws:\/\/127\.0\.0\.1:\d+\/\S+)/.exec(await p.waitForLine(/Debugger listening on ws:/, 15_000))![1];
      relays.push({ ip: '127.0.0.1', port, p, inspector });
    }
    const mport = await freeTcpPort();
    const mapper = new ManagedProcess(process.execPath, [CLI, 'mapper', '--redis', redis.url, '--api', `127.0.0.1:${mport}`], { name: 'mapper' });
    procs.push(mapper);
    for (const c of coords) {
      for (let k = 0; ; k++) {
        if (await fetch(`${c.url}/v1/health`).then((x) => x.ok, () => false)) break;
        if (c.p.exited || k > 100) throw new Error(`${c.p.name} did not come up: ${c.p.output().slice(-800)}`);
        await sleep(100);
      }
    }
    for (const x of relays) await x.p.waitForLine(/relay ready/, 15_000);
    for (let k = 0; !(await fetch(`http://127.0.0.1:${mport}/healthz`).then((x) => x.ok, () => false)); k++) {
      if (mapper.exited || k > 100) throw new Error(`mapper did not come up: ${mapper.output().slice(-800)}`);
      await sleep(100);
    }
    const adm = new CoordinatorClient({ url: coords[0].url, insecure: true, adminToken: admin });
    await adm.setPolicy({ rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: ['tcp/22'] }] });
    const tokens: Record<Role, string> = {
      agent: (await adm.createToken({ uses: -1, tags: ['agent'], originalCidrs: ['10.0.0.0/8'] })).token,
      controller: (await adm.createToken({ uses: -1, tags: ['controller'], originalCidrs: ['10.0.0.0/8'] })).token,
    };
    // Baselines after a full GC (the relays' start-up garbage is not counted as sessions' cost).
    const relayHeap0 = await Promise.all(relays.map((x) => heapAfterGc(x.inspector)));
    const relayRss0 = relays.map((x) => rssMb(x.p.pid));

    // Members: controllers spread over the index range, the rest agents; split round-robin.
    const roleOf = (i: number): Role => (i % Math.ceil(N / C) === 0 ? 'controller' : 'agent');
    const lists: WorkerInit['members'][] = Array.from({ length: W }, () => []);
    for (let i = 1; i <= N; i++) lists[i % W].push({ i, role: roleOf(i) });
    const nControllers = lists.flat().filter((m) => m.role === 'controller').length;
    log(`N=${N}: ${nControllers} controllers, ${N - nControllers} agents, ${W} worker processes (~${perWorker} fds each), `
      + `${K} coordinators (joins through 2; ~${perCoordinator} fds each), ulimit -n ${lim.soft}, load average ${load0.toFixed(1)}`);
    for (let w = 0; w < W; w++) workers.push(new Worker());
    await Promise.all(workers.map((w, k) => w.ask({ cmd: 'init', init: {
      coordUrls: coords.map((c) => c.url), joinUrls: coords.slice(0, 2).map((c) => c.url), sourceIp: `127.0.1.${k + 1}`,
      relays: relays.map(({ ip, port }) => ({ ip, port })), signingKey: sk.publicKey, tokens,
      members: lists[k], joinConcurrency } }, 'ready')));
    lap('setup');

    // 1. Joins through the API, two coordinators.
    const tj = performance.now();
    const joinCoords = coords.slice(0, 2);
    const cpuJ0 = joinCoords.reduce((a, c) => a + cpuMs(c.p.pid), 0);
    const joined = await Promise.all(workers.map((w) => w.ask({ cmd: 'join' }, 'joined')));
    const joinSec = (performance.now() - tj) / 1000;
    const lat = joined.flatMap((j) => j.latencies);
    const joinErrors = joined.reduce((a, j) => a + j.errors, 0);
    if (joinErrors) log(`  join errors: ${joinErrors} (first: ${joined.find((j) => j.firstError)?.firstError})`);
    const joinsPerSec = lat.length / joinSec;
    const coordinatorCpuMsPerJoin = (joinCoords.reduce((a, c) => a + cpuMs(c.p.pid), 0) - cpuJ0) / Math.max(1, lat.length);
    lap('joins');
    log(`  joins: ${lat.length} in ${joinSec.toFixed(1)} s = ${joinsPerSec.toFixed(0)}/s, p50 ${pct(lat, 0.5).toFixed(0)} ms, p99 ${pct(lat, 0.99).toFixed(0)} ms, `
      + `coordinators ${coordinatorCpuMsPerJoin.toFixed(2)} ms CPU per join (so ${(2000 / coordinatorCpuMsPerJoin).toFixed(0)} joins/s on two free cores)`);

    // 2. The controller running the real agent code (sees every agent).
    agentChild = fork(resolve(__dirname, 'scale-agent.js'), [], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const agentAsk = <T extends FromAgent['type']>(m: ToAgent, type: T) => new Promise<Extract<FromAgent, { type: T }>>((res, rej) => {
      const on = (x: FromAgent) => {
        if (x.type === 'error') { agentChild!.off('message', on); rej(new Error(`scale agent: ${x.message}`)); } else if (x.type === type) { agentChild!.off('message', on); res(x as Extract<FromAgent, { type: T }>); }
      };
      agentChild!.on('message', on);
      agentChild!.send(m);
    });
    const started = await agentAsk({ cmd: 'start', coordUrl: coords[1].url, signingKey: sk.publicKey, token: tokens.controller, originalIp: '10.255.255.254' }, 'started');
    log(`  agent (controller view): ${started.peers} peers, full map applied in ${started.fullApplyMs.toFixed(0)} ms, ${(started.rssPerPeerMb * 1024).toFixed(2)} KB RSS `
      + `and ${(started.heapPerPeerMb * 1024).toFixed(2)} KB heap per peer`);
    lap('agent');

    // 3. Relay sessions.
    const ts = performance.now();
    const rate = o.sessionRate ?? (N > 20_000 ? 400 : 0);
    const sess = await Promise.all(workers.map((w) => w.ask({ cmd: 'sessions', timeoutMs: 60_000 + N * 12 + (rate ? (N / rate) * 1000 : 0), perSecond: rate / W }, 'sessions')));
    const ready = sess.reduce((a, s) => a + s.ready, 0);
    const relaySessionsSec = (performance.now() - ts) / 1000;
    log(`  relay sessions: ${ready}/${sess.reduce((a, s) => a + s.total, 0)} ready in ${relaySessionsSec.toFixed(1)} s `
      + (rate ? `(started at ${rate}/s)` : '(every member authenticating at once: a relay failover\'s worst case)'));
    const sessErrors = sess.reduce((a, s) => a + s.errors, 0);
    if (sessErrors) log(`  WARNING: ${sessErrors} members could not open their UDP socket (first: ${sess.find((s) => s.firstError)?.firstError})`);
    await sleep(2000);
    const sumRss = () => relays.reduce((a, x) => a + rssMb(x.p.pid), 0);
    const rss0 = relayRss0[0] + relayRss0[1];
    const relayBytesPerSessionAfterBurst = ((sumRss() - rss0) * 2 ** 20) / Math.max(1, ready);
    const heapBurst = await Promise.all(relays.map((x) => heapAfterGc(x.inspector)));
    const relayHeapBytesPerSessionAfterBurst = (heapBurst[0] + heapBurst[1] - relayHeap0[0] - relayHeap0[1]) / Math.max(1, ready);
    log(`  relays right after the burst: ${(relayBytesPerSessionAfterBurst / 1024).toFixed(2)} KB RSS, ${relayHeapBytesPerSessionAfterBurst.toFixed(0)} bytes heap after a GC per session`);
    lap('sessions');

    // 4. Watches: wait until every member's long-poll waits at a coordinator.
    await Promise.all(workers.map((w) => w.ask({ cmd: 'watch' }, 'watching')));
    const watchersExpected = lat.length + 1;
    const tw = performance.now();
    for (;;) {
      const n = (await Promise.all(coords.map((c) => metric(c.metrics, 'isthmus_coordinator_peer_map_watchers')))).reduce((a, b) => a + b, 0);
      const waited = (performance.now() - tw) / 1000;
      if (n >= watchersExpected) {
        log(`  every member watching after ${waited.toFixed(1)} s`);
        lap('watch');
        break;
      }
      if (waited > Math.min(240, 60 + N / 200)) {
        log(`  WARNING: only ${n} of ${watchersExpected} long-polls waiting after ${waited.toFixed(0)} s; measuring anyway`);
        lap('watch');
        break;
      }
      await sleep(250);
    }

    // Settle: the first polls of members that joined long ago catch up (deltas over thousands of
    // entries, or full maps); measure only once the Redis work that is not relay refreshes is quiet.
    const tq = performance.now();
    for (let prev = await redisCalls(r); ;) {
      await sleep(2000);
      const cur = await redisCalls(r);
      const rate = (cur.other - prev.other) / 2;
      prev = cur;
      const waited = (performance.now() - tq) / 1000;
      if (rate < Math.max(20, N / 200) || waited > 180) {
        log(`  settled after ${waited.toFixed(0)} s (${rate.toFixed(0)} Redis ops/s besides relay refreshes)`);
        lap('settle');
        break;
      }
    }

    // 5. Idle: keepalive load and the background rates subtracted from each change.
    const stats = async () => (await Promise.all(workers.map((w) => w.ask({ cmd: 'stats' }, 'stats'))));
    const sumPings = (s: Awaited<ReturnType<typeof stats>>) => s.reduce((a, x) => a + x.pingsSent, 0);
    const sumProbes = (s: Awaited<ReturnType<typeof stats>>) => s.reduce((a, x) => a + x.probesSent, 0);
    // Two keepalive periods: every idle member sends the same number of PINGs whatever its phase
    // (a window that is not a multiple of the period counts some members once, some twice).
    const idleSec = o.idleSeconds ?? 20;
    const coordCpu = () => coords.reduce((a, c) => a + cpuMs(c.p.pid), 0);
    const st0 = await stats();
    const i0 = { pings: sumPings(st0), probes: sumProbes(st0), ops: await redisCalls(r), cpu: coordCpu(), t: performance.now(), agent: (await agentAsk({ cmd: 'report' }, 'report')).cpuMs };
    await sleep(idleSec * 1000);
    const st1 = await stats();
    const i1 = { pings: sumPings(st1), probes: sumProbes(st1), ops: await redisCalls(r), cpu: coordCpu(), t: performance.now(), agent: (await agentAsk({ cmd: 'report' }, 'report')).cpuMs };
    const idleS = (i1.t - i0.t) / 1000;
    // Each worker's PINGs over its own clock between its two counts (not the parent's, which reads
    // the other counters after them).
    const relayPacketsPerSecIdle = st1.reduce((a, x, k) => a + (x.pingsSent - st0[k].pingsSent) / ((x.at - st0[k].at) / 1000), 0);
    const relayProbesPerSecIdle = (i1.probes - i0.probes) / idleS;
    const idleRedisOpsPerSec = (i1.ops.all - i0.ops.all) / idleS;
    const idleRefreshOpsPerSec = (i1.ops.refresh - i0.ops.refresh) / idleS;
    const idleOtherOpsPerSec = (i1.ops.other - i0.ops.other) / idleS;
    const idleCpuPerSec = (i1.cpu - i0.cpu) / idleS;
    const agentIdleCpuMsPerSec = (i1.agent - i0.agent) / idleS;
    log(`  idle: ${relayPacketsPerSecIdle.toFixed(0)} PINGs/s to the relays (${(relayPacketsPerSecIdle / N).toFixed(3)} per member; `
      + `${relayProbesPerSecIdle.toFixed(0)}/s of them probes: a PONG not read within 300 ms), `
      + `${idleRedisOpsPerSec.toFixed(0)} Redis ops/s (${idleRefreshOpsPerSec.toFixed(0)} of them relay session refreshes), coordinators ${idleCpuPerSec.toFixed(1)} ms CPU/s, agent ${agentIdleCpuMsPerSec.toFixed(2)} ms CPU/s`);
    // The relays at steady state: every session up and idle, two refresh cycles past, the AUTH
    // burst's single-use challenge sets rotated out.
    const relayBytesPerIdleSession = ((sumRss() - rss0) * 2 ** 20) / Math.max(1, ready);
    const relayHeap1 = await Promise.all(relays.map((x) => heapAfterGc(x.inspector)));
    const relayHeapBytesPerIdleSession = (relayHeap1[0] + relayHeap1[1] - relayHeap0[0] - relayHeap0[1]) / Math.max(1, ready);
    log(`  relays: ${(relayBytesPerIdleSession / 1024).toFixed(2)} KB RSS per idle session (${(relayBytesPerSessionAfterBurst / 1024).toFixed(2)} KB right after the AUTH burst), `
      + `${relayHeapBytesPerIdleSession.toFixed(0)} bytes heap per session after a GC`);
    lap('idle');

    // 6. Changes, one at a time: each must reach every member that should see it.
    let probeId = 0;
    let freshIdx = N + 1;
    const changes: ChangeResult[] = [];
    const sigs = async () => {
      const v = await Promise.all(coords.map(async (c) => [await metric(c.metrics, 'isthmus_coordinator_answer_signatures_total'),
        await metric(c.metrics, 'isthmus_coordinator_signed_answers_total')]));
      return { signatures: v.reduce((a, x) => a + x[0], 0), answers: v.reduce((a, x) => a + x[1], 0) };
    };
    const measure = async (name: string, p: Omit<Probe, 'id'>, change: () => Promise<void>): Promise<void> => {
      const probe: Probe = { ...p, id: ++probeId };
      await Promise.all(workers.map((w) => w.ask({ cmd: 'probe', probe }, 'probe-ack')));
      const s0 = await sigs();
      const ops0 = await redisCalls(r!);
      const cpu0 = coordCpu();
      const t0 = now();
      const tp = performance.now();
      await change();
      let times: number[] = [];
      let of = 0;
      for (let k = 0; ; k++) {
        await sleep(k < 20 ? 50 : 250);
        const res = await Promise.all(workers.map((w) => w.ask({ cmd: 'probe-result', id: probe.id }, 'probe-result')));
        times = res.flatMap((x) => x.times);
        of = res.reduce((a, x) => a + x.of, 0);
        if (times.length >= of || performance.now() - tp > 60_000) break;
      }
      // Let the re-polls (jittered up to 250 ms) land before reading the counters.
      await sleep(500);
      const win = (performance.now() - tp) / 1000;
      // Without the relays' session refreshes (counted apart) and the rest of the idle background.
      const ops = (await redisCalls(r!)).other - ops0.other - idleOtherOpsPerSec * win;
      const cpu = coordCpu() - cpu0 - idleCpuPerSec * win;
      const s1 = await sigs();
      const d = times.map((x) => x - t0);
      const c: ChangeResult = { change: name, watchers: of, seen: times.length, p50Ms: pct(d, 0.5), p99Ms: pct(d, 0.99), maxMs: Math.max(...d),
        redisOps: Math.max(0, ops), coordinatorCpuMs: Math.max(0, cpu), signatures: s1.signatures - s0.signatures, signedAnswers: s1.answers - s0.answers };
      changes.push(c);
      log(`  ${name.padEnd(16)} seen by ${c.seen}/${c.watchers} (${p.watchers}s) p50 ${c.p50Ms.toFixed(0)} ms p99 ${c.p99Ms.toFixed(0)} ms, `
        + `${c.redisOps.toFixed(0)} Redis ops, ${c.coordinatorCpuMs.toFixed(0)} ms coordinator CPU, ${c.signatures} signatures for ${c.signedAnswers} answers`);
    };
    const fresh = (role: Role) => {
      const i = freshIdx++;
      const { privateKey, publicKey } = generateKeyPairSync('x25519');
      return { role, i, privateKey: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32)),
        publicKey: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)) };
    };
    const client = new CoordinatorClient({ url: coords[0].url, insecure: true, answers: { pinned: sk.publicKey } });
    const joinFresh = async (m: ReturnType<typeof fresh>) => client.join({ privateKey: m.privateKey, publicKey: m.publicKey, token: tokens[m.role],
      originalIp: originalIpOf(m.i), hostname: `scale-${m.role}-${m.i}` });
    const keyOf = (m: ReturnType<typeof fresh>) => Buffer.from(m.publicKey).toString('base64');
    for (let rep = 0; rep < 3; rep++) {
      const a = fresh('agent');
      let vip = '';
      let session = '';
      await measure('agent joins', { publicKey: keyOf(a), vip: '', kind: 'present', watchers: 'controller' }, async () => {
        const j = await joinFresh(a);
        vip = j.vip;
        session = j.sessionToken;
      });
      await measure('agent tags', { vip, kind: 'tag', tag: `blue${rep}`, watchers: 'controller' }, async () => { await adm.setNodeTags(vip, { add: [`blue${rep}`] }); });
      await measure('agent leaves', { vip, kind: 'absent', watchers: 'controller' }, async () => { await client.leave(session); });
    }
    for (let rep = 0; rep < 2; rep++) {
      const c = fresh('controller');
      let vip = '';
      let session = '';
      await measure('controller joins', { publicKey: keyOf(c), vip: '', kind: 'present', watchers: 'agent' }, async () => {
        const j = await joinFresh(c);
        vip = j.vip;
        session = j.sessionToken;
      });
      await measure('controller leaves', { vip, kind: 'absent', watchers: 'agent' }, async () => { await client.leave(session); });
    }

    lap('changes');

    // 7. The mapper while members churn (agents joining and leaving, ~20 changes/s).
    const churnSec = o.churnSeconds ?? 5;
    const pool = new Pool(`http://127.0.0.1:${mport}`, { connections: 16 });
    let lookups = 0;
    let lookupErrors = 0;
    let churned = 0;
    // Warm-up: the addresses the lookups below ask for (x → 7919x + 13 mod N from 32 starts), each
    // once, so the churn window measures lookups under churn, not the cache filling.
    const lookupSet = new Set<number>();
    for (let k = 0; k < 32; k++) for (let x = k, i = 0; i < 4 * N; i++) { x = (x * 7919 + 13) % N; lookupSet.add(x); }
    const coldList = [...lookupSet];
    const tc = performance.now();
    await Promise.all(Array.from({ length: 32 }, async (_, k) => {
      for (let i = k; i < coldList.length; i += 32) {
        const res = await pool.request({ path: `/v1/map/${originalIpOf(coldList[i] + 1)}`, method: 'GET' });
        await res.body.text();
        if (res.statusCode !== 200) lookupErrors++;
      }
    }));
    const mapperColdLookupsPerSec = coldList.length / ((performance.now() - tc) / 1000);
    const until = performance.now() + churnSec * 1000;
    const churn = (async () => {
      while (performance.now() < until) {
        const a = fresh('agent');
        const j = await joinFresh(a);
        await client.leave(j.sessionToken);
        churned += 2;
        await sleep(100);
      }
    })();
    await Promise.all([churn, ...Array.from({ length: 32 }, async (_, k) => {
      let x = k;
      while (performance.now() < until) {
        x = (x * 7919 + 13) % N;
        const res = await pool.request({ path: `/v1/map/${originalIpOf(x + 1)}`, method: 'GET' });
        await res.body.text();
        if (res.statusCode === 200) lookups++; else lookupErrors++;
      }
    })]);
    await pool.close();
    const mapperLookupsPerSec = lookups / churnSec;
    log(`  mapper: ${mapperLookupsPerSec.toFixed(0)} lookups/s while ${(churned / churnSec).toFixed(0)} changes/s (${lookupErrors} not 200); `
      + `cold (warm-up, ${coldList.length} addresses): ${mapperColdLookupsPerSec.toFixed(0)} lookups/s`);

    lap('churn');
    const rep = await agentAsk({ cmd: 'report' }, 'report');
    const st = await stats();
    const relaySessionsAtEnd = st.reduce((a, x) => a + x.ready, 0);
    log(`  relay sessions up at the end: ${relaySessionsAtEnd}/${lat.length}`);
    const refused = st.reduce((a, x) => a + x.refusedAnswers, 0);
    const watchErrors = st.reduce((a, x) => a + x.watchErrors, 0);
    if (refused || watchErrors) log(`  WARNING: ${refused} answers refused by members, ${watchErrors} watch errors (first: ${st.find((x) => x.firstWatchError)?.firstWatchError})`);
    const worst = changes.reduce((a, c) => Math.max(a, c.p99Ms), 0);
    const res: ScaleResult = {
      members: N, controllers: nControllers, workers: W, coordinators: K,
      joinsPerSec, joinP50Ms: pct(lat, 0.5), joinP99Ms: pct(lat, 0.99), joinErrors, coordinatorCpuMsPerJoin,
      changeToAllWatchersP99Ms: worst,
      redisOpsPerChange: changes.reduce((a, c) => a + c.redisOps, 0) / changes.length,
      coordinatorCpuMsPerChange: changes.reduce((a, c) => a + c.coordinatorCpuMs, 0) / changes.length,
      coordinatorRssMb: Math.max(...coords.map((c) => rssMb(c.p.pid))),
      relayRssMb: Math.max(...relays.map((x) => rssMb(x.p.pid))),
      relaySessions: ready, relaySessionsSec, relaySessionRate: rate, relaySessionsAtEnd,
      relayBytesPerIdleSession, relayBytesPerSessionAfterBurst, relayHeapBytesPerIdleSession, relayHeapBytesPerSessionAfterBurst,
      relayPacketsPerSecIdle, relayPacketsPerSecIdlePerMember: relayPacketsPerSecIdle / N, relayProbesPerSecIdle,
      agentPeers: rep.peers, agentRssMbPerPeer: started.rssPerPeerMb, agentHeapMbPerPeer: started.heapPerPeerMb, agentFullApplyMs: started.fullApplyMs,
      agentApplyDeltaMs: pct(rep.deltaMs, 0.5), agentApplyDeltaMaxMs: Math.max(0, ...rep.deltaMs), agentIdleCpuMsPerSec,
      mapperLookupsPerSec, mapperColdLookupsPerSec, mapperLookupErrors: lookupErrors, churnChangesPerSec: churned / churnSec,
      idleRedisOpsPerSec, idleRefreshRedisOpsPerSec: idleRefreshOpsPerSec, idleCoordinatorCpuMsPerSec: idleCpuPerSec,
      changes, phaseSeconds: phase, seconds: (Date.now() - t00) / 1000, loadAverage: [load0, loadavg()[0]],
    };
    return res;
  } catch (err) {
    // Whatever stopped the run, say which daemon died and what it said last (EMFILE, out of memory...).
    for (const p of procs) if (p.exited) log(`  ${p.name} exited (${JSON.stringify(p.exitStatus)}): ${p.output().slice(-1500)}`);
    for (const w of workers) if (w.child.exitCode !== null || w.child.signalCode) log(`  scale worker ${w.child.pid} exited (${w.child.signalCode ?? w.child.exitCode})`);
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await Promise.all(workers.map((w) => w.ask({ cmd: 'stop' }, 'stopped').catch(() => undefined)));
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    if (agentChild && agentChild.exitCode === null) {
      agentChild.send({ cmd: 'stop' } satisfies ToAgent);
      await new Promise((res) => { const t = setTimeout(res, 3000); agentChild!.once('exit', () => { clearTimeout(t); res(undefined); }); });
      if (agentChild.exitCode === null) agentChild.kill('SIGKILL');
    }
    for (const p of procs) await p.stop();
    r?.disconnect();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const ns = (arg('members') ?? '1000,10000').split(',').map((s) => Number(s.trim()));
  if (ns.some((n) => !Number.isInteger(n) || n < 20)) throw new Error('--members: a comma-separated list of integers >= 20, e.g. 1000,10000');
  const workers = arg('workers') === undefined ? undefined : Number(arg('workers'));
  const sessionRate = arg('session-rate') === undefined ? undefined : Number(arg('session-rate'));
  if (sessionRate !== undefined && !(sessionRate >= 0)) throw new Error(`--session-rate: relay sessions started per second, 0 = all at once; got ${JSON.stringify(arg('session-rate'))}`);
  const coordinators = arg('coordinators') === undefined ? undefined : Number(arg('coordinators'));
  if (workers !== undefined && !(Number.isInteger(workers) && workers >= 1)) throw new Error(`--workers: a positive integer, got ${JSON.stringify(arg('workers'))}`);
  if (coordinators !== undefined && !(Number.isInteger(coordinators) && coordinators >= 2)) throw new Error(`--coordinators: an integer >= 2 (joins go through two), got ${JSON.stringify(arg('coordinators'))}`);
  const out = resolve(arg('out') ?? join(__dirname, '..', '..', 'bench', 'results', 'scale.json'));
  const results: ScaleResult[] = [];
  for (const n of ns) {
    const r = await runScale({ members: n, workers, coordinators, sessionRate });
    results.push(r);
    process.stdout.write(`N=${n} done in ${r.seconds.toFixed(0)} s: ${JSON.stringify({ ...r, changes: undefined })}\n`);
    mkdirSync(resolve(out, '..'), { recursive: true });
    writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  }
  process.stdout.write(`wrote ${out}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:scale failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
