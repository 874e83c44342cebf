/**
 * isthmus with a relay CLUSTER behind the VIP (issue 5): N relays in the relay namespaces,
 * meshed through Redis, behind the hub's nft flow-hash DNAT with the health checker
 * (testbed/vip-health.ts); members a1 (vpc1) and s1 (vpc2) point at the VIP — or, to pin
 * them, at one relay's own address.
 *
 *   vpc1 a1 ─┐                ┌─► <p>-r1 relay r1 10.93.1.2:7000, mesh :7001 ─┐
 *            ├─► hub VIP:7000 ┼─► <p>-r2 relay r2 ...                          ├─ Redis on VIP:6379 (hub)
 *   vpc2 s1 ─┘  (jhash DNAT)  └─► <p>-r3 relay r3 ...                          ┘
 *
 * Used by the chaos and relay-cluster netns tests and the `isthmus-mesh` bench subjects.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PREFIX, redisKeys } from '../../common';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64 } from '../../protocol';
import type { Topology } from '../topology';
import type { ManagedProcess } from '../procs';
import { sleep } from '../procs';
import { cliPath, OVERLAY_PREFIX_LEN, RELAY_PORT, repoRoot, type Member } from './isthmus';
import type { BenchSubject } from '../subject';
import { relayCluster } from '../relay-cluster';

export const REDIS_PORT = 6379;
/** The cluster's processes run with the default Redis key prefix. */
const KEYS = redisKeys(DEFAULT_PREFIX);

/** Where a member sends its relay traffic: the VIP (load-balanced) or relay i (1-based) directly. */
export type RelayTarget = 'vip' | number;

export interface ClusterOverlayOptions {
  /** @default 'vip' */
  a1Relay?: RelayTarget;
  /** @default 'vip' */
  s1Relay?: RelayTarget;
  logLevel?: string;
  mtu?: number;
  /** Health checker probe period, ms. @default 200 */
  healthIntervalMs?: number;
}

export interface ClusterOverlay {
  a1: Member;
  s1: Member;
  relays: (ManagedProcess | undefined)[];
  redis: ManagedProcess;
  health: ManagedProcess;
  dir: string;
  /** Relay id ("r1".."rN") of relay index i (1-based). */
  relayId(i: number): string;
  /** The relay id a member last authenticated to (from its log). */
  homeOf(m: Member): string | undefined;
  /** SIGKILL relay i. */
  killRelay(i: number): Promise<void>;
  startRelay(i: number): Promise<void>;
  /** Stop Redis (SIGTERM: the append-only file is flushed) and start it again on the same data. */
  restartRedis(downMs?: number): Promise<void>;
  /** redis-cli in the hub; stdout. */
  redisCli(args: string[]): Promise<string>;
  /** `P:session:<vip>` as a field map. */
  sessionRecord(m: Member): Promise<Record<string, string>>;
  /** The agent's relay socket (from its status dump, SIGUSR1). */
  agentRelaySocket(m: Member): Promise<{ port: number; ready: boolean }>;
  stop(): Promise<void>;
}

function member(name: string, ns: string, vip: string): Member {
  const priv = generatePrivateKey();
  return { name, ns, vip, privateKey: keyToBase64(priv), publicKey: keyToBase64(publicKeyFromPrivate(priv)) };
}

function agentConfig(self: Member, peer: Member, mtu: number, relay: string): string {
  return ['[Interface]', `PrivateKey = ${self.privateKey}`, `Address = ${self.vip}/${OVERLAY_PREFIX_LEN}`, `MTU = ${mtu}`,
    `Relay = ${relay}`, '', '[Peer]', `PublicKey = ${peer.publicKey}`, `AllowedIPs = ${peer.vip}/32`, 'Endpoint = relay', ''].join('\n');
}

