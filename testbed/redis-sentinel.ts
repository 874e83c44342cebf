/**
 * A Redis master, one replica and three sentinels (real `redis-server` and `redis-server
 * --sentinel` processes, which is what `redis-sentinel` runs), all in one namespace on one
 * address, each on its own port:
 *
 *   <ns>  <ip>:6379 master ─replication─► <ip>:6380 replica
 *         <ip>:26379, :26380, :26381 sentinels watching MASTER_NAME, quorum 2,
 *         down-after 1 s (a failover takes 2–5 s after the master dies)
 *
 * The daemons take `daemonArgs` (`--redis-sentinel` ×3 `--redis-sentinel-name`), as a
 * deployment gives them. `failover()` asks a sentinel for a manual failover; `killMaster()`
 * kill -9s the master by PID. Both resolve once every sentinel names the new master.
 * No persistence (nothing survives a restart): replication alone keeps the data.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Topology } from './topology';
import { sleep, type ManagedProcess } from './procs';

export const SENTINEL_MASTER_NAME = 'isthmus';
export const SENTINEL_DATA_PORTS = [6379, 6380] as const;
export const SENTINEL_PORTS = [26379, 26380, 26381] as const;

export interface RedisAddress { ip: string; port: number }

export interface FailoverResult {
  from: RedisAddress;
  to: RedisAddress;
  /** From the request (or the kill) until every sentinel named the new master. */
  ms: number;
}

export interface RedisSentinelSet {
  masterName: string;
  /** `IP:PORT` of each sentinel. */
  sentinels: string[];
  /** The Redis flags of every daemon: `--redis-sentinel …` ×3 `--redis-sentinel-name NAME`. */
  daemonArgs: string[];
  /** The data servers by port (a killed one stays here, exited). */
  servers: Map<number, ManagedProcess>;
  /** The master the first answering sentinel names now. */
  master(): Promise<RedisAddress>;
  /** `redis-cli` against the current master (in the set's namespace); stdout. */
  cli(args: string[]): Promise<string>;
  /** Every sentinel sees the others and a quorum, and the master has a replica in sync. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** `SENTINEL FAILOVER` (the master is demoted to a replica of the promoted one). */
  failover(timeoutMs?: number): Promise<FailoverResult>;
  /** kill -9 the master; it stays dead. */
  killMaster(timeoutMs?: number): Promise<FailoverResult>;
  stop(): Promise<void>;
}

function parseAddress(out: string): RedisAddress | undefined {
  const [ip, port] = out.trim().split('\n').map((s) => s.trim());
  return ip && /^\d+$/.test(port ?? '') ? { ip, port: Number(port) } : undefined;
}

const same = (a: RedisAddress, b: RedisAddress): boolean => a.ip === b.ip && a.port === b.port;

