/** Shared setup for the coordinator integration tests: private redis, coordinators, members. */
import nacl from 'tweetnacl';
import Redis from 'ioredis';
import { startRedis, type RedisHandle } from '../harness/redis';
import { createCoordinator, type Coordinator, type CoordinatorOptions } from '../../coordinator/server';
import { CoordinatorClient } from '../../coordinator/client';

export const ADMIN = 'admin-secret-for-tests-0123456789';

/**
 * The tests join from 127.0.0.1 while claiming private original IPs (10.x, 172.16.x,
 * 192.168.x), so their tokens must allow those prefixes: a member may claim only the address
 * it joins from or one inside its token's `originalCidrs`.
 */
export const LAN = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

export interface Env {
  redis: RedisHandle;
  r: Redis;
  coords: Coordinator[];
  urls: string[];
  admin: CoordinatorClient;
  client(i?: number): CoordinatorClient;
  registryVersion(): Promise<number>;
  stop(): Promise<void>;
}

export async function startEnv(n = 1, opts: Partial<CoordinatorOptions> = {}): Promise<Env> {
  const redis = await startRedis();
  const coords: Coordinator[] = [];
  const urls: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = await createCoordinator({ redis: redis.url, adminToken: ADMIN, sweepIntervalMs: 0, ...opts });
    coords.push(c);
    urls.push((await c.listen('127.0.0.1', 0)).url);
  }
  const r = new Redis(redis.url);
  return {
    redis, r, coords, urls,
    admin: new CoordinatorClient({ url: urls[0], insecure: true, adminToken: ADMIN }),
    client: (i = 0) => new CoordinatorClient({ url: urls[i % urls.length], insecure: true }),
    registryVersion: () => coords[0].registry.version(),
    async stop() {
      for (const c of coords) await c.close();
      r.disconnect();
      await redis.stop();
    },
  };
}

export function member(orig: string, hostname = 'h-' + orig.replace(/\./g, '-')) {
  const kp = nacl.box.keyPair();
  return { privateKey: kp.secretKey, publicKey: kp.publicKey, pub: Buffer.from(kp.publicKey).toString('base64'), originalIp: orig, hostname };
}

/** Every key and its value, for "nothing changed" assertions. */
export async function snapshotRedis(r: Redis): Promise<Record<string, string>> {
  const keys = (await r.keys('*')).sort();
  const out: Record<string, string> = {};
  for (const k of keys) {
    const t = await r.type(k);
    let v: unknown;
    if (t === 'string') v = await r.get(k);
    else if (t === 'hash') v = await r.hgetall(k);
    else if (t === 'set') v = (await r.smembers(k)).sort();
    else if (t === 'zset') v = await r.zrange(k, 0, -1, 'WITHSCORES');
    else if (t === 'stream') v = await r.xrange(k, '-', '+');
    else v = t;
    out[k] = JSON.stringify(v);
  }
  return out;
}