export async function startClusterOverlay(topo: Topology, opts: ClusterOverlayOptions = {}): Promise<ClusterOverlay> {
  const n = topo.ns.relays.length;
  if (n < 1) throw new Error('startClusterOverlay needs a topology with relays (createTopology({ relays: N }))');
  const cli = cliPath();
  const dir = mkdtempSync(join(tmpdir(), `${topo.prefix}-cluster-`));
  const env = { ...process.env, ISTHMUS_LOG_LEVEL: opts.logLevel ?? 'info' };
  const vip = topo.addr.vip;
  const redisUrl = `redis://${vip}:${REDIS_PORT}`;
  const a1 = member('a1', topo.ns.vpc1, '100.64.0.1');
  const s1 = member('s1', topo.ns.vpc2, '100.64.0.2');
  const mtu = opts.mtu ?? 1420;
  const cluster = relayCluster(topo, { cli, redisUrl, dir, env, healthIntervalMs: opts.healthIntervalMs });
  const undoRoutes: (() => Promise<unknown>)[] = [];

  const redisArgs = ['--port', String(REDIS_PORT), '--bind', vip, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always',
    '--dir', dir, '--protected-mode', 'no'];
  const startRedisProc = async (): Promise<ManagedProcess> => {
    const p = topo.spawn(topo.ns.hub, 'redis-server', redisArgs, { name: 'redis' });
    await topo.waitForListen(topo.ns.hub, REDIS_PORT, 'tcp');
    return p;
  };
  const redisCli = async (args: string[]): Promise<string> =>
    (await topo.exec(topo.ns.hub, 'redis-cli', ['-h', vip, '-p', String(REDIS_PORT), ...args])).stdout;

  let redis = await startRedisProc();
  const overlay: ClusterOverlay = {
    a1, s1, relays: cluster.relays, redis, health: undefined as unknown as ManagedProcess, dir, relayId: cluster.relayId,
    homeOf(m) {
      const lines = m.process?.output().split('\n').filter((l) => l.includes('authenticated to relay')) ?? [];
      const last = lines[lines.length - 1];
      if (!last) return undefined;
      try {
        return (JSON.parse(last) as { relayId?: string }).relayId;
      } catch {
        return /"relayId":"([^"]+)"/.exec(last)?.[1];
      }
    },
    killRelay: (i) => cluster.killRelay(i),
    startRelay: (i) => cluster.startRelay(i),
    async restartRedis(downMs = 500) {
      await redis.stop();
      await sleep(downMs);
      redis = await startRedisProc();
      overlay.redis = redis;
    },
    redisCli,
    async sessionRecord(m) {
      const out = (await redisCli(['HGETALL', KEYS.session(m.vip)])).split('\n').filter((l) => l !== '');
      const rec: Record<string, string> = {};
      for (let i = 0; i + 1 < out.length; i += 2) rec[out[i]] = out[i + 1];
      return rec;
    },
    async agentRelaySocket(m) {
      const p = m.process!;
      const before = p.output().length;
      process.kill(p.pid, 'SIGUSR1');
      for (let i = 0; i < 50; i++) {
        await sleep(50);
        const line = p.output().slice(Math.max(0, before - 1)).split('\n').find((l) => l.includes('"status"') && l.includes('"relay"'));
        if (line) {
          const s = JSON.parse(line) as { status: { relay: { ready: boolean; udpAddr: { port: number } } } };
          return { port: s.status.relay.udpAddr.port, ready: s.status.relay.ready };
        }
      }
      throw new Error(`no status line from ${m.name}`);
    },
    async stop() {
      for (const p of [a1.process, s1.process]) await p?.stop();
      await cluster.stop();
      await redis.stop();
      for (const u of undoRoutes) await u().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const m of [a1, s1]) await redisCli(['SET', KEYS.key(m.publicKey), m.vip]);
    await cluster.start();
    overlay.health = cluster.health!;

    const target = (t: RelayTarget | undefined): string => (t === undefined || t === 'vip' ? `${vip}:${RELAY_PORT}` : `${topo.addr.relays[t - 1]}:${RELAY_PORT}`);
    for (const [self, peer, t, hub] of [[a1, s1, opts.a1Relay, topo.addr.hubVpc1], [s1, a1, opts.s1Relay, topo.addr.hubVpc2]] as const) {
      if (t !== undefined && t !== 'vip') {
        await topo.exec(self.ns, 'ip', ['route', 'replace', '10.93.0.0/16', 'via', hub]);
        undoRoutes.push(() => topo.exec(self.ns, 'ip', ['route', 'del', '10.93.0.0/16'], { check: false }));
      }
      const file = join(dir, `${self.name}.conf`);
      writeFileSync(file, agentConfig(self, peer, mtu, target(t)), { mode: 0o600 });
      self.process = topo.spawn(self.ns, process.execPath, [cli, 'agent', '--peers', file, '--state-dir', join(dir, `state-${self.name}`)],
        { name: `agent-${self.name}`, env });
    }
    for (const m of [a1, s1]) await m.process!.waitForLine(/authenticated to relay/, 15_000);
  } catch (err) {
    await overlay.stop();
    throw err;
  }
  return overlay;
}

/**
 * Bench subjects on the relay cluster: `isthmus-mesh-same` (a1 and s1 pinned to relay r1) and
 * `isthmus-mesh-cross` (a1 on r1, s1 on r2: every packet takes one mesh hop). Needs a topology
 * with at least 2 relays.
 */
export function isthmusMeshSubject(mode: 'same' | 'cross'): BenchSubject {
  let overlay: ClusterOverlay | undefined;
  return {
    name: `isthmus-mesh-${mode}`,
    requires: ['redis-server', 'redis-cli'],
    async describe() {
      const { version } = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
      return mode === 'same'
        ? `isthmus ${version}, 3-relay cluster, both members on one relay`
        : `isthmus ${version}, 3-relay cluster, members on different relays (one mesh hop)`;
    },
    async setup(topo) {
      overlay = await startClusterOverlay(topo, { a1Relay: 1, s1Relay: mode === 'same' ? 1 : 2 });
      const o = overlay;
      await topo.exec(topo.ns.vpc1, 'ping', ['-c', '3', '-i', '0.2', '-w', '10', o.s1.vip], { check: false });
      return {
        serverAddr: o.s1.vip, clientAddr: o.a1.vip,
        pids: () => [...o.relays.filter((r): r is ManagedProcess => r !== undefined).map((r) => r.pid), o.a1.process!.pid, o.s1.process!.pid],
      };
    },
    async teardown() {
      await overlay?.stop();
      overlay = undefined;
    },
  };
}
