/**
 * A coordinator: HTTP API + Redis registry + change feed + ephemeral sweeper. Stateless, so
 * any number of them may share one Redis behind the VIP.
 *
 *   const c = await createCoordinator({ redis: 'redis://127.0.0.1:6379', adminToken });
 *   const { url } = await c.listen('0.0.0.0', 7000);
 */
import type Redis from 'ioredis';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AddressInfo } from 'node:net';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { isRedisUnavailableError, silentLogger, type Logger } from '../common';
import { buildApi, replyRedisUnavailable, sessionVipOf } from './api';
import * as D from './constants';
import { parseVipPool } from './ipam';
import { PeerFeed } from './peer-feed';
import { PeerMapCache } from './peer-map-cache';
import { PeerStreamHub } from './peer-stream';
import { SessionCache } from './session-cache';
import { connectRedis, type RedisSpec } from './redis-connect';
import { RedisRegistry } from './redis-store';
import { TokenStore } from './token-store';
import { ProxyUserStore } from './proxy-users';
import { newJoinCounters, newRateLimitCounters, type JoinCounters, type RateLimitCounters } from './metrics';
import { BatchSigner, isNonce, NONCE_HEADER, PROOF_HEADER, SIGNATURE_HEADER, SIGNING_KEY_HEADER, signingPublicKey } from './answer-signing';
import type { JoinRequest } from './types';
import { RecordIssuer } from './reassert-routes';

export interface CoordinatorOptions {
  /** URL, ioredis options (Sentinel), or a connected client (not closed by `close()`). */
  redis: RedisSpec | Redis;
  /** @default '100.64.0.0/10' */
  cidr?: string;
  /** Redis key prefix. @default DEFAULT_PREFIX (common/redis-schema.ts) */
  prefix?: string;
  /** Admin bearer token; without it the admin routes answer 403. */
  adminToken?: string;
  /** @default 1 h */
  quarantineMs?: number;
  /** @default 5 min */
  ephemeralTimeoutMs?: number;
  /** @default 10 s; 0 = no sweeper */
  sweepIntervalMs?: number;
  /**
   * Reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the address a join
   * comes from. @default [] (the TCP peer address; X-Forwarded-For is ignored)
   */
  trustedProxies?: string[];
  /** @default 24 h */
  sessionTtlMs?: number;
  /** @default 25 s */
  longPollMs?: number;
  /**
   * Keep session tokens checked in Redis in memory for a while (session-cache.ts), so the
   * polls one change wakes do not each run the auth script. @default true
   */
  sessionCache?: boolean;
  /** Peer-map streams: heartbeat interval (DEFAULT_STREAM_HEARTBEAT_MS), unsent bytes before a
   *  slow member is dropped (DEFAULT_STREAM_MAX_BUFFER_BYTES), lifetime (DEFAULT_STREAM_MAX_LIFETIME_MS). */
  stream?: { heartbeatMs?: number; maxBufferBytes?: number; maxLifetimeMs?: number };
  /** @default 16 KiB */
  bodyLimit?: number;
  /**
   * Per-source requests per window (1 min) on challenge, join and the admin API, and failed
   * admin authentications (constants.ts DEFAULT_RATE_LIMITS); each 0 = off, `false` = all off.
   * @default DEFAULT_RATE_LIMITS
   */
  rateLimits?: Partial<D.RateLimits> | false;
  logger?: Logger;
  /** Serve HTTPS with this certificate chain and key (PEM); without it, plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * Ed25519 private key (answer-signing.ts, loadSigningKey) shared by every coordinator of the
   * deployment: join and peer-map answers to requests with a nonce are signed with it.
   */
  signingKey?: KeyObject;
  /**
   * Membership records (join answers carry one, signed with `signingKey`) are valid this long;
   * at most 30 days (MAX_RECORD_TTL_MS). @default 24 h
   */
  recordTtlMs?: number;
  /**
   * After Redis lost its data, new vip allocations are held this long (join 503
   * `allocations-held` + Retry-After) so existing members re-assert their records first; 0: no hold. @default 60 s
   */
  reassertGraceMs?: number;
  /** How often to check that Redis still holds the state (`P:deployment`). @default 2 s; 0 = only on joins */
  stateCheckMs?: number;
  /** Unix ms; tests inject. @default Date.now */
  now?: () => number;
  /**
   * Start even while Redis is unreachable: setup (CIDR check, challenge key, event
   * subscription) is retried in the background until Redis answers, and API calls meanwhile
   * get 503 `redis-unavailable` + Retry-After. A setup error that is not about reachability
   * (e.g. a CIDR mismatch) goes to `onSetupError`. @default false (setup failures throw)
   */
  waitForRedis?: { onSetupError(err: Error): void };
}

