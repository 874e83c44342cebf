import type { CommandModule } from 'yargs';
import { readFileSync } from 'node:fs';
import { connectRedis, describeRedis, forComponent, redisReadiness, redisSecrets, scrubSecrets, watchRedis } from '../../common';
import { type Coordinator, createCoordinator, defaults, loadSigningKey, parseVipPool, registerCoordinatorMetrics } from '../../coordinator';
import { CliError, onShutdown, shutdown } from '../shutdown';
import { checkRedisArgs, checkRedisPrefix, redisGiven, redisOptions, redisSpecFromArgs, type RedisArgs } from '../redis-options';
import { secretFrom } from '../secret-file';
import { METRICS_OPTION, parseListenFlag, startMetrics } from '../metrics';
import { durationFlag, parseHostPort } from '../flag-values';
import { CONFIG_OPTION, deprecatedFlag, onReload } from '../settings';

interface CoordinatorArgs extends RedisArgs {
  config?: string;
  listen: string;
  cidr: string;
  'admin-token'?: string;
  'admin-token-file'?: string;
  prefix?: string;
  quarantine: string;
  'ephemeral-timeout': string;
  'original-ip-grace'?: string;
  'session-ttl': string;
  'record-ttl': string;
  'reassert-grace': string;
  'trusted-proxy': string[];
  metrics?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  'signing-key'?: string;
  'rate-limit-challenge': number;
  'rate-limit-join': number;
  'rate-limit-admin': number;
  'admin-auth-failures': number;
}

