/**
 * N relays in the topology's relay namespaces, meshed through Redis, behind the hub's VIP
 * (nft flow-hash DNAT) with the health checker (testbed/vip-health.ts) — the stand-in for a
 * company's L4 load balancer in front of its relay fleet:
 *
 *   members ─► hub VIP:7000 ─(jhash DNAT over live relays)─► <p>-r<i> relay r<i> 10.93.<i>.2:7000, mesh :7001
 *
 * Shared by the static-peer cluster harness (testbed/peers/isthmus-cluster.ts) and the joined
 * overlay (testbed/peers/isthmus-joined.ts, and so the demo).
 */
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Topology } from './topology';
import type { ManagedProcess } from './procs';

export const CLUSTER_RELAY_PORT = 7000;
export const MESH_PORT = 7001;

export interface RelayClusterOptions {
  cli: string;
  redisUrl: string;
  /** The relays' Redis flags instead of `--redis redisUrl` (e.g. a sentinel set's). */
  redisArgs?: string[];
  /** More flags for relay i (1-based), e.g. `--metrics`. */
  extraArgs?: (i: number) => string[];
  /** Holds the mesh key file. */
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Health checker probe period, ms. @default 200 */
  healthIntervalMs?: number;
}

export interface RelayCluster {
  /** Relay processes by 1-based index; undefined while killed. */
  relays: (ManagedProcess | undefined)[];
  health: ManagedProcess | undefined;
  relayId(i: number): string;
  startRelay(i: number): Promise<void>;
  /** SIGKILL relay i. */
  killRelay(i: number): Promise<void>;
  /** Relays and the health checker up; the VIP balances over them. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function relayCluster(topo: Topology, o: RelayClusterOptions): RelayCluster {
  const n = topo.ns.relays.length;
  if (n < 1) throw new Error('a relay cluster needs a topology with relays (createTopology({ relays: N }))');
  const vip = topo.addr.vip;
  const keyFile = join(o.dir, 'mesh.key');
  writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  let undoForward: (() => Promise<void>) | undefined;
  const relayId = (i: number): string => `r${i}`;
  const cluster: RelayCluster = {
    relays: new Array<ManagedProcess | undefined>(n + 1).fill(undefined),
    health: undefined,
    relayId,
    async startRelay(i) {
      const addr = topo.addr.relays[i - 1];
      cluster.relays[i] = topo.spawn(topo.ns.relays[i - 1], process.execPath, [o.cli, 'relay', '--id', relayId(i),
        '--listen', `${addr}:${CLUSTER_RELAY_PORT}`, '--advertise', `${vip}:${CLUSTER_RELAY_PORT}`, ...(o.redisArgs ?? ['--redis', o.redisUrl]),
        '--mesh', `${addr}:${MESH_PORT}`, '--mesh-key', keyFile, '--keepalive', '2s', '--session-refresh', '2s',
        '--stats-interval', '0s', ...(o.extraArgs?.(i) ?? [])], { name: `relay-r${i}`, env: o.env });
      await cluster.relays[i]!.waitForLine(/relay ready/, 15_000);
    },
    async killRelay(i) {
      const p = cluster.relays[i];
      if (!p) return;
      process.kill(p.pid, 'SIGKILL');
      await p.waitForExit(5000);
      cluster.relays[i] = undefined;
    },
    async start() {
      // Relays reach each other's mesh port through the hub.
      undoForward = await topo.allowHubForward('to-r*', 'to-r*');
      for (let i = 1; i <= n; i++) await cluster.startRelay(i);
      await topo.setVipBackends('udp', CLUSTER_RELAY_PORT, topo.addr.relays);
      cluster.health = topo.startVipHealthCheck(CLUSTER_RELAY_PORT, topo.addr.relays, { intervalMs: o.healthIntervalMs ?? 200 });
      await cluster.health.waitForLine(/"event":"ready"/, 15_000);
    },
    async stop() {
      for (const p of [cluster.health, ...cluster.relays]) await p?.stop();
      // Leave the shared topology as we found it (the bench runs other subjects on it next).
      await topo.setVipBackends('udp', CLUSTER_RELAY_PORT, []).catch(() => undefined);
      await undoForward?.().catch(() => undefined);
    },
  };
  return cluster;
}
