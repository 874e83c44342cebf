/**
 * isthmus with its control plane on the shared topology: a private redis-server, a
 * coordinator and a relay (Redis-backed) on the hub's VIP; members join with a token.
 *
 *   hub:  redis-server 10.90.0.1:6379 · coordinator https://10.90.0.1:8080 · relay 10.90.0.1:7000
 *   vpc1, vpc2, m<i>:  isthmus agent --coordinator … --coordinator-ca … --token … --relay 10.90.0.1:7000
 *
 * The coordinators serve HTTPS with a certificate from a throwaway CA made in the overlay's
 * directory (tls-certs.ts) and sign peer maps with one shared key; members and admin commands
 * verify the certificate against that CA (`coordinatorArgs`) and pin the signing key.
 *
 * With `cluster: true` (a topology made with `relays: N`, N ≥ 2), the relays run in their own
 * namespaces behind the VIP's health-checked load balancer and mesh through Redis instead
 * (testbed/relay-cluster.ts), and two coordinators run beside r1 and r2 behind VIP:8080 (TCP
 * flow hash): members still only know the VIP.
 *
 * With `sentinel: true`, Redis is a master, a replica and three sentinels in the hub
 * (testbed/redis-sentinel.ts) and every daemon is given the sentinels (`redisArgs`) instead of
 * a URL. With `metrics: true`, each coordinator and relay serves `--metrics` (so /readyz) on
 * 127.0.0.1 in its own namespace (`metricsEndpoints`).
 *
 * Used by the demo and the netns tests of the control plane and the mapper.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Topology } from '../topology';
import type { ManagedProcess, RunResult } from '../procs';
import { cliPath } from './isthmus';
import { relayCluster, type RelayCluster } from '../relay-cluster';
import { makeCoordinatorTls, type CoordinatorTls } from '../tls-certs';
import { startRedisSentinelSet, type RedisSentinelSet } from '../redis-sentinel';

export const COORDINATOR_PORT = 8080;
export const JOINED_RELAY_PORT = 7000;
export const REDIS_PORT = 6379;
/** With `metrics: true`: where each coordinator and relay serves /metrics, /healthz, /readyz (127.0.0.1 in its namespace). */
export const COORDINATOR_METRICS_PORT = 9464;
export const RELAY_METRICS_PORT = 9465;

export interface JoinedOverlayOptions {
  logLevel?: string;
  cluster?: boolean;
  /** Redis behind three sentinels (master + replica in the hub); the daemons get `--redis-sentinel`. */
  sentinel?: boolean;
  /** `--metrics 127.0.0.1:PORT` on every coordinator and relay. */
  metrics?: boolean;
  /** Extra `isthmus coordinator` flags, e.g. ['--reassert-grace', '15s']. */
  coordinatorArgs?: string[];
}

export interface MetricsEndpoint {
  /** e.g. `coordinator1`, `relay-r2` */
  name: string;
  ns: string;
  /** `http://127.0.0.1:PORT`, reachable inside `ns` */
  url: string;
}

export interface JoinedMember {
  name: string;
  ns: string;
  originalIp: string;
  vip: string;
  /** Wall-clock ms at which the agent logged that the coordinator accepted its join. */
  joinedAtMs: number;
  stateDir: string;
  process: ManagedProcess;
}

export interface JoinOptions {
  /** Tags and the original-IP prefixes a member may claim come from the token (createToken's --tag, --original-cidr). */
  token?: string;
  /** The relay (HOST:PORT) it binds to, e.g. one relay of the cluster directly. @default the VIP */
  relay?: string;
  extraArgs?: string[];
}

