/**
 * The member directory: original IP / virtual IP / hostname → member, read from Redis
 * (keys and events in common/redis-schema.ts, written by the coordinator and relays) through a
 * local cache.
 *
 * Freshness: the cache subscribes to the events channel. An event naming vip V drops exactly
 * V's entries, by key: its node entry and, through the reverse index of alias-cache.ts, the
 * original IP and hostname that point at V; O(1) per event, whatever the cache holds (a relay
 * failover of 10,000 members is 10,000 session-up events). A node event (node-up/-changed/
 * -removed) also retires every negative entry at once, by bumping a generation (a new or
 * re-registered member may own a name we cached as unknown); session events touch nothing
 * else, and `policy-changed` (no mapping changed) touches nothing at all. Events arrive
 * within milliseconds, so a re-join or relay move is seen well inside 1 s. While the
 * subscription is down nothing is cached (events could be missed), and when it comes back
 * the whole cache is flushed. The one change no event announces is a session key expiring by
 * its TTL (its relay died): an online entry is kept only until its session key's own expiry as
 * read (PTTL; the relay's refreshes move it, and the next read sees that), so it never outlives
 * the session it shows. A positive TTL (`ttlMs`) bounds everything else.
 *
 * A miss is one round trip (RESOLVE_LUA: the name, the member's hash, its session and the
 * session's PTTL in one read-only script), so a lookup costs the same whatever the number of
 * members, cached or not.
 *
 * A fetch that was in flight when an event for its vip arrived does not store its result
 * (it may predate the change); fetches for other vips still do.
 */
import { Redis } from 'ioredis';
import { connectRedis, watchRedis, type RedisSpec, type Logger, silentLogger, DEFAULT_PREFIX, EventType, decodeEvent, redisKeys, type RedisKeys, type ClusterEvent } from '../common';
import { DirectoryClosedError } from './errors';
import { AliasCache, type AliasSlot } from './alias-cache';

export interface Endpoint {
  ip: string;
  port: number;
}

export interface MapEntry {
  originalIp: string;
  virtualIp: string;
  hostname: string | null;
  /** a relay session exists for this member */
  online: boolean;
  relay: Endpoint | null;
  agent: Endpoint | null;
  tags: string[];
  /** ms since the epoch, or null if never seen */
  lastSeen: number | null;
}

/** What the API and the proxies need; RedisDirectory is the real one. */
export interface MemberDirectory {
  byOriginalIp(ip: string): Promise<MapEntry | null>;
  byVirtualIp(vip: string): Promise<MapEntry | null>;
  byHostname(hostname: string): Promise<MapEntry | null>;
}

export interface DirectoryOptions {
  /** redis URL or connection options (common/redis-connect.ts), or a connected client to duplicate */
  redis: RedisSpec | Redis;
  /** Redis key prefix. @default DEFAULT_PREFIX (common/redis-schema.ts) */
  prefix?: string;
  /** positive entries live at most this long @default 10000 */
  ttlMs?: number;
  /** unknown names are remembered this long @default 1000 */
  negativeTtlMs?: number;
  /** @default 100000 */
  maxEntries?: number;
  logger?: Logger;
  /**
   * `start()` returns at once even if Redis does not answer yet: the clients keep retrying,
   * the subscription is made when Redis answers (`isLive` turns true), and reachability is
   * logged once per change of state. @default false (start() fails if Redis is down)
   */
  waitForRedis?: boolean;
}

export const DEFAULT_DIRECTORY_OPTIONS = { prefix: DEFAULT_PREFIX, ttlMs: 30_000, negativeTtlMs: 1_000, maxEntries: 100_000 } as const;

/** `until`: ms (Date.now()) after which the slot is not used. */
interface NodeSlot { entry: MapEntry | null; at: number; until: number }

/**
 * One read of a member: KEYS[1] (optional) a name key (`orig:`/`host:`) holding its vip, else
 * ARGV[3] the vip; ARGV[1], ARGV[2] the heads of the `node:` and `session:` keys. Returns false
 * when the name points nowhere, else {vip, node hash (flat), session hash (flat), session PTTL}.
 * Reads only (EVALSHA; its reads count in INFO commandstats as GET/HGETALL/PTTL).
 */
const RESOLVE_LUA = `local vip = ARGV[3]
if ARGV[4] ~= '' then
  vip = redis.call('GET', ARGV[4])
  if not vip then return false end
end
local s = ARGV[2] .. vip
return { vip, redis.call('HGETALL', ARGV[1] .. vip), redis.call('HGETALL', s), redis.call('PTTL', s) }`;

