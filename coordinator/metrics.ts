/**
 * prom-client metrics for a coordinator. Joins are counted into plain numbers by the API;
 * the change feed keeps its own counts; members and Redis latency are read from Redis at
 * scrape time (one SCARD and one PING per scrape, skipped while Redis is not connected).
 */
import type { Registry } from 'prom-client';
import { byLabel, counterFrom, gaugeFrom, labelledFrom } from '../common';
import type { Coordinator } from './server';

/** How a `POST /v1/join` ended; also the `result` label of isthmus_coordinator_joins_total. */
export const JOIN_RESULTS = [
  /** a new member: a virtual IP was allocated */
  'created',
  /** a known key joined again and kept its virtual IP */
  'rejoined',
  /** a member Redis had lost was restored from its signed record (POST /v1/reassert) */
  'reasserted',
  /** answered 4xx: bad token, proof, claim or request */
  'refused',
  /** answered 5xx: Redis or another internal failure */
  'failed',
] as const;

export type JoinResult = (typeof JOIN_RESULTS)[number];
export type JoinCounters = Record<JoinResult, number>;

export function newJoinCounters(): JoinCounters {
  return { created: 0, rejoined: 0, reasserted: 0, refused: 0, failed: 0 };
}

/** Per-source limits (api.ts); the `limit` label of isthmus_coordinator_rate_limited_total. */
export const RATE_LIMITS = [
  /** GET /v1/challenge */
  'challenge',
  /** POST /v1/join */
  'join',
  /** admin API requests */
  'admin',
  /** a source locked out after too many failed admin-token checks */
  'admin-auth',
] as const;
export type RateLimitName = (typeof RATE_LIMITS)[number];
export type RateLimitCounters = Record<RateLimitName, number>;

export function newRateLimitCounters(): RateLimitCounters {
  return { challenge: 0, join: 0, admin: 0, 'admin-auth': 0 };
}

/** A scrape never waits on Redis longer than this. */
const REDIS_SCRAPE_TIMEOUT_MS = 1000;

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

export function registerCoordinatorMetrics(registry: Registry, c: Pick<Coordinator, 'feed' | 'joins' | 'rateLimited' | 'redis' | 'registry'> & Partial<Pick<Coordinator, 'signing' | 'streams'>>): void {
  const redisUp = () => c.redis.status === 'ready';
  labelledFrom(registry, 'counter', 'isthmus_coordinator_joins_total', 'Join requests answered by this coordinator, by result', ['result'],
    () => byLabel('result', JOIN_RESULTS, c.joins));
  labelledFrom(registry, 'counter', 'isthmus_coordinator_rate_limited_total', 'Requests answered 429 by a per-source limit, by limit', ['limit'],
    () => byLabel('limit', RATE_LIMITS, c.rateLimited));
  gaugeFrom(registry, 'isthmus_coordinator_members', 'Members registered (all coordinators share them; read from Redis at scrape time)', async () => {
    if (!redisUp()) return undefined;
    return withTimeout(c.redis.scard(c.registry.keys.nodes), REDIS_SCRAPE_TIMEOUT_MS).catch(() => undefined);
  });
  gaugeFrom(registry, 'isthmus_coordinator_peer_map_watchers', 'Members watching this coordinator for peer map changes (streams and long-polls)', () => c.feed.waiting + (c.streams?.open ?? 0));
  counterFrom(registry, 'isthmus_coordinator_changes_total', 'Member change events this coordinator received on the events channel', () => c.feed.changes);
  counterFrom(registry, 'isthmus_coordinator_answer_signatures_total', 'Ed25519 signatures made over join and peer-map answers (one per batch of answers leaving together)',
    () => c.signing?.signatures ?? 0);
  counterFrom(registry, 'isthmus_coordinator_signed_answers_total', 'Join and peer-map answers signed', () => c.signing?.answers ?? 0);
  gaugeFrom(registry, 'isthmus_coordinator_peer_map_version', 'Newest peer map version seen on the events channel', () => c.feed.latest);
  gaugeFrom(registry, 'isthmus_coordinator_redis_up', '1 when the Redis connection is ready and answered PING at scrape time', async () => {
    if (!redisUp()) return 0;
    return (await withTimeout(c.redis.ping(), REDIS_SCRAPE_TIMEOUT_MS).catch(() => undefined)) === 'PONG' ? 1 : 0;
  });
  gaugeFrom(registry, 'isthmus_coordinator_redis_ping_seconds', 'Round trip of a PING to Redis at scrape time (absent while Redis is unreachable)', async () => {
    if (!redisUp()) return undefined;
    const t0 = process.hrtime.bigint();
    const ok = (await withTimeout(c.redis.ping(), REDIS_SCRAPE_TIMEOUT_MS).catch(() => undefined)) === 'PONG';
    return ok ? Number(process.hrtime.bigint() - t0) / 1e9 : undefined;
  });
}
