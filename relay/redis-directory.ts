/**
 * Redis-backed pieces of the relay (key names and events: common/redis-schema.ts):
 *
 * - `RedisMemberDirectory`: `P:key:<pubBase64>` → vip (dotted quad), written by the
 *   coordinator on join. Read once per verified AUTH; a short positive cache spares Redis
 *   when members re-authenticate in bursts (relay restart). Expired entries are dropped as
 *   lookups go by (oldest first), so idle members cost the cache nothing.
 * - `RedisSessionRecorder` (a SessionListener): writes `P:session:<vip>` with the relay
 *   4-tuple on bind, refreshes its TTL while the member keeps alive, deletes it on unbind
 *   only if it still names this relay, and publishes `session-up`/`session-down` on
 *   `P:events`.
 *
 * Redis failures never reach the data path: the directory rejects (the AUTH is answered with
 * "unavailable"), the recorder logs.
 */
import type Redis from 'ioredis';
import { type Logger, DEFAULT_PREFIX, EventType, encodeEvent, redisKeys, type RedisKeys, type SessionEvent, type SessionEventType, formatAddr, parseAddr } from '../common';
import type { SessionListener } from './control';
import type { MemberDirectory } from './member-directory';
import type { Session } from './session-table';

export interface RedisDirectoryOptions {
  /** Redis key prefix. @default DEFAULT_PREFIX */
  prefix?: string;
  /** Positive cache lifetime, ms; 0 = no cache. @default 5000 */
  cacheMs?: number;
  now?: () => number;
}

export class RedisMemberDirectory implements MemberDirectory {
  private readonly keys: RedisKeys;
  private readonly cacheMs: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, { vip: number; until: number }>();

  constructor(private readonly redis: Redis, opts: RedisDirectoryOptions = {}) {
    this.keys = redisKeys(opts.prefix ?? DEFAULT_PREFIX);
    this.cacheMs = opts.cacheMs ?? 5000;
    this.now = opts.now ?? Date.now;
  }

  /** Entries in the positive cache, expired ones not yet swept included. */
  get cached(): number {
    return this.cache.size;
  }

  /** Forget cached answers for a vip (its member was removed or re-keyed). */
  forgetVip(vip: number): void {
    for (const [pub, e] of this.cache) if (e.vip === vip) this.cache.delete(pub);
  }

  /** Drop expired entries from the front (insertion order is expiry order; O(1) amortised). */
  private sweep(now: number): void {
    for (const [pub, e] of this.cache) {
      if (e.until > now) return;
      this.cache.delete(pub);
    }
  }

  async lookupByKey(publicKey: Uint8Array): Promise<{ vip: number } | undefined> {
    if (publicKey.length !== 32) return undefined;
    const pub = Buffer.from(publicKey).toString('base64');
    const now = this.now();
    this.sweep(now);
    const hit = this.cache.get(pub);
    if (hit && hit.until > now) return { vip: hit.vip };
    const v = await this.redis.get(this.keys.key(pub));
    if (v === null) {
      this.cache.delete(pub);
      return undefined;
    }
    let vip: number;
    try {
      vip = parseAddr(v);
    } catch {
      return undefined;
    }
    if (this.cacheMs > 0) {
      if (this.cache.size >= 65_536) this.cache.clear();
      // Re-inserted at the end: the Map stays in expiry order for sweep().
      this.cache.delete(pub);
      this.cache.set(pub, { vip, until: this.now() + this.cacheMs });
    }
    return { vip };
  }
}

export interface SessionRecorderOptions {
  relayId: string;
  /** The relay address members reach (the VIP or the relay's own address). */
  relayIp: string;
  relayPort: number;
  /** Redis key prefix. @default DEFAULT_PREFIX */
  prefix?: string;
  /** `P:session:<vip>` TTL; refresh() must run more often. @default 30_000 */
  ttlMs?: number;
  logger: Logger;
  /** The mesh address for every session event, when the relay runs meshed. */
  eventFields?: Pick<SessionEvent, 'meshIp' | 'meshPort'>;
}