type Resolved = { vip: string; entry: MapEntry | null; sessionTtlMs: number };

function pairs(flat: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  return o;
}

export interface DirectoryStats {
  hits: number;
  misses: number;
  events: number;
  badEvents: number;
  flushes: number;
  /** cached entries (node and names) dropped by events */
  invalidated: number;
}

export class RedisDirectory implements MemberDirectory {
  readonly stats: DirectoryStats = { hits: 0, misses: 0, events: 0, badEvents: 0, flushes: 0, invalidated: 0 };
  private readonly keys: RedisKeys;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly ttlMs: number;
  private readonly negTtlMs: number;
  private readonly maxEntries: number;
  private readonly log: Logger;
  private readonly nodes = new Map<string, NodeSlot>();
  private readonly origs: AliasCache;
  private readonly hosts: AliasCache;
  private readonly inflight = new Map<string, Promise<MapEntry | null>>();
  /** Counts invalidations. A fetch notes it at its start and may store a result for vip V
   *  only if V was not invalidated since (`changedAt`), nor everything (`flushedAt`). */
  private seq = 0;
  private flushedAt = 0;
  /** vip → seq of its last invalidation; only needed while fetches are in flight */
  private readonly changedAt = new Map<string, number>();
  /** negative name entries are valid only under the generation they were cached in */
  private negGen = 0;
  /** true while subscribed: only then may anything be cached */
  private live = false;
  private closed = false;

  constructor(opts: DirectoryOptions) {
    this.keys = redisKeys(opts.prefix ?? DEFAULT_PREFIX);
    this.ttlMs = opts.ttlMs ?? DEFAULT_DIRECTORY_OPTIONS.ttlMs;
    this.negTtlMs = opts.negativeTtlMs ?? DEFAULT_DIRECTORY_OPTIONS.negativeTtlMs;
    this.maxEntries = opts.maxEntries ?? DEFAULT_DIRECTORY_OPTIONS.maxEntries;
    this.origs = new AliasCache(this.maxEntries);
    this.hosts = new AliasCache(this.maxEntries);
    this.log = opts.logger ?? silentLogger();
    const common = { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5000, enableAutoPipelining: false };
    const own = !(opts.redis instanceof Redis);
    this.cmd = own ? connectRedis(opts.redis as RedisSpec, common) : (opts.redis as Redis).duplicate(common);
    this.sub = own ? connectRedis(opts.redis as RedisSpec, common) : (opts.redis as Redis).duplicate(common);
    this.cmd.defineCommand('isthmusMapperResolve', { lua: RESOLVE_LUA });
    this.sub.on('message', (_ch: string, msg: string) => this.onEvent(msg));
    // A reconnect means events may have been missed: stop caching until resubscribed, then flush.
    this.sub.on('close', () => { if (this.live) this.log.warn('events subscription lost; cache disabled'); this.live = false; this.flush(); });
    this.sub.on('ready', () => {
      if (this.closed || this.live || !this.started) return;
      // Confirmed subscription first: an event published before it would be missed.
      this.sub.subscribe(this.keys.events).then(() => {
        if (this.closed) return;
        this.flush();
        this.live = true;
        this.emit(undefined);
        this.onLive?.();
        this.log.info('events subscription restored; cache flushed');
      }, () => { /* the next 'ready' retries */ });
    });
    this.cmd.on('error', (err: Error) => { this.lastError = err; this.log.debug({ err: err.message }, 'redis error'); });
    this.sub.on('error', (err: Error) => { this.lastError = err; this.log.debug({ err: err.message }, 'redis subscriber error'); });
    this.waitForRedis = !!opts.waitForRedis;
    if (this.waitForRedis && own) watchRedis(this.cmd, opts.redis as RedisSpec, this.log);
  }

  private readonly waitForRedis: boolean;
  private onLive: (() => void) | undefined;
  private readonly listeners: Array<(e: ClusterEvent | undefined) => void> = [];

  /** Also hear `P:events` (undefined: a resubscribe, or an event that could not be read: anything may have changed). */
  onClusterEvent(listener: (e: ClusterEvent | undefined) => void): void {
    this.listeners.push(listener);
  }

  private emit(e: ClusterEvent | undefined): void {
    for (const l of this.listeners) l(e);
  }

  private started = false;
  /** the client's last error, to say why a start failed (the rejection itself only says the connection closed) */
  private lastError: Error | undefined;

  /** Subscribed to events, so the cache is in use. */
  get isLive(): boolean {
    return this.live;
  }