export async function startRedisSentinelSet(topo: Topology, ns: string, ip: string, dir: string): Promise<RedisSentinelSet> {
  const [masterPort, replicaPort] = SENTINEL_DATA_PORTS;
  const servers = new Map<number, ManagedProcess>();
  const sentinelProcs: ManagedProcess[] = [];
  const name = SENTINEL_MASTER_NAME;
  const sentinels = SENTINEL_PORTS.map((p) => `${ip}:${p}`);
  const redisCli = async (port: number, args: string[]): Promise<string> =>
    (await topo.exec(ns, 'redis-cli', ['-h', ip, '-p', String(port), ...args], { timeoutMs: 5000 })).stdout;

  const stop = async (): Promise<void> => {
    for (const p of [...sentinelProcs, ...servers.values()]) await p.stop();
  };
  try {
    for (const port of [masterPort, replicaPort]) {
      const d = join(dir, `redis-${port}`);
      mkdirSync(d, { recursive: true });
      const args = ['--port', String(port), '--bind', ip, '--save', '', '--appendonly', 'no', '--dir', d, '--protected-mode', 'no'];
      if (port === replicaPort) args.push('--replicaof', ip, String(masterPort));
      servers.set(port, topo.spawn(ns, 'redis-server', args, { name: `redis-${port}` }));
      await topo.waitForListen(ns, port, 'tcp');
    }
    for (const port of SENTINEL_PORTS) {
      // A sentinel rewrites its own config file (what it learned about the others): one each.
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(conf, [`port ${port}`, `bind ${ip}`, `dir ${dir}`, 'protected-mode no', `sentinel announce-ip ${ip}`,
        `sentinel monitor ${name} ${ip} ${masterPort} 2`, `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 10000`, `sentinel parallel-syncs ${name} 1`, ''].join('\n'));
      sentinelProcs.push(topo.spawn(ns, 'redis-server', [conf, '--sentinel'], { name: `sentinel-${port}` }));
      await topo.waitForListen(ns, port, 'tcp');
    }
  } catch (err) {
    await stop();
    throw err;
  }

  /** What each sentinel names as the master (undefined for one that does not answer). */
  const named = (): Promise<(RedisAddress | undefined)[]> => Promise.all(SENTINEL_PORTS.map((p) =>
    redisCli(p, ['SENTINEL', 'get-master-addr-by-name', name]).then(parseAddress, () => undefined)));

  const set: RedisSentinelSet = {
    masterName: name,
    sentinels,
    daemonArgs: [...sentinels.flatMap((s) => ['--redis-sentinel', s]), '--redis-sentinel-name', name],
    servers,
    async master() {
      for (const m of await named()) if (m) return m;
      throw new Error('no sentinel answers');
    },
    async cli(args) {
      const m = await set.master();
      return redisCli(m.port, args);
    },
    async waitHealthy(timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      let why = '';
      for (;;) {
        try {
          const quorum = await Promise.all(SENTINEL_PORTS.map((p) => redisCli(p, ['SENTINEL', 'CKQUORUM', name])));
          const m = await set.master();
          const info = await redisCli(m.port, ['INFO', 'replication']);
          const seen = await Promise.all(SENTINEL_PORTS.map((p) => redisCli(p, ['SENTINEL', 'replicas', name])));
          // 3 usable sentinels each; a replica online and caught up; every sentinel knows of it.
          const synced = /connected_slaves:[1-9]/.test(info) && /slave\d+:.*state=online/.test(info);
          if (quorum.every((q) => q.startsWith('OK 3 usable')) && synced && seen.every((s) => /master-link-status\s+ok/.test(s))) return;
          why = `quorum ${JSON.stringify(quorum.map((q) => q.trim()))}, replication ${synced ? 'in sync' : 'not in sync'}`;
        } catch (err) {
          why = (err as Error).message;
        }
        if (Date.now() > until) throw new Error(`the sentinel set did not become healthy in ${timeoutMs} ms: ${why}`);
        await sleep(200);
      }
    },
    async failover(timeoutMs = 30_000) {
      const from = await set.master();
      const start = Date.now();
      await redisCli(SENTINEL_PORTS[0], ['SENTINEL', 'FAILOVER', name]);
      return { from, ...await untilAllName((m) => !same(m, from), start, timeoutMs) };
    },
    async killMaster(timeoutMs = 30_000) {
      const from = await set.master();
      const victim = servers.get(from.port);
      if (!victim) throw new Error(`no server of ours on port ${from.port}`);
      const start = Date.now();
      process.kill(victim.pid, 'SIGKILL');
      await victim.waitForExit(5000);
      return { from, ...await untilAllName((m) => !same(m, from), start, timeoutMs) };
    },
    stop,
  };

  async function untilAllName(ok: (m: RedisAddress) => boolean, start: number, timeoutMs: number): Promise<{ to: RedisAddress; ms: number }> {
    for (;;) {
      const all = await named();
      const first = all[0];
      if (first && ok(first) && all.every((m) => m && same(m, first))) return { to: first, ms: Date.now() - start };
      if (Date.now() - start > timeoutMs) throw new Error(`no failover within ${timeoutMs} ms: sentinels name ${JSON.stringify(all)}`);
      await sleep(100);
    }
  }
  return set;
}
