/**
 * One way for every daemon (coordinator, relay, mapper) to reach Redis: a `redis://` or
 * `rediss://` URL, or the parts of one (`RedisConnectFlags`, what the CLI's Redis flags give),
 * or a full ioredis options object (a coordinator `--config` may still give one).
 *
 *   const redis = connectRedis(redisSpecFrom({ url: 'rediss://r1:6380', user: 'relay',
 *     password, ca: readFileSync('ca.pem') }));
 *
 * Sentinel: `sentinels: ['s1:26379', 's2:26379'], sentinelName: 'mymaster'`. The password,
 * ACL user and TLS settings apply to the master; `sentinelPassword` to the sentinels.
 * Nothing here logs; `describeRedis` / `redactUrl` give a form safe for logs and errors.
 */
import type { default as Redis, RedisOptions } from 'ioredis';
import { createFollowingRedis } from './sentinel-switch';

export type RedisSpec = string | RedisOptions;

/** The parts of a Redis connection, secrets already read from their files. */
export interface RedisConnectFlags {
  /** `redis://[user[:password]@]host:port[/db]` or `rediss://…` (TLS); not with `sentinels` */
  url?: string;
  /** ACL user (overrides one in the URL) */
  user?: string;
  /** password (overrides one in the URL) */
  password?: string;
  /** PEM CA bundle that signs the server's certificate; implies TLS */
  ca?: string | Buffer;
  /** `HOST:PORT` of each sentinel */
  sentinels?: string[];
  /** master name the sentinels watch */
  sentinelName?: string;
  sentinelPassword?: string;
}

export class RedisConfigError extends Error {
  override name = 'RedisConfigError';
}

function hostPort(value: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]\s]+?)\]?:(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new RedisConfigError(`${what} must be HOST:PORT, got ${JSON.stringify(value)}`);
  return { host: m[1], port: Number(m[2]) };
}

/** A URL → ioredis options. Throws RedisConfigError (password never in the message). */
export function parseRedisUrl(url: string): RedisOptions {
  if (!/^rediss?:\/\/./.test(url)) throw new RedisConfigError(`--redis must be a redis:// or rediss:// URL, got ${JSON.stringify(redactUrl(url))}`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisConfigError(`--redis is not a valid URL: ${JSON.stringify(redactUrl(url))}`);
  }
  const o: RedisOptions = { host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: u.port ? Number(u.port) : 6379 };
  if (u.username) o.username = decodeURIComponent(u.username);
  if (u.password) o.password = decodeURIComponent(u.password);
  const db = u.pathname.replace(/^\//, '');
  if (db) {
    if (!/^\d{1,2}$/.test(db)) throw new RedisConfigError(`--redis: database must be a number, got ${JSON.stringify(db)}`);
    o.db = Number(db);
  }
  if (u.protocol === 'rediss:') o.tls = { servername: /^[\d.]+$/.test(o.host!) ? undefined : o.host };
  return o;
}

/** The flags → one ioredis options object. Throws RedisConfigError naming the flag at fault. */
export function redisSpecFrom(f: RedisConnectFlags): RedisOptions {
  const sentinel = (f.sentinels?.length ?? 0) > 0;
  if (sentinel && f.url) throw new RedisConfigError('give either --redis URL or --redis-sentinel, not both');
  if (!sentinel && !f.url) throw new RedisConfigError('Missing --redis URL (or --redis-sentinel HOST:PORT with --redis-sentinel-name)');
  if (sentinel && !f.sentinelName) throw new RedisConfigError('--redis-sentinel needs --redis-sentinel-name NAME (the master the sentinels watch)');
  if (!sentinel && (f.sentinelName || f.sentinelPassword !== undefined)) throw new RedisConfigError('--redis-sentinel-name and the sentinel password need --redis-sentinel HOST:PORT');
  const o: RedisOptions = sentinel
    ? { sentinels: f.sentinels!.map((s) => hostPort(s, '--redis-sentinel')), name: f.sentinelName }
    : parseRedisUrl(f.url!);
  if (f.user !== undefined) o.username = f.user;
  if (f.password !== undefined) o.password = f.password;
  if (f.sentinelPassword !== undefined) o.sentinelPassword = f.sentinelPassword;
  if (f.ca !== undefined) {
    o.tls = { ...(o.tls ?? {}), ca: f.ca };
    if (sentinel) {
      o.enableTLSForSentinelMode = true;
      o.sentinelTLS = { ca: f.ca };
    }
  }
  return o;
}

export function connectRedis(spec: RedisSpec, extra: RedisOptions = {}): Redis {
  const opts = typeof spec === 'string' ? parseRedisUrl(spec) : spec;
  const sentinel = (opts.sentinels?.length ?? 0) > 0;
  const base: RedisOptions = {
    maxRetriesPerRequest: 3, enableAutoPipelining: true, retryStrategy: redisRetryStrategy(),
    ...(sentinel ? SENTINEL_FAILOVER_OPTIONS : {}), ...extra,
  };
  return createFollowingRedis({ ...base, ...opts });
}

/** How long a client behind Sentinel waits at most between reconnects: a failover ends within
 *  seconds and the sentinels say where the new master is, so retrying soon is cheap. */
export const REDIS_SENTINEL_RETRY_CAP_MS = 1_000;

/**
 * What every client behind Sentinel adds (its `duplicate()`s inherit them), so that a failover
 * moves all of a daemon's connections — commands and subscriptions — to the new master (with
 * common/sentinel-switch.ts, which reconnects them the moment the sentinels announce a switch):
 *
 * - `reconnectOnError`: a `READONLY` reply means the node was demoted under us: reconnect
 *   (through the sentinels) and resend that command.
 * - a shorter reconnect cap (`REDIS_SENTINEL_RETRY_CAP_MS`), so a client that was backing off
 *   while the master was dead finds the promoted one within about a second of the switch.
 */
export const SENTINEL_FAILOVER_OPTIONS: RedisOptions = {
  reconnectOnError: (err: Error) => (/^READONLY\b/.test(err.message) ? 2 : false),
  retryStrategy: redisRetryStrategy(Math.random, REDIS_SENTINEL_RETRY_CAP_MS),
};

/** A Redis URL safe to log: the password is replaced. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_m, auth: string) => `//${auth.includes(':') ? auth.split(':')[0] + ':***' : '***'}@`);
}

/** Where a spec points, for logs and errors: never a password. */
export function describeRedis(spec: RedisSpec): string {
  if (typeof spec === 'string') return redactUrl(spec);
  if (spec.sentinels?.length) return `sentinel ${spec.name ?? '?'} via ${spec.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
  const scheme = spec.tls ? 'rediss' : 'redis';
  const who = spec.username ? `${spec.username}@` : '';
  return `${scheme}://${who}${spec.host ?? '127.0.0.1'}:${spec.port ?? 6379}${spec.db ? `/${spec.db}` : ''}`;
}

/**
 * `text` with every secret in `secrets` replaced by `***`: for error messages from the
 * client library, which may echo what it was given.
 */
export function scrubSecrets(text: string, secrets: Array<string | undefined>): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 1) out = out.split(s).join('***');
  return out;
}