  async start(): Promise<void> {
    if (this.waitForRedis) {
      // The 'ready' handler subscribes (and turns the cache on) once Redis answers.
      this.started = true;
      // Redis answering: return once subscribed (the first lookups are cached). Down: at once.
      const up = new Promise<void>((resolve) => { this.onLive = resolve; });
      const down = new Promise<void>((resolve) => { this.sub.once('error', () => resolve()); });
      this.cmd.connect().catch(() => { /* retried by the client; logged by watchRedis */ });
      this.sub.connect().catch(() => { /* retried by the client */ });
      await Promise.race([up, down]);
      this.onLive = undefined;
      return;
    }
    try {
      await Promise.all([this.cmd.connect(), this.sub.connect()]);
      await this.sub.subscribe(this.keys.events);
    } catch (err) {
      throw new Error(this.lastError?.message ?? (err as Error).message);
    }
    this.started = true;
    this.flush();
    this.live = true;
    this.log.info({ channel: this.keys.events }, 'directory started');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.live = false;
    this.flush();
    this.cmd.disconnect();
    this.sub.disconnect();
  }

  /** Drops everything cached. */
  flush(): void {
    this.flushedAt = ++this.seq;
    this.changedAt.clear();
    this.stats.flushes++;
    this.nodes.clear();
    this.origs.clear();
    this.hosts.clear();
  }

  /** Drops what is cached about one member (its entry, and the names pointing at it): O(1). */
  invalidate(vip: string): void {
    const n = ++this.seq;
    if (this.inflight.size > 0) {
      // Bounded by the number of members; past the cache's size, forgetting is cheaper.
      if (this.changedAt.size >= this.maxEntries) {
        this.flushedAt = n;
        this.changedAt.clear();
      } else {
        this.changedAt.set(vip, n);
      }
    }
    let dropped = this.nodes.delete(vip) ? 1 : 0;
    dropped += this.origs.dropVip(vip) + this.hosts.dropVip(vip);
    this.stats.invalidated += dropped;
  }

  /** Retires every negative name entry (a new member may own a name cached as unknown): O(1). */
  private forgetUnknown(): void {
    this.negGen++;
  }

  /** May a fetch that started at `since` store what it read for `vip`? */
  private fresh(vip: string, since: number): boolean {
    return this.flushedAt <= since && (this.changedAt.get(vip) ?? 0) <= since;
  }

  private onEvent(msg: string): void {
    this.stats.events++;
    const e = decodeEvent(msg);
    if (!e) {
      // An event we cannot attribute: flushing everything is the only safe answer.
      this.stats.badEvents++;
      this.flush();
      this.emit(undefined);
      return;
    }
    this.emit(e);
    if (e.type === EventType.PolicyChanged || e.type === EventType.ProxyUserChanged) return; // no mapping changed
    if (e.type !== EventType.SessionUp && e.type !== EventType.SessionDown) this.forgetUnknown();
    this.invalidate(e.vip);
  }

  async byOriginalIp(ip: string): Promise<MapEntry | null> {
    return this.viaAlias(this.origs, 'o:' + ip, ip, this.keys.orig(ip), (e) => e.originalIp === ip);
  }

  /**
   * Hostnames are case-insensitive but stored as registered: try the name as written, then
   * lower-cased.
   */
  async byHostname(hostname: string): Promise<MapEntry | null> {
    const h = hostname.replace(/\.$/, '');
    const match = (e: MapEntry) => e.hostname?.toLowerCase() === h.toLowerCase();
    const exact = await this.viaAlias(this.hosts, 'h:' + h, h, this.keys.host(h), match);
    if (exact || h.toLowerCase() === h) return exact;
    const lc = h.toLowerCase();
    return this.viaAlias(this.hosts, 'h:' + lc, lc, this.keys.host(lc), match);
  }

  async byVirtualIp(vip: string): Promise<MapEntry | null> {
    const now = Date.now();
    const slot = this.nodes.get(vip);
    if (slot && now < slot.until) { this.stats.hits++; return slot.entry; }
    this.stats.misses++;
    return this.coalesce('v:' + vip, async () => {
      const since = this.seq;
      const r = await this.resolve(undefined, vip);
      if (this.fresh(vip, since)) this.putNode(vip, this.slotOf(r!));
      return r!.entry;
    });
  }