/** --tls-cert/--tls-key/--signing-key, read now; errors name the flag. */
function tlsAndSigning(a: CoordinatorArgs) {
  const read = (flag: 'tls-cert' | 'tls-key') => {
    try {
      return readFileSync(a[flag]!);
    } catch (err) {
      throw new CliError(`cannot read --${flag} ${a[flag]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const tls = a['tls-cert'] ? { cert: read('tls-cert'), key: read('tls-key') } : undefined;
  let signingKey;
  if (a['signing-key']) {
    try {
      signingKey = loadSigningKey(a['signing-key']);
    } catch (err) {
      throw new CliError(`--signing-key: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `${a['signing-key']} does not exist (make one with isthmus keygen --signing-key FILE)` : (err as Error).message}`);
    }
  }
  return { tls, signingKey };
}

/** The per-source limit flags (requests per minute; 0 = off) → createCoordinator's `rateLimits`. */
const RATE_LIMIT_FLAGS = {
  'rate-limit-challenge': 'challenge', 'rate-limit-join': 'join', 'rate-limit-admin': 'admin', 'admin-auth-failures': 'adminFailures',
} as const;

/** The one default coordinator port: every example and doc uses it (relays: 7000/udp). */
export const DEFAULT_COORDINATOR_PORT = 8080;

/** "HOST:PORT" → parts; the message names `flag`. */
function parseListen(value: string, flag: string): { host: string; port: number } {
  return parseHostPort(value, flag, { example: `0.0.0.0:${DEFAULT_COORDINATOR_PORT}` });
}

/** A duration flag (bare numbers: seconds, as the API's ttl). */
function duration(value: string, flag: string): number {
  return durationFlag(value, flag, { bare: 's' });
}

/** Whole requests per minute, 0 = no limit: for .check and for SIGHUP. */
function rateLimitValue(flag: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`--${flag} must be a whole number of requests per minute (0 = no limit), got ${JSON.stringify(v)}`);
  return v;
}

/**
 * `isthmus coordinator`: the control plane. Stateless; run several behind the VIP on one Redis.
 * `--config FILE` is YAML (or JSON) with the flags' long names as keys; there `redis` may also
 * be an ioredis options object. SIGHUP applies new rate limits and log level from it.
 */
export const coordinatorCommand: CommandModule<object, CoordinatorArgs> = {
  command: 'coordinator',
  describe: 'Run a coordinator: join tokens, virtual-IP allocation and policy-scoped peer maps (isthmus policy), all state in Redis',
  builder: (y) => redisOptions(y
    .option('config', { ...CONFIG_OPTION, describe: `${CONFIG_OPTION.describe}; here "redis" may also be ioredis options (Sentinel)` }))
    .option('listen', { type: 'string', default: `0.0.0.0:${DEFAULT_COORDINATOR_PORT}`, describe: 'HTTP address, HOST:PORT' })
    .option('cidr', { type: 'string', default: defaults.DEFAULT_CIDR, describe: 'Overlay CIDR virtual IPs come from' })
    .option('admin-token', { type: 'string', describe: 'Bearer token for the admin API (token/node/policy commands); without it admin routes are off. Shows in process listings: prefer --admin-token-file' })
    .option('admin-token-file', { type: 'string', describe: 'File holding the admin bearer token (mode 600/640)' })
    .option('prefix', deprecatedFlag('redis-prefix'))
    .option('quarantine', { type: 'string', default: '1h', describe: 'A removed member\'s virtual IP is reused only after this long' })
    .option('ephemeral-timeout', { type: 'string', default: '5m', describe: 'Remove an ephemeral member whose relay session is gone this long' })
    .option('original-ip-grace', { type: 'string', hidden: true, describe: 'Removed (ignored, with a warning): original IPs are never taken over; an admin frees one with `isthmus node remove`' })
    .option('trusted-proxy', { type: 'string', array: true, default: [] as string[],
      describe: 'Reverse proxy (address or CIDR, repeatable) whose X-Forwarded-For names the address a join comes from (members may claim that address as their original IP). Default: none, the TCP peer address counts' })
    .option('record-ttl', { type: 'string', default: '24h', describe: 'Lifetime of the signed membership record a member gets on join (needs --signing-key); members fetch a fresh one when half is left. After Redis loses its data a member re-asserts its identity with it. At most 30d' })
    .option('reassert-grace', { type: 'string', default: '60s', describe: 'After Redis lost its data, hold new virtual-IP allocations this long (joins of new keys: 503 + Retry-After) so existing members re-assert their records first; 0s: no hold' })
    .option('session-ttl', { type: 'string', default: '24h', describe: 'Lifetime of the session token a member gets on join; renewed to the full lifetime on use once less than half is left (one write per half lifetime, no re-join)' })
    .option('metrics', METRICS_OPTION)
    .option('tls-cert', { type: 'string', describe: 'Serve HTTPS with this certificate (PEM, chain included); with --tls-key' })
    .option('tls-key', { type: 'string', describe: 'Private key (PEM) of --tls-cert' })
    .option('signing-key', { type: 'string', describe: 'Ed25519 key file (0600; isthmus keygen --signing-key FILE) shared by every coordinator '
      + 'of the deployment: join and peer-map answers are signed with it and members pin its public key (docs/SECURITY.md)' })
    .option('rate-limit-challenge', { type: 'number', default: defaults.DEFAULT_RATE_LIMITS.challenge,
      describe: 'GET /v1/challenge per minute from one source address (0 = no limit); over it: 429 + Retry-After. Per coordinator: N behind a VIP allow N times this' })
    .option('rate-limit-join', { type: 'number', default: defaults.DEFAULT_RATE_LIMITS.join,
      describe: 'POST /v1/join per minute from one source address (0 = no limit). Members behind one NAT share it: allow for the largest site re-joining at once (agents retry)' })
    .option('rate-limit-admin', { type: 'number', default: defaults.DEFAULT_RATE_LIMITS.admin,
      describe: 'Admin API requests per minute from one source address (0 = no limit)' })
    .option('admin-auth-failures', { type: 'number', default: defaults.DEFAULT_RATE_LIMITS.adminFailures,
      describe: 'Failed admin-token checks per minute from one source address before its admin requests get 429 without a check, until the minute ends (0 = no limit)' })
    .check((a) => {
      if (!a['tls-cert'] !== !a['tls-key']) throw new Error('--tls-cert and --tls-key go together');
      if (a.metrics) parseListenFlag(a.metrics, '--metrics');
      if (!redisGiven(a)) throw new Error('Missing --redis URL (or ISTHMUS_REDIS, --redis-sentinel, or "redis" in --config)');
      checkRedisArgs(a);
      if (a['admin-token'] !== undefined && a['admin-token-file'] !== undefined) throw new Error('give either --admin-token or --admin-token-file, not both');
      parseListen(a.listen, '--listen');
      try {
        parseVipPool(a.cidr);
      } catch (err) {
        throw new Error(`--cidr: ${(err as Error).message}`);
      }
      for (const f of ['quarantine', 'ephemeral-timeout', 'session-ttl', 'record-ttl', 'reassert-grace'] as const) duration(a[f], `--${f}`);
      const recordTtl = duration(a['record-ttl'], '--record-ttl');
      if (recordTtl <= 0 || recordTtl > 30 * 24 * 3600 * 1000) throw new Error(`--record-ttl must be more than 0 and at most 30d, got ${a['record-ttl']}`);
      for (const p of a['trusted-proxy']) {
        const s = String(p);
        if (!/^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/.test(s)) throw new Error(`--trusted-proxy must be an IPv4 address or CIDR, got ${JSON.stringify(s)}`);
      }
      for (const f of Object.keys(RATE_LIMIT_FLAGS) as (keyof typeof RATE_LIMIT_FLAGS)[]) rateLimitValue(f, a[f]);
      if (a['admin-token'] !== undefined && a['admin-token'].length < 16) throw new Error('--admin-token must be at least 16 characters');
      checkRedisPrefix(a['redis-prefix']);
      return true;
    }),
  handler: async (a) => {
    const log = forComponent('isthmus:coordinator');
    // SIGHUP: the log level and the rate limits change live (a change before the coordinator
    // exists is read from the arguments when it is made); the rest needs a restart.
    let live: Coordinator | undefined;
    onReload(log, Object.fromEntries(Object.entries(RATE_LIMIT_FLAGS).map(([flag, key]) => [flag, (v: unknown) => {
      const value = rateLimitValue(flag, v === undefined ? defaults.DEFAULT_RATE_LIMITS[key] : v);
      live?.setRateLimits({ [key]: value });
      return value;
    }])));
    const { host, port } = parseListen(a.listen, '--listen');
    const spec = redisSpecFromArgs(a, log);
    const adminToken = secretFrom(a['admin-token'], a['admin-token-file'], 'admin-token');
    if (adminToken !== undefined && adminToken.length < 16) throw new CliError('the admin token must be at least 16 characters');
    // Our own client: it is watched from the first attempt on (one log line per change of
    // state, scrubbed), and the daemon starts whether Redis answers yet or not.
    const secrets = redisSecrets(spec);
    const redis = connectRedis(spec);
    watchRedis(redis, spec, log);
    onShutdown(() => redis.quit().catch(() => redis.disconnect()));
    const { tls, signingKey } = tlsAndSigning(a);
    if (!tls) log.warn('no --tls-cert/--tls-key: serving plain HTTP; members and admin commands refuse it unless given --insecure-coordinator');
    const c = await createCoordinator({
      redis, cidr: a.cidr, prefix: a['redis-prefix'], adminToken, logger: log,
      quarantineMs: duration(a.quarantine, '--quarantine'), ephemeralTimeoutMs: duration(a['ephemeral-timeout'], '--ephemeral-timeout'),
      trustedProxies: a['trusted-proxy'].map(String), sessionTtlMs: duration(a['session-ttl'], '--session-ttl'),
      recordTtlMs: duration(a['record-ttl'], '--record-ttl'), reassertGraceMs: duration(a['reassert-grace'], '--reassert-grace'),
      tls, signingKey,
      rateLimits: Object.fromEntries(Object.entries(RATE_LIMIT_FLAGS).map(([flag, key]) => [key, a[flag as keyof typeof RATE_LIMIT_FLAGS]])),
      waitForRedis: {
        onSetupError: (err) => {
          process.stderr.write(`isthmus: cannot start on ${describeRedis(spec)}: ${scrubSecrets(err.message, secrets)}\n`);
          void shutdown(1);
        },
      },
    });
    onShutdown(() => c.close());
    // Redis answering: listen once set up (no 503 to the first callers). Down: listen at once.
    await Promise.race([c.whenReady, new Promise((r) => redis.once('error', r))]);
    try {
      await c.listen(host, port);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new CliError(`cannot listen on --listen ${a.listen}: ${e.code ?? e.message}`);
    }
    if (a.metrics) {
      const coord = c;
      const checks = { redis: redisReadiness(coord.redis), setup: () => coord.ready, http: () => coord.app.server.listening };
      await startMetrics(a.metrics, log, (r) => registerCoordinatorMetrics(r, coord), checks).catch((err: NodeJS.ErrnoException) => {
        throw new CliError(`cannot listen on --metrics ${a.metrics}: ${err.code ?? err.message}`);
      });
    }
    if (a['original-ip-grace'] !== undefined) {
      log.warn('--original-ip-grace is ignored: an original IP held by a member is never taken over by another join; free it with `isthmus node remove`');
    }
    if (!adminToken) log.warn('no --admin-token: token and node admin routes are disabled');
    live = c;
  },
};
