/**
 * The Redis flags every daemon takes (coordinator, relay, mapper), one option group:
 *   --redis URL                      redis://host:port[/db] or rediss:// (TLS); a password in it works but shows in `ps`
 *   --redis-user NAME                ACL user (docs/SECURITY.md "Redis" gives each part's)
 *   --redis-password-file FILE       the password (or ISTHMUS_REDIS_PASSWORD_FILE)
 *   --redis-ca FILE                  PEM CA that signs the server certificate (TLS)
 *   --redis-sentinel HOST:PORT       repeatable; instead of --redis
 *   --redis-sentinel-name NAME       the master the sentinels watch
 *   --redis-sentinel-password-file FILE
 *   --redis-prefix P                 key prefix, the same on every daemon of a deployment
 * The connection itself is common/redis-connect.ts.
 */
import type { Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { DEFAULT_PREFIX, type Logger, type RedisSpec, RedisConfigError, redisSpecFrom, parseRedisUrl } from '../common';
import { readSecretFile } from './secret-file';
import { CliError } from './shutdown';

export interface RedisArgs {
  redis?: unknown;
  'redis-user'?: string;
  'redis-password-file'?: string;
  'redis-ca'?: string;
  'redis-sentinel'?: string[];
  'redis-sentinel-name'?: string;
  'redis-sentinel-password-file'?: string;
  'redis-prefix': string;
}

const GROUP = 'Redis:';

/** Adds the Redis flags; `redisDescribe` overrides the `--redis` text (what this daemon keeps there). */
export function redisOptions<T>(y: Argv<T>, redisDescribe = 'Redis URL: redis://host:port[/db] or rediss://host:port (TLS)'): Argv<T & RedisArgs> {
  return y
    .option('redis', { describe: `${redisDescribe}. A password in the URL shows in process listings: prefer --redis-password-file`, group: GROUP })
    .option('redis-user', { type: 'string', describe: 'Redis ACL user (default: "default")', group: GROUP })
    .option('redis-password-file', { type: 'string', describe: 'File holding the Redis password (mode 600/640)', group: GROUP })
    .option('redis-ca', { type: 'string', describe: 'PEM CA file that signs the Redis server certificate (TLS; with a redis:// URL it switches TLS on)', group: GROUP })
    .option('redis-sentinel', { type: 'string', array: true, describe: 'Sentinel HOST:PORT (repeatable), instead of --redis', group: GROUP })
    .option('redis-sentinel-name', { type: 'string', describe: 'Master name the sentinels watch', group: GROUP })
    .option('redis-sentinel-password-file', { type: 'string', describe: 'File holding the sentinels\' password', group: GROUP })
    .option('redis-prefix', { type: 'string', default: DEFAULT_PREFIX, describe: 'Redis key prefix, the same on every coordinator, relay and mapper of a deployment', group: GROUP }) as unknown as Argv<T & RedisArgs>;
}

/** --redis-prefix's shape (for `.check()`). */
export function checkRedisPrefix(prefix: unknown): void {
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9:_.-]{1,64}$/.test(prefix)) throw new Error('--redis-prefix must be 1-64 characters of A-Z a-z 0-9 : _ . -');
}

/** True when any Redis connection flag is given. */
export function redisGiven(a: RedisArgs): boolean {
  return a.redis !== undefined || (a['redis-sentinel']?.length ?? 0) > 0;
}

/** For `.check()`: the flags' shape, without reading files. Throws an Error naming the flag. */
export function checkRedisArgs(a: RedisArgs): void {
  if (a.redis !== undefined && typeof a.redis !== 'string') {
    if (typeof a.redis !== 'object' || a.redis === null || Array.isArray(a.redis)) throw new Error('--redis must be a URL (or, in a coordinator --config, an ioredis options object)');
    // Secrets stay in files: the flags add them to the object (redisSpecFromArgs).
    if ('password' in a.redis) throw new Error('--config: "redis" holds a password: put it in a file (mode 600) and give redis-password-file');
    if ('sentinelPassword' in a.redis) throw new Error('--config: "redis" holds a sentinelPassword: put it in a file (mode 600) and give redis-sentinel-password-file');
    return;
  }
  try {
    redisSpecFrom({
      url: a.redis as string | undefined, user: a['redis-user'], sentinels: a['redis-sentinel'], sentinelName: a['redis-sentinel-name'],
      sentinelPassword: a['redis-sentinel-password-file'] === undefined ? undefined : 'x',
    });
  } catch (err) {
    if (err instanceof RedisConfigError) throw new Error(err.message);
    throw err;
  }
}

/**
 * The connection spec from the flags, secrets read from their files. CliError on a bad flag or
 * file. Warns (on `log`) when the URL itself carries a password.
 */
export function redisSpecFromArgs(a: RedisArgs, log?: Logger): RedisSpec {
  const password = a['redis-password-file'] !== undefined ? readSecretFile(a['redis-password-file'], '--redis-password-file') : undefined;
  const sentinelPassword = a['redis-sentinel-password-file'] !== undefined ? readSecretFile(a['redis-sentinel-password-file'], '--redis-sentinel-password-file') : undefined;
  let ca: Buffer | undefined;
  if (a['redis-ca'] !== undefined) {
    try {
      ca = readFileSync(a['redis-ca']);
    } catch (err) {
      throw new CliError(`cannot read --redis-ca ${a['redis-ca']}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  try {
    if (a.redis !== undefined && typeof a.redis === 'object') {
      // A coordinator --config object: the flags still add credentials and the CA.
      const o = { ...(a.redis as Record<string, unknown>) };
      if (a['redis-user'] !== undefined) o.username = a['redis-user'];
      if (password !== undefined) o.password = password;
      if (sentinelPassword !== undefined) o.sentinelPassword = sentinelPassword;
      if (ca !== undefined) o.tls = { ...(o.tls as object | undefined), ca };
      return o;
    }
    if (typeof a.redis === 'string' && log && parseRedisUrl(a.redis).password !== undefined) {
      log.warn('--redis carries a password, which shows in process listings: use --redis-password-file');
    }
    return redisSpecFrom({
      url: a.redis as string | undefined, user: a['redis-user'], password, ca,
      sentinels: a['redis-sentinel'], sentinelName: a['redis-sentinel-name'], sentinelPassword,
    });
  } catch (err) {
    if (err instanceof RedisConfigError) throw new CliError(err.message);
    throw err;
  }
}