export interface JoinedOverlay {
  dir: string;
  /** The redis-server (with `sentinel`: the first master). */
  redis: ManagedProcess;
  /** With `sentinel: true`. */
  sentinel: RedisSentinelSet | undefined;
  /** The Redis flags the daemons were given: `--redis URL`, or the sentinels. */
  redisArgs: string[];
  /** With `metrics: true`, one per coordinator and relay. */
  metricsEndpoints: MetricsEndpoint[];
  /** The first coordinator (of two in cluster mode). */
  coordinator: ManagedProcess;
  coordinators: ManagedProcess[];
  /** The hub's relay, or relay r1 of the cluster. */
  relay: ManagedProcess;
  /** Set in cluster mode. */
  cluster: RelayCluster | undefined;
  coordinatorUrl: string;
  /** How a CLI command reaches the coordinator: `--coordinator URL --coordinator-ca FILE`. */
  coordinatorArgs: string[];
  /** The coordinators' CA, certificate and signing key. */
  tls: CoordinatorTls;
  /** The (first) master's URL. */
  redisUrl: string;
  relayAddr: string;
  adminToken: string;
  members: Map<string, JoinedMember>;
  /** `isthmus token create` from vpc1, as the admin; returns the token. */
  createToken(args?: string[]): Promise<string>;
  /**
   * `isthmus <args…> --coordinator <VIP> --coordinator-ca <CA>` from vpc1 with the admin token (e.g. `['policy', 'set', file]`,
   * `['node', 'list', '--json']`); `input` goes to its stdin. Resolves with its exit code and output, never throws on a refusal.
   */
  admin(args: string[], input?: string): Promise<RunResult>;
  /**
   * Start an agent in `ns` that joins as `name`; resolves once it holds a relay session.
   * `originalIp` must be the address `ns` reaches the coordinator from (the VIP's DNAT keeps
   * the source), or inside the token's --original-cidr.
   */
  join(name: string, ns: string, originalIp: string, opts?: JoinOptions): Promise<JoinedMember>;
  /** Start the coordinator(s) again after a test killed them. */
  restartCoordinator(): Promise<void>;
  stop(): Promise<void>;
}

