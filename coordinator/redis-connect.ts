/**
 * Redis connection from a flag or a config file: a `redis://` or `rediss://` URL (TLS), or a
 * full ioredis options object — that is how Sentinel is configured:
 *   { "sentinels": [{ "host": "s1", "port": 26379 }], "name": "mymaster" }
 */
import Redis, { type RedisOptions } from 'ioredis';

export type RedisSpec = string | RedisOptions;

export function connectRedis(spec: RedisSpec, extra: RedisOptions = {}): Redis {
  const base: RedisOptions = { maxRetriesPerRequest: 3, enableAutoPipelining: true, ...extra };
  if (typeof spec === 'string') {
    if (!/^rediss?:\/\//.test(spec)) throw new Error(`--redis must be a redis:// or rediss:// URL (got ${redactUrl(spec)})`);
    return new Redis(spec, base);
  }
  return new Redis({ ...base, ...spec });
}

/** A Redis URL safe to log: the password is replaced. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_m, auth: string) => `//${auth.includes(':') ? auth.split(':')[0] + ':***' : '***'}@`);
}
