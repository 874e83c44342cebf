/**
 * IPAM through the real Lua path: a differential test against the pure ReferenceAllocator,
 * and two coordinators (two HTTP servers, one Redis) taking 500+ concurrent joins.
 */
import test from 'ava';
import fc from 'fast-check';
import Redis from 'ioredis';
import { startRedis, type RedisHandle } from '../harness/redis';
import { RedisRegistry } from '../../coordinator/redis-store';
import { TokenStore } from '../../coordinator/token-store';
import { parseVipPool, ReferenceAllocator } from '../../coordinator/ipam';
import { hashSecret } from '../../coordinator/token-rules';
import { JoinRefusedError } from '../../coordinator/errors';
import { startEnv, member, LAN } from './coordinator-helpers';

let redis: RedisHandle;
let r: Redis;
test.before(async () => { redis = await startRedis(); r = new Redis(redis.url); });
test.after.always(async () => { r?.disconnect(); await redis?.stop(); });

test.serial('Lua allocator = reference allocator (random join/remove/time sequences)', async (t) => {
  let run = 0;
  await fc.assert(fc.asyncProperty(fc.array(fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('join' as const) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), i: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 1500 }) }) },
  ), { maxLength: 60 }), async (ops) => {
    const prefix = `diff${run++}:`;
    const cidr = parseVipPool('10.77.0.0/28');
    let now = 1_000_000;
    const reg = new RedisRegistry(r, { prefix, cidr, quarantineMs: 1000, now: () => now });
    await reg.init();
    const tok = await new TokenStore(r, prefix, () => now).create({ uses: -1 });
    const ref = new ReferenceAllocator(cidr, 1000);
    let n = 0;
    for (const o of ops) {
      if (o.op === 'tick') { now += o.ms; continue; }
      if (o.op === 'remove') {
        const inUse = [...ref.inUse()].sort();
        if (!inUse.length) continue;
        const vip = inUse[o.i % inUse.length];
        ref.release(vip, now);
        if (!await reg.remove(vip)) return false;
        continue;
      }
      const m = member(`192.168.${n >> 8}.${n & 255}`); n++;
      const want = ref.allocate(now);
      const ch = await reg.createChallenge();
      let got: string | undefined;
      try {
        got = (await reg.join({ publicKey: m.pub, originalIp: m.originalIp, hostname: m.hostname, tokenHash: hashSecret(tok.token),
          challengeId: ch.id, originalIpIsSource: true, sessionTokenHash: hashSecret('s' + n), sessionTtlMs: 60_000 })).vip;
      } catch (e) {
        if (!(e instanceof JoinRefusedError) || e.code !== 'pool-exhausted') throw e;
      }
      if (got !== want) throw new Error(`step ${n}: lua gave ${got}, reference ${want}`);
    }
    const inRedis = (await r.smembers(`${prefix}nodes`)).sort();
    return JSON.stringify(inRedis) === JSON.stringify([...ref.inUse()].sort());
  }), { numRuns: 60 });
  t.pass();
});

test.serial('two coordinators × 600 concurrent joins: no duplicate, no error', async (t) => {
  const env = await startEnv(2);
  try {
    const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
    const N = 600;
    const clients = [env.client(0), env.client(1)];
    const members = Array.from({ length: N }, (_, i) => member(`172.16.${i >> 8}.${i & 255}`));
    const t0 = Date.now();
    const results = await Promise.allSettled(members.map((m, i) => clients[i % 2].join({ ...m, token: tok.token })));
    const ms = Date.now() - t0;
    const failed = results.filter((x) => x.status === 'rejected');
    t.is(failed.length, 0, failed.slice(0, 3).map((f) => String((f as PromiseRejectedResult).reason)).join('; '));
    const vips = results.map((x) => (x as PromiseFulfilledResult<{ vip: string }>).value.vip);
    t.is(new Set(vips).size, N, 'no duplicate vip');
    t.is(await env.r.scard('isthmus:nodes'), N);
    t.is(Number(await env.r.get('isthmus:ipam:cursor')), N + 1, 'no gap: exactly N addresses taken');
    for (const [i, m] of members.entries()) if (await env.r.get(`isthmus:key:${m.pub}`) !== vips[i]) t.fail(`key map of ${i}`);
    t.log(`${N} joins over 2 coordinators in ${ms} ms (${Math.round(N / (ms / 1000))} joins/s, concurrency ${N})`);
  } finally {
    await env.stop();
  }
});