/** DEL the session key only if this relay still owns it (a member may have moved on). */
const DEL_IF_OURS = `if redis.call('HGET', KEYS[1], 'relayId') == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Refresh one session record: extend its TTL if it names this relay, re-create it if it is
 * gone (Redis restarted without the data, or the TTL ran out during an outage), and leave it
 * alone if another relay owns it now (the member moved; our binding is stale).
 * KEYS[1] session key; ARGV relayId relayIp relayPort agentIp agentPort since ttlMs.
 */
const REFRESH_IF_OURS = `local cur = redis.call('HGET', KEYS[1], 'relayId')
if cur and cur ~= ARGV[1] then return 0 end
if not cur then
  redis.call('HSET', KEYS[1], 'relayIp', ARGV[2], 'relayPort', ARGV[3], 'agentIp', ARGV[4], 'agentPort', ARGV[5], 'relayId', ARGV[1], 'since', ARGV[6])
end
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if not cur then return 2 end
return 1`;

/** Sessions per refresh pipeline: the commands of one chunk are in memory at a time, not all. */
const REFRESH_CHUNK = 1000;

export class RedisSessionRecorder implements SessionListener {
  private readonly keys: RedisKeys;
  private readonly ttlMs: number;
  private refreshing = false;

  constructor(private readonly redis: Redis, private readonly o: SessionRecorderOptions) {
    this.keys = redisKeys(o.prefix ?? DEFAULT_PREFIX);
    this.ttlMs = o.ttlMs ?? 30_000;
  }

  private key(vip: number): string {
    return this.keys.session(formatAddr(vip));
  }

  private event(type: SessionEventType, s: Session): string {
    return encodeEvent({ ...this.o.eventFields, type, vip: formatAddr(s.vip), relayId: this.o.relayId });
  }

  sessionUp(s: Session): void {
    const k = this.key(s.vip);
    this.redis.multi()
      .del(k)
      .hset(k, {
        relayIp: this.o.relayIp, relayPort: String(this.o.relayPort), agentIp: formatAddr(s.addr), agentPort: String(s.port),
        relayId: this.o.relayId, since: String(Date.now()),
      })
      .pexpire(k, this.ttlMs)
      .publish(this.keys.events, this.event(EventType.SessionUp, s))
      .exec()
      .catch((e: Error) => this.o.logger.warn({ err: e.message, vip: formatAddr(s.vip) }, 'recording session failed'));
  }

  sessionDown(s: Session, why: 'replaced' | 'expired' | 'closed'): void {
    // A replaced binding is immediately followed by sessionUp for the same vip (or another).
    if (why === 'replaced') return;
    this.redis.eval(DEL_IF_OURS, 1, this.key(s.vip), this.o.relayId)
      .then((n) => {
        if (n === 1) return this.redis.publish(this.keys.events, this.event(EventType.SessionDown, s));
        return undefined;
      })
      .catch((e: Error) => this.o.logger.warn({ err: e.message, vip: formatAddr(s.vip) }, 'removing session failed'));
  }

  /**
   * Extend the TTL of every live session, re-creating records Redis lost (called by the relay
   * every sessionRefreshMs). Never overwrites a record another relay owns.
   */
  refresh(sessions: Iterable<Session>): void {
    // Redis unreachable: skip (no failed command queued, no log line per refresh); the first
    // refresh once it is back re-asserts every record. One refresh at a time.
    if (this.redis.status !== 'ready' || this.refreshing) return;
    // In chunks, each sent when the last one answered: with 50k sessions one pipeline of every
    // EVAL (script text, argument strings, a promise each) was tens of MB of heap every 10 s,
    // which the relay's RSS kept; a chunk is ~1 MB. The first chunk goes out now.
    const it = sessions[Symbol.iterator]();
    const now = String(Date.now());
    const ttl = String(this.ttlMs);
    const port = String(this.o.relayPort);
    const next = (): Promise<unknown> | undefined => {
      const p = this.redis.pipeline();
      let n = 0;
      for (let r = it.next(); !r.done; r = it.next()) {
        const s = r.value;
        p.eval(REFRESH_IF_OURS, 1, this.key(s.vip), this.o.relayId, this.o.relayIp, port, formatAddr(s.addr), String(s.port), now, ttl);
        if (++n >= REFRESH_CHUNK) break;
      }
      if (n === 0) return undefined;
      return p.exec().then(() => (n < REFRESH_CHUNK || this.redis.status !== 'ready' ? undefined : next()));
    };
    const first = next();
    if (!first) return;
    this.refreshing = true;
    first.catch((e: Error) => this.o.logger.warn({ err: e.message }, 'refreshing sessions failed'))
      .finally(() => { this.refreshing = false; });
  }
}
