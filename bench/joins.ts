/**
 * Joins per second through two coordinators sharing one Redis (issue 3's closing number).
 *
 *   npx tsx bench/joins.ts [--seconds 5] [--concurrency 64] [--coordinators 2]
 *
 * Starts a private redis-server (port chosen by the OS, temp dir, no persistence, killed by
 * PID at the end), N coordinators in this process on loopback, and `concurrency` clients that
 * join with fresh keys in a loop for `seconds`. Each join = GET /v1/challenge + POST /v1/join
 * (key proof, token check, Lua allocation, full peer map in the answer).
 * Client and coordinators share this process's CPU (the member side's proof still uses
 * tweetnacl, ~1 ms per join), so the number is a lower bound.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createCoordinator, CoordinatorClient, type Coordinator } from '../coordinator';
import { startRedis } from '../testbed';

export interface JoinBenchOptions {
  /** @default 5 */ seconds?: number;
  /** Joins in flight at once. @default 64 */ concurrency?: number;
  /** @default 2 */ coordinators?: number;
  /** Use this Redis instead of starting one (its `isthmus-bench:` prefix is flushed first). */
  redisUrl?: string;
}

export interface JoinBenchResult {
  joins: number;
  errors: number;
  seconds: number;
  joinsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  coordinators: number;
  concurrency: number;
  duplicates: number;
}

/** A member's X25519 key pair via OpenSSL (cheap), so the bench measures the coordinators. */
function memberKey(): { secretKey: Uint8Array; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return {
    secretKey: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32)),
    publicKey: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)),
  };
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : 0;
}

export async function runJoinBench(o: JoinBenchOptions = {}): Promise<JoinBenchResult> {
  const seconds = o.seconds ?? 5;
  const concurrency = o.concurrency ?? 64;
  const n = o.coordinators ?? 2;
  const redis = o.redisUrl ? undefined : await startRedis();
  const url = o.redisUrl ?? redis!.url;
  const admin = 'bench-admin-token-0123456789abcdef';
  const coords: Coordinator[] = [];
  try {
    for (let i = 0; i < n; i++) {
      // Every client joins from 127.0.0.1: the per-source limits would measure themselves.
      coords.push(await createCoordinator({ redis: url, prefix: 'isthmus-bench:', adminToken: admin, sweepIntervalMs: 0, rateLimits: false }));
    }
    if (o.redisUrl) {
      const keys = await coords[0].redis.keys('isthmus-bench:*');
      if (keys.length) await coords[0].redis.del(...keys);
      await coords[0].registry.init();
    }
    const urls = await Promise.all(coords.map(async (c) => (await c.listen('127.0.0.1', 0)).url));
    const clients = urls.map((u) => new CoordinatorClient({ url: u, insecure: true, adminToken: admin }));
    // The clients join from 127.0.0.1 claiming 10.x original IPs: the token must allow 10/8.
    const token = (await clients[0].createToken({ uses: -1, originalCidrs: ['10.0.0.0/8'] })).token;
    const lat: number[] = [];
    const vips: string[] = [];
    let errors = 0;
    let seq = 0;
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
      while (performance.now() < until) {
        const i = seq++;
        const kp = memberKey();
        const s = performance.now();
        try {
          const j = await clients[(w + i) % clients.length].join({
            privateKey: kp.secretKey, publicKey: kp.publicKey, token,
            originalIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, hostname: `bench-${i}`,
          });
          vips.push(j.vip);
          lat.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    }));
    const elapsed = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    return {
      joins: lat.length, errors, seconds: elapsed, joinsPerSec: lat.length / elapsed,
      p50Ms: pct(lat, 0.5), p99Ms: pct(lat, 0.99), coordinators: n, concurrency, duplicates: vips.length - new Set(vips).size,
    };
  } finally {
    for (const c of coords) await c.close();
    await redis?.stop();
  }
}

function flag(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

if (require.main === module) {
  runJoinBench({ seconds: flag('seconds', 5), concurrency: flag('concurrency', 64), coordinators: flag('coordinators', 2) })
    .then((r) => {
      process.stdout.write(`joins: ${r.joins} in ${r.seconds.toFixed(1)} s over ${r.coordinators} coordinators, concurrency ${r.concurrency}: ` +
        `${r.joinsPerSec.toFixed(0)} joins/s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, errors ${r.errors}, duplicate vips ${r.duplicates}\n`);
      if (r.errors || r.duplicates) process.exitCode = 1;
    })
    .catch((err: unknown) => {
      process.stderr.write(`bench failed: ${(err as Error).message}\n`);
      process.exitCode = 1;
    });
}
