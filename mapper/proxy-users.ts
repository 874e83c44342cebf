/**
 * Proxy users as a gateway sees them: `verify(name, password)` → the user and its tags, or
 * null. The records are the coordinator's (`P:proxy-user:<name>`, coordinator/proxy-users.ts:
 * salted scrypt, never the password).
 *
 * Cache, and how long a revoked user can still get in:
 *   - a verified (name, password) pair is remembered as (HMAC of the password under a
 *     per-process key, the stored hash it matched), so a repeat needs no scrypt;
 *   - an entry is trusted without asking Redis for at most `revalidateMs` (1 s), and only while
 *     the `P:events` subscription is up; after that one HGETALL re-checks that the stored hash
 *     is still the one verified (a changed or missing record: full check / refusal);
 *   - `proxy-user-changed` for a name drops its entry at once (milliseconds after a revoke);
 *     losing the subscription drops every entry.
 *   So a revoke is seen at once through the event, and within `revalidateMs` even if the
 *   event is lost. A verification in flight when an event (for any user) arrives returns
 *   its answer but does not cache it.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Redis } from 'ioredis';
import { connectRedis, decodeEvent, redisKeys, silentLogger, DEFAULT_PREFIX, EventType, type ClusterEvent, type Logger, type RedisKeys, type RedisSpec } from '../common';
import { PROXY_USER_NAME, proxyUserFromHash, verifyProxyPassword } from '../coordinator';

/** A proxy user as a gateway acts for it: the policy sees `tags` as the source. */
export interface ProxyUser {
  name: string;
  tags: string[];
}

/** Checks proxy credentials; null for an unknown user or a wrong password. Rejects when it cannot tell (Redis down). */
export interface ProxyUserVerifier {
  verify(name: string, password: string): Promise<ProxyUser | null>;
}

export interface RedisProxyUsersOptions {
  /** redis URL or connection options, or a connected client to duplicate */
  redis: RedisSpec | Redis;
  /** @default DEFAULT_PREFIX */
  prefix?: string;
  /** longest a cached verification is used without asking Redis @default 1000 */
  revalidateMs?: number;
  /** @default 10000 */
  maxEntries?: number;
  logger?: Logger;
}

export const DEFAULT_REVALIDATE_MS = 1000;

/** Verification outcomes, also the metric label values. */
export const VERIFY_RESULTS = ['ok', 'cached', 'revalidated', 'unknown-user', 'bad-password', 'unavailable'] as const;
export type VerifyResult = (typeof VERIFY_RESULTS)[number];

interface Entry {
  user: ProxyUser;
  pw: Buffer;
  storedHash: Buffer;
  checkedAt: number;
}

export class RedisProxyUsers implements ProxyUserVerifier {
  readonly results: Record<VerifyResult, number> = { ok: 0, cached: 0, revalidated: 0, 'unknown-user': 0, 'bad-password': 0, unavailable: 0 };
  /** The command connection, for other gateway reads (the policy). */
  readonly redis: Redis;
  private readonly sub: Redis;
  private readonly keys: RedisKeys;
  private readonly revalidateMs: number;
  private readonly maxEntries: number;
  private readonly log: Logger;
  private readonly hmacKey = randomBytes(32);
  private readonly cache = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<ProxyUser | null>>();
  private readonly listeners: Array<(e: ClusterEvent | undefined) => void> = [];
  /** Bumped by every event and flush: a verification that saw it change does not cache. */
  private epoch = 0;
  private live = false;
  private closed = false;

