/**
 * `P:relay-stats:<id>`: a relay's counters for the coordinator's dashboard (key names:
 * common/redis-schema.ts). Every `intervalMs` one pipeline writes the totals since start, the
 * rates over the last interval and the time, with a TTL of three intervals, and records the id
 * in `P:relay-stats-ids` (score = that time) so readers find the relays without a SCAN. A relay
 * that stops deletes its record; one that dies drops out when the TTL ends.
 *
 * Never on the data path: the counters are read from `stats()`; a Redis failure is logged once
 * per change of state, and nothing is queued while Redis is unreachable.
 */
import type Redis from 'ioredis';
import { type Logger, DEFAULT_PREFIX, redisKeys, type RedisKeys } from '../common';
import type { RelayStatsSnapshot } from './stats';

/** How often a relay writes its record. @default 5 s */
export const RELAY_STATS_INTERVAL_MS = 5000;
/** Ids whose last write is older than this are dropped from `P:relay-stats-ids`. */
const STALE_ID_MS = 60 * 60 * 1000;

export interface RelayStatsPublisherOptions {
  relayId: string;
  /** The relay's counters (relay.stats()). */
  stats: () => RelayStatsSnapshot;
  /** Redis key prefix. @default DEFAULT_PREFIX */
  prefix?: string;
  /** @default RELAY_STATS_INTERVAL_MS */
  intervalMs?: number;
  logger: Logger;
  now?: () => number;
}

export class RedisRelayStatsPublisher {
  private readonly keys: RedisKeys;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private prev: { at: number; frames: number; bytes: number; dropped: number } | undefined;
  private failing = false;

  constructor(private readonly redis: Redis, private readonly o: RelayStatsPublisherOptions) {
    this.keys = redisKeys(o.prefix ?? DEFAULT_PREFIX);
    this.intervalMs = o.intervalMs ?? RELAY_STATS_INTERVAL_MS;
    this.now = o.now ?? Date.now;
  }

  /** Publish now, then every interval. */
  start(): void {
    this.publish();
    this.timer = setInterval(() => this.publish(), this.intervalMs);
    this.timer.unref();
  }

  /** One write (the timer calls it); resolves when Redis answered or the write was skipped. */
  publish(): Promise<void> {
    if (this.redis.status !== 'ready') return Promise.resolve();
    const s = this.o.stats();
    const at = this.now();
    const p = this.prev;
    const secs = p && at > p.at ? (at - p.at) / 1000 : 0;
    const rate = (cur: number, before: number | undefined) => (secs > 0 && before !== undefined ? Math.max(0, (cur - before) / secs) : 0);
    const fields = {
      sessions: String(s.sessions), framesForwarded: String(s.framesForwarded), bytesForwarded: String(s.bytesForwarded),
      dropped: String(s.dropped),
      framesPerSec: rate(s.framesForwarded, p?.frames).toFixed(1), bytesPerSec: rate(s.bytesForwarded, p?.bytes).toFixed(0),
      dropsPerSec: rate(s.dropped, p?.dropped).toFixed(1), at: String(at),
    };
    this.prev = { at, frames: s.framesForwarded, bytes: s.bytesForwarded, dropped: s.dropped };
    const k = this.keys.relayStats(this.o.relayId);
    return this.redis.multi()
      .hset(k, fields)
      .hsetnx(k, 'since', String(at))
      .pexpire(k, 3 * this.intervalMs)
      .zadd(this.keys.relayStatsIds, at, this.o.relayId)
      .zremrangebyscore(this.keys.relayStatsIds, '-inf', at - STALE_ID_MS)
      .exec()
      .then(() => {
        if (this.failing) this.o.logger.info('relay stats written to Redis again');
        this.failing = false;
      }, (e: Error) => {
        if (!this.failing) this.o.logger.warn({ err: e.message }, 'writing relay stats failed');
        this.failing = true;
      });
  }

  /** Stop publishing and delete the record (it would expire anyway). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.redis.status !== 'ready') return;
    await this.redis.multi().del(this.keys.relayStats(this.o.relayId)).zrem(this.keys.relayStatsIds, this.o.relayId).exec().catch(() => undefined);
  }
}