export async function startJoinedOverlay(topo: Topology, opts: JoinedOverlayOptions = {}): Promise<JoinedOverlay> {
  const cli = cliPath();
  const dir = mkdtempSync(join(tmpdir(), `${topo.prefix}-joined-`));
  // Readiness is read from info-level log lines.
  const env = { ...process.env, ISTHMUS_LOG_LEVEL: opts.logLevel ?? 'info' };
  const vip = topo.addr.vip;
  const redisUrl = `redis://${vip}:${REDIS_PORT}`;
  const coordinatorUrl = `https://${vip}:${COORDINATOR_PORT}`;
  const relayAddr = `${vip}:${JOINED_RELAY_PORT}`;
  const adminToken = randomBytes(24).toString('base64url');
  const hub = topo.ns.hub;

  let redis: ManagedProcess;
  let sentinel: RedisSentinelSet | undefined;
  let redisArgs = ['--redis', redisUrl];
  if (opts.sentinel) {
    sentinel = await startRedisSentinelSet(topo, hub, vip, join(dir, 'redis'));
    redis = sentinel.servers.get(REDIS_PORT)!;
    redisArgs = sentinel.daemonArgs;
    await sentinel.waitHealthy();
  } else {
    redis = topo.spawn(hub, 'redis-server', ['--port', String(REDIS_PORT), '--bind', vip, '--save', '', '--appendonly', 'no',
      '--dir', dir, '--protected-mode', 'no'], { name: 'redis-server' });
    await topo.waitForListen(hub, REDIS_PORT, 'tcp');
  }
  // Stateless coordinators: on the hub's VIP, or (cluster) one beside each of r1, r2 behind the VIP.
  const coordinatorHosts = opts.cluster ? [0, 1].map((i) => ({ ns: topo.ns.relays[i], ip: topo.addr.relays[i] })) : [{ ns: hub, ip: vip }];
  if (opts.cluster && coordinatorHosts.some((h) => !h.ns)) throw new Error('cluster mode needs a topology with at least 2 relays');
  const tls = makeCoordinatorTls(join(dir, 'tls'), [vip, ...coordinatorHosts.map((h) => h.ip)]);
  const coordinatorArgs = ['--coordinator', coordinatorUrl, '--coordinator-ca', tls.ca];
  const metricsArgs = (port: number): string[] => (opts.metrics ? ['--metrics', `127.0.0.1:${port}`] : []);
  const metricsEndpoints: MetricsEndpoint[] = [];
  if (opts.metrics) {
    coordinatorHosts.forEach((h, i) => metricsEndpoints.push({ name: `coordinator${i + 1}`, ns: h.ns, url: `http://127.0.0.1:${COORDINATOR_METRICS_PORT}` }));
    const relayNs = opts.cluster ? topo.ns.relays.map((ns, i) => ({ name: `relay-r${i + 1}`, ns })) : [{ name: 'relay', ns: hub }];
    for (const r of relayNs) metricsEndpoints.push({ ...r, url: `http://127.0.0.1:${RELAY_METRICS_PORT}` });
  }
  const startCoordinators = async () => {
    const procs = coordinatorHosts.map((h, i) => topo.spawn(h.ns, process.execPath, [cli, 'coordinator', ...redisArgs,
      '--listen', `${h.ip}:${COORDINATOR_PORT}`, '--tls-cert', tls.cert, '--tls-key', tls.key, '--signing-key', tls.signingKey,
      ...metricsArgs(COORDINATOR_METRICS_PORT), ...(opts.coordinatorArgs ?? [])], { name: `coordinator${i + 1}`, env: { ...env, ISTHMUS_ADMIN_TOKEN: adminToken } }));
    for (const h of coordinatorHosts) await topo.waitForListen(h.ns, COORDINATOR_PORT, 'tcp');
    return procs;
  };
  let coordinators = await startCoordinators();
  if (opts.cluster) await topo.setVipBackends('tcp', COORDINATOR_PORT, coordinatorHosts.map((h) => h.ip));
  let relay: ManagedProcess;
  let cluster: RelayCluster | undefined;
  if (opts.cluster) {
    cluster = relayCluster(topo, { cli, redisUrl, redisArgs, dir, env, extraArgs: () => metricsArgs(RELAY_METRICS_PORT) });
    await cluster.start();
    relay = cluster.relays[1]!;
  } else {
    relay = topo.spawn(hub, process.execPath, [cli, 'relay', '--listen', relayAddr, ...redisArgs, '--id', 'relay1', ...metricsArgs(RELAY_METRICS_PORT)],
      { name: 'relay', env });
    await topo.waitForListen(hub, JOINED_RELAY_PORT, 'udp');
  }

  const members = new Map<string, JoinedMember>();
  const overlay: JoinedOverlay = {
    dir, redis, sentinel, redisArgs, metricsEndpoints, relay, cluster, coordinatorUrl, coordinatorArgs, tls, redisUrl, relayAddr, adminToken, members,
    get coordinator() {
      return coordinators[0];
    },
    get coordinators() {
      return coordinators;
    },
    async createToken(args = []) {
      const uses = args.includes('--uses') ? [] : ['--uses', '100'];
      const r = await overlay.admin(['token', 'create', ...uses, ...args]);
      if (r.code !== 0) throw new Error(`token create: ${r.stderr.trim()}`);
      return r.stdout.trim().split('\n').pop()!.trim();
    },
    admin(args, input) {
      // From a VPC, like an admin: the VIP's load balancer only sees traffic that arrives at the hub.
      return topo.exec(topo.ns.vpc1, process.execPath, [cli, ...args, ...coordinatorArgs],
        { check: false, env: { ...env, ISTHMUS_ADMIN_TOKEN: adminToken }, ...(input === undefined ? {} : { input }) });
    },
    async join(name, ns, originalIp, jo = {}) {
      const stateDir = join(dir, `state-${name}`);
      const args = [cli, 'agent', ...coordinatorArgs, '--relay', jo.relay ?? relayAddr, '--original-ip', originalIp,
        '--state-dir', stateDir, '--hostname', name];
      if (jo.token) args.push('--token', jo.token);
      args.push(...(jo.extraArgs ?? []));
      const proc = topo.spawn(ns, process.execPath, args, { name: `agent-${name}`, env });
      const joined = JSON.parse(await proc.waitForLine(/"msg":"joined"/, 20_000)) as { vip: string; time: number };
      await proc.waitForLine(/authenticated to relay/, 15_000);
      const m: JoinedMember = { name, ns, originalIp, vip: joined.vip, joinedAtMs: joined.time, stateDir, process: proc };
      members.set(name, m);
      return m;
    },
    async restartCoordinator() {
      for (const c of coordinators) await c.stop(0);
      coordinators = await startCoordinators();
    },
    async stop() {
      for (const m of members.values()) await m.process.stop();
      if (cluster) await cluster.stop();
      else await relay.stop();
      for (const c of coordinators) await c.stop();
      if (sentinel) await sentinel.stop();
      else await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return overlay;
}