export interface Coordinator {
  readonly app: FastifyInstance;
  readonly registry: RedisRegistry;
  readonly tokens: TokenStore;
  readonly redis: Redis;
  /** The change feed (long-poll waiters, events seen) and join counts: read by metrics. */
  readonly feed: PeerFeed;
  /** Peer-map streams open here, and their counters (metrics, tests, bench). */
  readonly streams: PeerStreamHub;
  readonly joins: JoinCounters;
  /** Requests answered 429 by each per-source limit: read by metrics. */
  readonly rateLimited: RateLimitCounters;
  /** Signatures made and the answers they covered (undefined without a signing key). */
  readonly signing?: { signatures: number; answers: number };
  listen(host: string, port: number): Promise<{ host: string; port: number; url: string }>;
  /** Setup done (Redis answered once): API calls are served. */
  readonly ready: boolean;
  /** Resolves when setup is done (at once unless `waitForRedis`). */
  readonly whenReady: Promise<void>;
  /** Run one ephemeral sweep now (the timer does it every sweepIntervalMs). */
  sweep(): Promise<string[]>;
  /** Change per-source limits live (requests per minute; 0 = off), e.g. on SIGHUP. */
  setRateLimits(limits: Partial<Omit<D.RateLimits, 'windowMs'>>): void;
  close(): Promise<void>;
}