  private async viaAlias(map: AliasCache, flightKey: string, name: string, redisKey: string,
    matches: (e: MapEntry) => boolean): Promise<MapEntry | null> {
    if (this.closed) throw new DirectoryClosedError();
    const now = Date.now();
    const a = map.get(name);
    const owner = a?.vip;
    if (a && owner === null) {
      if (a.negGen === this.negGen && now - a.at < this.negTtlMs) { this.stats.hits++; return null; }
    } else if (a && owner && now - a.at < this.ttlMs) {
      const slot = this.nodes.get(owner);
      if (slot?.entry && now < slot.until && matches(slot.entry)) { this.stats.hits++; return slot.entry; }
    }
    this.stats.misses++;
    return this.coalesce(flightKey, async () => {
      const since = this.seq;
      const negGen = this.negGen;
      const r = await this.resolve(redisKey);
      // A negative entry keeps the generation it started under: a node event meanwhile retires it.
      if (!r) {
        if (this.flushedAt <= since) this.putAlias(map, name, { vip: null, at: Date.now(), negGen });
        return null;
      }
      if (this.fresh(r.vip, since)) {
        this.putNode(r.vip, this.slotOf(r));
        this.putAlias(map, name, r.entry ? { vip: r.vip, at: Date.now(), negGen } : { vip: null, at: Date.now(), negGen });
      }
      return r.entry;
    });
  }

  private coalesce(key: string, fn: () => Promise<MapEntry | null>): Promise<MapEntry | null> {
    const cur = this.inflight.get(key);
    if (cur) return cur;
    const p = fn().finally(() => {
      this.inflight.delete(key);
      // Nothing in flight: no fetch can ask about earlier invalidations any more.
      if (this.inflight.size === 0) this.changedAt.clear();
    });
    this.inflight.set(key, p);
    return p;
  }

  private putNode(vip: string, slot: NodeSlot): void {
    if (!this.live) return;
    this.nodes.delete(vip);
    if (this.nodes.size >= this.maxEntries) {
      const oldest = this.nodes.keys().next();
      if (!oldest.done) this.nodes.delete(oldest.value);
    }
    this.nodes.set(vip, slot);
  }

  private putAlias(map: AliasCache, name: string, slot: AliasSlot): void {
    if (this.live) map.set(name, slot);
  }

  /** A cache slot for what was just read: an online entry ends when its session key would expire. */
  private slotOf(r: Resolved): NodeSlot {
    const at = Date.now();
    if (!r.entry) return { entry: null, at, until: at + this.negTtlMs };
    let until = at + this.ttlMs;
    if (r.entry.online && r.sessionTtlMs >= 0) until = Math.min(until, at + r.sessionTtlMs);
    return { entry: r.entry, at, until };
  }

  /** One round trip: the member a name key points at (undefined: it points nowhere), or the member at `vip`. */
  private async resolve(nameKey: string | undefined, vip = ''): Promise<Resolved | undefined> {
    const run = (this.cmd as unknown as { isthmusMapperResolve(...a: (string | number)[]): Promise<unknown> }).isthmusMapperResolve;
    const head = [this.keys.node(''), this.keys.session('')];
    // Every key goes in ARGV, none in KEYS: EVALSHA's KEYS need read AND write access under an
    // ACL, and the mapper's user may only read (docs/SECURITY.md); the reads inside are checked
    // against its key patterns one by one.
    const res = await run.call(this.cmd, 0, ...head, vip, nameKey ?? '') as
      [string, string[], string[], number] | null;
    if (!res) return undefined;
    const node = pairs(res[1]);
    return { vip: res[0], entry: node.orig ? toEntry(res[0], node, pairs(res[2])) : null, sessionTtlMs: Number(res[3]) };
  }
}

/** Pure: the Redis hashes → a MapEntry. Tolerates missing or junk fields. */
export function toEntry(vip: string, node: Record<string, string>, sess: Record<string, string>): MapEntry {
  let tags: string[] = [];
  try {
    const t: unknown = JSON.parse(node.tags ?? '[]');
    if (Array.isArray(t)) tags = t.filter((x): x is string => typeof x === 'string');
  } catch { /* junk tags: treat as none */ }
  const ep = (ip?: string, port?: string): Endpoint | null => {
    const p = Number(port);
    return ip && Number.isInteger(p) && p > 0 && p < 65536 ? { ip, port: p } : null;
  };
  const relay = ep(sess.relayIp, sess.relayPort);
  const seen = Number(node.lastSeen);
  return {
    originalIp: node.orig!,
    virtualIp: vip,
    hostname: node.hostname || null,
    online: relay !== null,
    relay,
    agent: ep(sess.agentIp, sess.agentPort),
    tags,
    lastSeen: Number.isFinite(seen) && seen > 0 ? seen : null,
  };
}