/** The secrets in a spec (password, sentinel password), for `scrubSecrets`. */
export function redisSecrets(spec: RedisSpec): string[] {
  if (typeof spec === 'string') {
    try {
      const p = new URL(spec).password;
      return p ? [p, decodeURIComponent(p)] : [];
    } catch {
      return [];
    }
  }
  return [spec.password, spec.sentinelPassword].filter((s): s is string => typeof s === 'string' && s.length > 0);
}

/** Reconnect delays: full jitter over a doubling window, from `REDIS_RETRY_BASE_MS` up to the cap. */
export const REDIS_RETRY_BASE_MS = 100;
export const REDIS_RETRY_CAP_MS = 5_000;

/**
 * An ioredis `retryStrategy`: never gives up (a daemon waits for Redis however long it is
 * down), waits a random time in [base, min(cap, base·2^attempt)]. `random` for tests.
 */
export function redisRetryStrategy(random: () => number = Math.random, capMs = REDIS_RETRY_CAP_MS): (attempt: number) => number {
  return (attempt: number) => {
    const ceiling = Math.min(capMs, REDIS_RETRY_BASE_MS * 2 ** Math.min(Math.max(attempt - 1, 0), 20));
    return Math.max(REDIS_RETRY_BASE_MS, Math.floor(random() * ceiling));
  };
}

/** True for an error that means "Redis is not reachable now" (not a bad command or script). */
export function isRedisUnavailableError(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string } | undefined;
  if (!e) return false;
  if (e.name === 'MaxRetriesPerRequestError') return true;
  if (e.code && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE)$/.test(e.code)) return true;
  return /^(Connection is closed|Stream isn't writeable|Reached the max retries per request limit)/.test(e.message ?? '')
    || /^(LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN)\b/.test(e.message ?? '');
}

/** What `watchRedis` logs through: the daemons' pino loggers fit. */
export interface RedisStateLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * Logs a client's reachability once per change of state, never once per retry and never a
 * stack trace: `redis unreachable, retrying` (with the scrubbed reason) when it goes down (or
 * is down at start), `redis reachable again` when it comes back. Swallows the client's
 * `error` events (ioredis would print them otherwise). Returns `isUp()`.
 */
export function watchRedis(client: Redis, spec: RedisSpec, log: RedisStateLogger, what = 'redis'): { isUp(): boolean; everUp(): boolean } {
  const secrets = redisSecrets(spec);
  const where = describeRedis(spec);
  let state: 'unknown' | 'up' | 'down' = 'unknown';
  let ever = false;
  client.on('error', (e: Error) => {
    if (state === 'down') return;
    state = 'down';
    log.warn({ redis: where, client: what, err: scrubSecrets(e.message, secrets) }, 'redis unreachable, retrying');
  });
  client.on('ready', () => {
    if (state === 'down') log.info({ redis: where, client: what }, 'redis reachable again');
    state = 'up';
    ever = true;
  });
  client.on('end', () => { state = 'unknown'; });
  return { isUp: () => state === 'up', everUp: () => ever };
}