export async function createCoordinator(o: CoordinatorOptions): Promise<Coordinator> {
  const log = o.logger ?? silentLogger();
  const cidr = parseVipPool(o.cidr ?? D.DEFAULT_CIDR);
  const prefix = o.prefix ?? D.DEFAULT_PREFIX;
  const now = o.now ?? Date.now;
  const ownRedis = typeof o.redis === 'string' || !('duplicate' in o.redis);
  const redis = ownRedis ? connectRedis(o.redis as RedisSpec) : o.redis as Redis;
  const recordTtlMs = o.recordTtlMs ?? D.DEFAULT_RECORD_TTL_MS;
  if (!(recordTtlMs > 0 && recordTtlMs <= D.MAX_RECORD_TTL_MS)) throw new RangeError(`record TTL must be more than 0 and at most 30 days, got ${recordTtlMs} ms`);
  const reassertGraceMs = o.reassertGraceMs ?? D.DEFAULT_REASSERT_GRACE_MS;
  const registry = new RedisRegistry(redis, { prefix, cidr, quarantineMs: o.quarantineMs ?? D.DEFAULT_QUARANTINE_MS, now, reassertGraceMs });
  const tokens = new TokenStore(redis, prefix, now);
  const proxyUsers = new ProxyUserStore(redis, prefix, now);
  const feed = new PeerFeed(redis, registry.keys.events, log);
  let ready = false;
  let closed = false;
  const setup = async () => {
    await registry.init();
    await feed.start();
    const policyText = await registry.policyText();
    if (policyText === null) log.warn(`${D.NO_POLICY_NOTE} (set one with: isthmus policy set FILE)`);
    else log.info({ policyBytes: policyText.length }, 'policy in force: peer maps are scoped by it (isthmus policy get)');
    ready = true;
  };
  let whenReady: Promise<void>;
  if (!o.waitForRedis) {
    try {
      await setup();
    } catch (err) {
      await feed.close();
      if (ownRedis) redis.disconnect();
      throw err;
    }
    whenReady = Promise.resolve();
  } else {
    const onSetupError = o.waitForRedis.onSetupError;
    whenReady = (async () => {
      while (!closed) {
        if (redis.status !== 'ready') {
          await new Promise<void>((r) => { const t = setTimeout(r, 1000); t.unref(); redis.once('ready', () => { clearTimeout(t); r(); }); });
          continue;
        }
        try {
          await setup();
          log.info('coordinator ready: redis answered, scripts and subscription in place');
          return;
        } catch (err) {
          if (!isRedisUnavailableError(err)) {
            onSetupError(err as Error);
            return;
          }
        }
      }
    })();
  }
  const peerMap = new PeerMapCache(registry, log);
  const joins = newJoinCounters();
  const signingKey = o.signingKey;
  const signingPub = signingKey ? signingPublicKey(signingKey) : undefined;
  if (signingKey) log.info({ signingKey: signingPub }, 'join and peer-map answers are signed (members pin this key)');
  else log.warn('no --signing-key: join and peer-map answers are not signed; members refuse them unless run with --insecure-coordinator');
  // Signs the exact bytes sent (answer-signing.ts): a 200 join or peer-map answer to a request with a nonce.
  // Answers leaving in one turn of the event loop (the waiters a change woke) share one signature.
  const signer = signingKey ? new BatchSigner(signingKey) : undefined;
  const onSend = async (req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    if (!signingKey || reply.statusCode !== 200 || typeof payload !== 'string') return payload;
    const route = req.routeOptions.url;
    if (route !== '/v1/join' && route !== '/v1/peers' && route !== '/v1/reassert') return payload;
    const nonce = req.headers[NONCE_HEADER];
    if (typeof nonce !== 'string' || !isNonce(nonce)) return payload;
    // A re-assert is answered as a join (the member's key, its fresh nonce).
    const joinLike = route !== '/v1/peers';
    const member = joinLike ? (req.body as JoinRequest).publicKey : sessionVipOf(req);
    if (!member) return payload;
    const since = route === '/v1/peers' ? (req.query as { since?: string }).since ?? '-' : '-';
    const s = await signer!.sign({ route: joinLike ? 'join' : 'peers', member, since, nonce }, payload);
    reply.header(SIGNATURE_HEADER, s.signature);
    if (s.proof !== undefined) reply.header(PROOF_HEADER, s.proof);
    reply.header(SIGNING_KEY_HEADER, signingPub);
    return payload;
  };
  const streams = new PeerStreamHub(peerMap, feed, signer, signingPub, {
    heartbeatMs: o.stream?.heartbeatMs ?? D.DEFAULT_STREAM_HEARTBEAT_MS,
    maxBufferBytes: o.stream?.maxBufferBytes ?? D.DEFAULT_STREAM_MAX_BUFFER_BYTES,
    maxLifetimeMs: o.stream?.maxLifetimeMs ?? D.DEFAULT_STREAM_MAX_LIFETIME_MS,
  }, log);
  streams.start();
  const rateLimited = newRateLimitCounters();
  // Read by the API per request: setRateLimits changes it in place.
  const rateLimits: Partial<D.RateLimits> = o.rateLimits === false ? {} : { ...D.DEFAULT_RATE_LIMITS, ...o.rateLimits };
  const records = signingKey
    ? new RecordIssuer({ signingKey, publicKey: createPublicKey(signingKey), registry, prefix, cidr, ttlMs: recordTtlMs, now })
    : undefined;
  if (!signingKey) log.warn('no --signing-key: members get no membership records, so they cannot re-assert their identity if Redis loses its data');
  const app = await buildApi({
    https: o.tls, onSend, records, sessionCache: o.sessionCache === false ? undefined : new SessionCache(),
    joins, rateLimited, registry, tokens, proxyUsers, feed, peerMap, streams, log, cidr, adminToken: o.adminToken,
    bodyLimit: o.bodyLimit ?? D.DEFAULT_BODY_LIMIT, longPollMs: o.longPollMs ?? D.DEFAULT_LONG_POLL_MS,
    trustedProxies: o.trustedProxies ?? [],
    dashboard: { redis, prefix },
    sessionTtlMs: o.sessionTtlMs ?? D.DEFAULT_SESSION_TTL_MS,
    rateLimits,
  });

  // While Redis is unreachable (or setup has not run yet) every API call needs it: 503, not 500.
  app.addHook('onRequest', async (_req, reply) => {
    if (ready && redis.status === 'ready') return;
    return replyRedisUnavailable(reply);
  });

  const ephemeralTimeoutMs = o.ephemeralTimeoutMs ?? D.DEFAULT_EPHEMERAL_TIMEOUT_MS;
  const sweep = async () => {
    if (!ready || redis.status !== 'ready') return [];
    const removed = await registry.sweepEphemeral(ephemeralTimeoutMs);
    for (const vip of removed) log.info({ vip }, 'ephemeral member removed: no relay session');
    return removed;
  };
  const interval = o.sweepIntervalMs ?? D.DEFAULT_SWEEP_INTERVAL_MS;
  const timer = interval > 0
    ? setInterval(() => { sweep().catch((err: unknown) => log.warn({ err }, 'ephemeral sweep failed')); }, interval)
    : undefined;
  timer?.unref();

  // Redis lost its data (P:deployment gone): a new generation, new allocations held for the
  // grace window while members re-assert their records (docs/OPERATIONS.md "When Redis loses data").
  const checkState = async () => {
    if (!ready || redis.status !== 'ready') return;
    const s = await registry.checkState();
    if (s.rebuilt || s.changed) {
      feed.rebase(await registry.version());
      streams.endAll();
    }
    if (s.rebuilt) {
      log.warn({ generation: s.generation, reassertGraceMs }, 'Redis lost its state: starting a new generation; new virtual IPs are held '
        + 'while members re-assert their membership records');
    } else if (s.changed) {
      log.warn({ generation: s.generation }, 'Redis state generation changed under this coordinator (another coordinator found the state gone)');
    }
  };
  const stateCheckMs = o.stateCheckMs ?? D.DEFAULT_STATE_CHECK_MS;
  const stateTimer = stateCheckMs > 0
    ? setInterval(() => { checkState().catch((err: unknown) => { if (!isRedisUnavailableError(err)) log.warn({ err }, 'state check failed'); }); }, stateCheckMs)
    : undefined;
  stateTimer?.unref();

  return {
    app, registry, tokens, redis, feed, streams, joins, rateLimited, signing: signer,
    get ready() { return ready; },
    whenReady,
    async listen(host, port) {
      await app.listen({ host, port });
      const a = app.server.address() as AddressInfo;
      const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      log.info({ listen: `${h}:${a.port}`, tls: !!o.tls, cidr: cidr.text, prefix }, 'coordinator listening');
      return { host: a.address, port: a.port, url: `${o.tls ? 'https' : 'http'}://${h}:${a.port}` };
    },
    sweep,
    setRateLimits(l) {
      Object.assign(rateLimits, l);
    },
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      if (stateTimer) clearInterval(stateTimer);
      streams.close();
      await feed.close();
      await app.close();
      if (ownRedis) await redis.quit().catch(() => redis.disconnect());
    },
  };
}