  constructor(o: RedisProxyUsersOptions) {
    this.keys = redisKeys(o.prefix ?? DEFAULT_PREFIX);
    this.revalidateMs = o.revalidateMs ?? DEFAULT_REVALIDATE_MS;
    this.maxEntries = o.maxEntries ?? 10_000;
    this.log = o.logger ?? silentLogger();
    const common = { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5000 };
    const own = !(o.redis instanceof Redis);
    this.redis = own ? connectRedis(o.redis as RedisSpec, common) : (o.redis as Redis).duplicate(common);
    this.sub = own ? connectRedis(o.redis as RedisSpec, common) : (o.redis as Redis).duplicate(common);
    this.redis.on('error', (err: Error) => this.log.debug({ err: err.message }, 'redis error (proxy users)'));
    this.sub.on('error', (err: Error) => this.log.debug({ err: err.message }, 'redis subscriber error (proxy users)'));
    this.sub.on('message', (_ch: string, msg: string) => this.onEvent(msg));
    this.sub.on('close', () => {
      if (this.live) this.log.warn('proxy-user events subscription lost: every verification asks Redis');
      this.live = false;
      this.flush();
    });
    this.sub.on('ready', () => {
      if (this.closed) return;
      this.sub.subscribe(this.keys.events).then(() => {
        if (this.closed) return;
        this.flush();
        this.live = true;
        this.emit(undefined);
      }, () => { /* the next 'ready' retries */ });
    });
  }

  /** Connects (returns at once if Redis is down: the clients keep retrying). */
  async start(): Promise<void> {
    this.redis.connect().catch(() => undefined);
    this.sub.connect().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.live = false;
    this.flush();
    this.redis.disconnect();
    this.sub.disconnect();
  }

  /** Subscribed to `P:events` (revocations arrive at once) and the command connection is up. */
  get isLive(): boolean {
    return this.live && this.redis.status === 'ready';
  }

  /** Every decoded `P:events` message; undefined after (re)subscribing (events may have been missed). */
  onClusterEvent(listener: (e: ClusterEvent | undefined) => void): void {
    this.listeners.push(listener);
  }

  private emit(e: ClusterEvent | undefined): void {
    for (const l of this.listeners) l(e);
  }

  private flush(): void {
    this.epoch++;
    this.cache.clear();
  }

  private onEvent(msg: string): void {
    const e = decodeEvent(msg);
    if (e?.type === EventType.ProxyUserChanged) {
      this.epoch++;
      this.cache.delete(e.name);
    }
    if (e) this.emit(e);
  }

  private digest(password: string): Buffer {
    return createHmac('sha256', this.hmacKey).update(password, 'utf8').digest();
  }

  async verify(name: string, password: string): Promise<ProxyUser | null> {
    if (this.closed) throw new Error('proxy user verifier is closed');
    if (!PROXY_USER_NAME.test(name) || password.length === 0 || password.length > 255) { this.results['unknown-user']++; return null; }
    const pw = this.digest(password);
    const e = this.cache.get(name);
    if (e && timingSafeEqual(e.pw, pw) && this.live && Date.now() - e.checkedAt < this.revalidateMs) {
      this.results.cached++;
      return e.user;
    }
    const key = `${name}\n${pw.toString('hex')}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.check(name, password, pw, e).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async check(name: string, password: string, pw: Buffer, cached: Entry | undefined): Promise<ProxyUser | null> {
    const epoch = this.epoch;
    let rec;
    try {
      rec = proxyUserFromHash(name, await this.redis.hgetall(this.keys.proxyUser(name)));
    } catch (err) {
      this.results.unavailable++;
      throw new Error(`proxy users unavailable: ${(err as Error).message}`);
    }
    if (!rec) { this.cache.delete(name); this.results['unknown-user']++; return null; }
    const user: ProxyUser = { name, tags: rec.tags };
    let result: VerifyResult;
    if (cached && timingSafeEqual(cached.pw, pw) && cached.storedHash.equals(rec.hash)) {
      result = 'revalidated';
    } else if (await verifyProxyPassword(rec, password)) {
      result = 'ok';
    } else {
      this.results['bad-password']++;
      return null;
    }
    this.results[result]++;
    if (epoch === this.epoch && this.live) {
      this.cache.delete(name);
      if (this.cache.size >= this.maxEntries) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(name, { user, pw, storedHash: rec.hash, checkedAt: Date.now() });
    }
    return user;
  }
}
