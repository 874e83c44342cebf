/**
 * HTTP API (fastify 5). Routes and their answers are listed in coordinator/README.md.
 * Every request is schema-checked (unknown fields rejected, no type coercion); every refusal
 * is `{ error: <code>, message: <reason> }` with a 4xx status.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type Redis from 'ioredis';
import { isRedisUnavailableError, type Logger, redactKey, parseDuration } from '../common';
import { verifyKeyProof } from '../protocol';
import { BadRequestError, CoordinatorError, JoinRefusedError, NotFoundError, RateLimitedError, UnauthorizedError } from './errors';
import { DEFAULT_RATE_LIMITS, RATE_LIMIT_SOURCES, REDIS_DOWN_RETRY_AFTER_SEC, type RateLimits } from './constants';
import { parseOriginalCidrs, sourceIpv4, staticOriginalIpRefusal } from './claim-rules';
import type { VipPool } from './ipam';
import type { PeerFeed } from './peer-feed';
import type { PeerMapCache } from './peer-map-cache';
import type { PeerStreamHub } from './peer-stream';
import { isNonce, NONCE_HEADER } from './answer-signing';
import type { SessionCache } from './session-cache';
import type { RedisRegistry } from './redis-store';
import * as S from './schemas';
import { hashSecret, newSecret, secretsEqual, SESSION_TOKEN_PREFIX } from './token-rules';
import type { TokenStore } from './token-store';
import type { JoinRequest, JoinResponse, NodeTagsRequest, NodeTagsResponse, PeerChanges, PeersResponse, TokenCreateRequest } from './types';
import { nodeMatches, parseNodeFilter, type NodeFilterQuery } from './node-filter';
import type { JoinCounters, RateLimitCounters } from './metrics';
import { InvalidPolicyError, registerPolicyRoutes } from './policy-routes';
import { registerDashboard } from './dashboard';
import { registerReassertRoutes, type RecordIssuer } from './reassert-routes';
import type { ProxyUserStore } from './proxy-users';
import { registerProxyUserRoutes } from './proxy-user-routes';

export interface ApiDeps {
  registry: RedisRegistry;
  tokens: TokenStore;
  /** Gateway credentials (`/v1/proxy-users`); undefined: those routes are not served. */
  proxyUsers?: ProxyUserStore;
  feed: PeerFeed;
  peerMap: PeerMapCache;
  /** Streaming peer-map watches (`GET /v1/peers/stream`); undefined: the route is not served. */
  streams?: PeerStreamHub;
  log: Logger;
  /** The overlay CIDR (no member may claim an original IP inside it). */
  cidr: VipPool;
  /** undefined: admin routes answer 403. */
  adminToken?: string;
  bodyLimit: number;
  longPollMs: number;
  sessionTtlMs: number;
  /**
   * Reverse proxies (addresses or CIDRs) whose X-Forwarded-For is believed when deciding the
   * address a join comes from. Empty (default): the TCP peer address, X-Forwarded-For ignored.
   */
  trustedProxies?: string[];
  /** Joins by result, for metrics. */
  joins?: JoinCounters;
  /** Per-source limits (constants.ts DEFAULT_RATE_LIMITS); a limit 0 or absent: off. */
  rateLimits?: Partial<RateLimits>;
  /** Requests refused by each limit, for metrics. */
  rateLimited?: RateLimitCounters;
  /** Serve HTTPS with this certificate chain and key (PEM). */
  https?: { cert: string | Buffer; key: string | Buffer };
  /** Serve the read-only dashboard at /ui (dashboard.ts) from this Redis client and key prefix. */
  dashboard?: { redis: Redis; prefix: string };
  /** Membership records (reassert-routes.ts); undefined without a signing key: joins carry no record. */
  records?: RecordIssuer;
  /** Session tokens checked recently (session-cache.ts); without it every poll asks Redis. */
  sessionCache?: SessionCache;
  /** Runs on every answer before it is sent (server.ts signs join and peer-map answers). */
  onSend?: (req: FastifyRequest, reply: FastifyReply, payload: unknown) => Promise<unknown>;
}

/** The vip of the member whose session token authenticated `req` (peer-map routes). */
const memberVip = new WeakMap<FastifyRequest, string>();
export function sessionVipOf(req: FastifyRequest): string | undefined {
  return memberVip.get(req);
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h || !h.startsWith('Bearer ')) return undefined;
  return h.slice(7).trim() || undefined;
}

/** 503 `redis-unavailable` with Retry-After: what every call that needs Redis answers while it is unreachable. */
export function replyRedisUnavailable(reply: FastifyReply): FastifyReply {
  return reply.code(503).header('retry-after', REDIS_DOWN_RETRY_AFTER_SEC)
    .send({ error: 'redis-unavailable', message: 'the coordinator cannot reach Redis; retry later' });
}

export async function buildApi(d: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(d.https ? { https: d.https } : {}),
    logger: false,
    bodyLimit: d.bodyLimit,
    // req.ip: the TCP peer, unless it is a trusted proxy (then its X-Forwarded-For).
    trustProxy: d.trustedProxies && d.trustedProxies.length > 0 ? d.trustedProxies : false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown; validationContext?: string }, _req, reply) => {
    if (err instanceof RateLimitedError) {
      reply.header('retry-after', err.retryAfterSec);
      if (d.rateLimited) d.rateLimited[err.limit]++;
    }
    if (err instanceof InvalidPolicyError) {
      const p = err.policyError;
      return reply.code(400).send({ error: err.code, message: err.message, reason: p.reason, policyCode: p.code, path: p.path,
        line: p.line ?? null, column: p.column ?? null });
    }
    if (err instanceof JoinRefusedError && err.retryAfterSec !== undefined) reply.header('retry-after', err.retryAfterSec);
    if (err instanceof CoordinatorError) return reply.code(err.statusCode).send({ error: err.code, message: err.message });
    if (isRedisUnavailableError(err)) return replyRedisUnavailable(reply);
    if (err.validation) return reply.code(400).send({ error: 'invalid-request', message: `${err.validationContext ?? 'request'}: ${err.message}` });
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) d.log.error({ err }, 'request failed');
    return reply.code(status).send({ error: status === 500 ? 'internal' : (err.code ?? 'bad-request'), message: status === 500 ? 'internal error' : err.message });
  });
  if (d.onSend) app.addHook('onSend', d.onSend);
  // One debug line per answered request (--log-level debug; no bodies, no query: tokens stay out).
  app.addHook('onResponse', async (req, reply) => {
    if (d.log.isLevelEnabled('debug')) {
      d.log.debug({ method: req.method, route: req.routeOptions.url ?? req.url.split('?')[0], status: reply.statusCode, source: req.ip }, 'request');
    }
  });
  // Only JSON bodies: text/plain would reach the schema as a string.
  app.removeContentTypeParser('text/plain');
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: 'no-route', message: `no route ${req.method} ${req.url.split('?')[0]}` }));

  // Per-source limits (@fastify/rate-limit, in memory: see constants.ts DEFAULT_RATE_LIMITS).
  // Challenge and join are counted on arrival (onRequest: before the body is read); the admin
  // API in `admin` below, before the token is compared.
  const lim = d.rateLimits ?? {};
  const windowMs = lim.windowMs || DEFAULT_RATE_LIMITS.windowMs;
  await app.register(rateLimit, { global: false, cache: RATE_LIMIT_SOURCES, timeWindow: windowMs,
    errorResponseBuilder: (req, ctx) => {
      const join = req.routeOptions.url === '/v1/join' || req.routeOptions.url === '/v1/reassert';
      return new RateLimitedError(join ? 'join' : 'challenge', join ? 'joins' : 'challenges', Math.max(1, Math.ceil(ctx.ttl / 1000)));
    } });
  // Each limit is read per request from `lim` (0 = off: not counted), so the coordinator's
  // setRateLimits (SIGHUP) changes them live.
  type Limit = 'challenge' | 'join' | 'admin' | 'adminFailures';
  const live = (which: Limit) => ({ max: () => lim[which] ?? 0, allowList: () => !lim[which], timeWindow: windowMs });
  const limit = (which: Limit) => ({ rateLimit: live(which) });
  const adminRequests = app.createRateLimit(live('admin'));
  const adminFailures = app.createRateLimit(live('adminFailures'));
  const retryAfter = (ttlMs: number) => Math.max(1, Math.ceil(ttlMs / 1000));

  // Authentication runs before validation (preValidation), so a caller without a valid bearer
  // learns nothing about the request shape.
  // Tokens checked recently skip Redis while the peer-map cache still holds their member (session-cache.ts).
  const sessions = d.sessionCache;
  const isMember = (vip: string, publicKey: string) => d.peerMap.member(vip)?.publicKey === publicKey;
  const member = async (req: FastifyRequest): Promise<void> => {
    const t = bearer(req);
    let vip: string | undefined;
    if (t) {
      const h = hashSecret(t);
      const now = Date.now();
      vip = sessions?.get(h, now, isMember);
      if (!vip) {
        const a = await d.registry.authSessionInfo(h, d.sessionTtlMs);
        if (a) sessions?.set(h, a.vip, a.publicKey, a.leftMs, d.sessionTtlMs, now);
        vip = a?.vip;
      }
    }
    if (!vip) throw new UnauthorizedError('missing, expired or revoked session token: join again');
    memberVip.set(req, vip);
  };
  const vipOf = (req: FastifyRequest): string => memberVip.get(req)!;
  const admin = async (req: FastifyRequest): Promise<void> => {
    if (!d.adminToken) throw new CoordinatorError('admin-disabled', 'this coordinator has no --admin-token', 403);
    const t = bearer(req);
    await adminAuth(req, t !== undefined && secretsEqual(t, d.adminToken));
  };
  /** The admin limits for one credential check (bearer, dashboard login or cookie): throws when refused. */
  const adminAuth = async (req: FastifyRequest, ok: boolean): Promise<void> => {
    const r = await adminRequests(req);
    if (!r.isAllowed && r.isExceeded) throw new RateLimitedError('admin', 'admin requests', retryAfter(r.ttl));
    // A source with too many failed checks gets 429 for every admin request, right token or
    // wrong, until its window ends: guesses then teach nothing. Each check and its count happen
    // in one synchronous step (the store counts when called), so concurrent or pipelined guesses
    // cannot all slip in before the count catches up.
    const f = await adminFailures(req, { increment: !ok });
    if (!f.isAllowed && (ok ? f.remaining === 0 : f.isExceeded)) {
      throw new RateLimitedError('admin-auth', 'failed admin authentications', retryAfter(f.ttl));
    }
    if (!ok) {
      d.log.warn({ source: req.ip, route: req.routeOptions.url }, 'admin request with a missing or wrong token');
      throw new UnauthorizedError('missing or wrong admin token');
    }
  };

  app.get('/v1/health', async () => ({ ok: true }));

  app.get('/v1/challenge', { config: limit('challenge') }, async () => d.registry.createChallenge());

  app.post<{ Body: JoinRequest }>('/v1/join', { schema: { body: S.joinBody }, config: limit('join') }, async (req): Promise<JoinResponse> => {
    const b = req.body;
    if (b.tags && b.tags.length > 0) {
      throw new BadRequestError('tags-not-allowed', 'a member cannot choose its own tags: they come from its join token (isthmus token create --tag T) '
        + 'and from an admin (isthmus node tag); join without tags (drop the agent\'s --tag)');
    }
    const refusal = staticOriginalIpRefusal(b.originalIp, d.cidr);
    if (refusal) throw new BadRequestError(refusal.code, refusal.message);
    const source = sourceIpv4(req.ip);
    const opened = await d.registry.openJoinChallenge(b.challengeId);
    if (!opened) throw new CoordinatorError('challenge-unknown', 'challenge unknown, expired or already used: fetch a new one from GET /v1/challenge', 401);
    const pub = Buffer.from(b.publicKey, 'base64');
    if (!verifyKeyProof(opened.challenge(), pub, 'join', Buffer.from(b.proof, 'base64'))) {
      throw new CoordinatorError('bad-proof', 'proof of key possession does not verify', 401);
    }
    const sessionToken = newSecret(SESSION_TOKEN_PREFIX);
    const r = await d.registry.join({
      publicKey: b.publicKey, originalIp: b.originalIp, hostname: b.hostname,
      tokenHash: b.token ? hashSecret(b.token) : undefined, challengeId: b.challengeId, opened,
      originalIpIsSource: source === b.originalIp, sessionTokenHash: hashSecret(sessionToken), sessionTtlMs: d.sessionTtlMs,
    });
    d.log.info({ vip: r.vip, peer: redactKey(b.publicKey), created: r.created, originalIp: b.originalIp, source: req.ip },
      r.created ? 'member joined' : 'member re-joined');
    // A cursor-only answer (map 'none'): the member's map comes from its stream.
    const snap = b.map === 'none' ? { peers: [], version: r.version, map: 'none' as const } : await d.peerMap.full(r.vip, r.version);
    if (d.joins) d.joins[r.created ? 'created' : 'rejoined']++;
    const record = d.records?.issueJoined(r.vip, r.record);
    return { vip: r.vip, cidr: d.cidr.text, sessionToken, ...snap, ...record };
  });
  // Refused (4xx) and failed (5xx) joins, whichever check answered.
  app.addHook('onResponse', async (req, reply) => {
    if (d.joins && (req.routeOptions.url === '/v1/join' || req.routeOptions.url === '/v1/reassert') && reply.statusCode >= 400) d.joins[reply.statusCode >= 500 ? 'failed' : 'refused']++;
  });

  // The member's own scoped map (peer-map-cache.ts). A long-poll whose member's view did not
  // change is not answered until it does (or the wait ends): other members' changes cost it
  // one in-memory check each.
  const deltaBodies = new WeakMap<PeerChanges, string>();
  app.get<{ Querystring: { since?: string; wait?: string } }>('/v1/peers', { schema: { querystring: S.peersQuery }, preValidation: member },
    async (req, reply): Promise<PeersResponse | FastifyReply> => {
      const vip = vipOf(req);
      // A member the registry no longer holds (Redis lost it) gets 401, never an empty map: it
      // re-asserts its record (or joins again) and keeps its cached peers meanwhile.
      const full = async (): Promise<PeersResponse> => {
        const snap = await d.peerMap.full(vip, await d.registry.version());
        if (!d.peerMap.member(vip)) throw new UnauthorizedError('this member is not in the registry (removed, or Redis lost it): join again');
        return { full: true, ...snap };
      };
      if (req.query.since === undefined) return full();
      let since = Number(req.query.since);
      const waitMs = Math.min(d.longPollMs, req.query.wait !== undefined ? Number(req.query.wait) : d.longPollMs);
      const deadline = Date.now() + waitMs;
      const gone = new AbortController();
      const onClose = () => gone.abort();
      reply.raw.once('close', onClose);
      try {
        for (;;) {
          const want = d.feed.latest;
          const ch = await d.peerMap.delta(vip, since, want);
          if (ch === 'full') return full();
          const left = deadline - Date.now();
          if (ch.upserts.length > 0 || ch.removals.length > 0 || left <= 0 || gone.signal.aborted) {
            // Serialised once per answer object: members of one view class share it (peer-map-cache.ts).
            let body = deltaBodies.get(ch);
            if (body === undefined) {
              body = JSON.stringify({ full: false, ...ch } satisfies PeersResponse);
              deltaBodies.set(ch, body);
            }
            return reply.type('application/json; charset=utf-8').send(body);
          }
          // Nothing for this member up to ch.version: wait for a later change (only a new event
          // if Redis does not have the version the feed last announced).
          const stuck = ch.version < want && ch.version === since;
          since = ch.version;
          await d.feed.register(since, { onlyNew: stuck }).wait(left, gone.signal);
        }
      } finally {
        reply.raw.removeListener('close', onClose);
      }
    });

  // The member's peer map as a stream (peer-stream.ts, docs/PROTOCOL.md §4): an opening frame,
  // then one frame per change of its view, heartbeats between. What members watch with.
  if (d.streams) {
    const streams = d.streams;
    app.get<{ Querystring: { since?: string } }>('/v1/peers/stream', { schema: { querystring: S.peersStreamQuery }, preValidation: member },
      async (req, reply) => {
        const nonce = req.headers[NONCE_HEADER];
        if (nonce !== undefined && (typeof nonce !== 'string' || !isNonce(nonce))) {
          throw new BadRequestError('bad-nonce', `${NONCE_HEADER}: 16-64 base64url characters`);
        }
        await streams.serve(vipOf(req), req.query.since === undefined ? undefined : Number(req.query.since), nonce, reply);
        return reply;
      });
  }

  app.post('/v1/leave', { preValidation: member }, async (req, reply) => {
    const vip = vipOf(req);
    sessions?.dropVip(vip);
    await d.registry.remove(vip);
    sessions?.dropVip(vip); // and what a poll racing the removal put back
    d.log.info({ vip }, 'member left');
    return reply.code(200).send({ ok: true, vip });
  });

  app.post<{ Body: TokenCreateRequest | undefined }>('/v1/tokens', { schema: { body: S.tokenCreateBody }, preValidation: admin }, async (req, reply) => {
    const b = req.body ?? {};
    const ttlMs = b.ttl === undefined ? undefined : parseDuration(b.ttl);
    let originalCidrs: string[];
    try {
      originalCidrs = parseOriginalCidrs(b.originalCidrs ?? []);
    } catch (err) {
      throw new BadRequestError('invalid-original-cidr', (err as Error).message);
    }
    const { token, info } = await d.tokens.create({ uses: b.uses, ttlMs, tags: b.tags, originalCidrs, ephemeral: b.ephemeral });
    d.log.info({ tokenId: info.id, uses: info.usesLeft, ephemeral: info.ephemeral, originalCidrs }, 'join token created');
    return reply.code(201).send({ token, ...info });
  });

  app.get('/v1/tokens', { preValidation: admin }, async () => {
    return { tokens: await d.tokens.list() };
  });

  app.delete<{ Params: { id: string } }>('/v1/tokens/:id', { schema: { params: S.tokenIdParams }, preValidation: admin }, async (req) => {
    if (!await d.tokens.revoke(req.params.id)) throw new NotFoundError(`token ${req.params.id}`);
    d.log.info({ tokenId: req.params.id }, 'join token revoked');
    return { ok: true, id: req.params.id };
  });

  // Filters (node-filter.ts): ?tag=T (repeatable, all must match), online=true|false, relay=ID|ADDR, original=CIDR.
  app.get<{ Querystring: NodeFilterQuery }>('/v1/nodes', { schema: { querystring: S.nodeListQuery }, preValidation: admin }, async (req) => {
    const f = parseNodeFilter(req.query);
    return { nodes: (await d.registry.listNodes()).filter((n) => nodeMatches(n, f)) };
  });

  // Admin removal refuses the key's later joins unless ?allowRejoin=true (leave and the
  // ephemeral sweep never do): a compromised member cannot come back with a token it still holds.
  app.delete<{ Params: { vip: string }; Querystring: { allowRejoin?: string } }>('/v1/nodes/:vip',
    { schema: { params: S.vipParams, querystring: S.removeQuery }, preValidation: admin }, async (req) => {
      const keyRefused = req.query.allowRejoin !== 'true';
      sessions?.dropVip(req.params.vip);
      const removed = await d.registry.remove(req.params.vip, { refuseKey: keyRefused });
      sessions?.dropVip(req.params.vip);
      if (!removed) throw new NotFoundError(`member ${req.params.vip}`);
      d.log.info({ vip: req.params.vip, keyRefused }, 'member removed by admin');
      return { ok: true, vip: req.params.vip, keyRefused };
    });

  app.post<{ Params: { vip: string }; Body: NodeTagsRequest }>('/v1/nodes/:vip/tags',
    { schema: { params: S.memberParams, body: S.nodeTagsBody }, preValidation: admin }, async (req): Promise<NodeTagsResponse> => {
      const add = req.body.add ?? [];
      const remove = req.body.remove ?? [];
      if (add.length === 0 && remove.length === 0) throw new BadRequestError('no-tags', 'give tags to add and/or remove');
      const vip = await d.registry.resolveMember(req.params.vip);
      if (!vip) throw new NotFoundError(`member ${req.params.vip}`);
      const r = await d.registry.setTags(vip, add, remove);
      if (!r) throw new NotFoundError(`member ${req.params.vip}`);
      d.log.info({ vip, add, remove, tags: r.tags }, 'member tags changed by admin');
      return { vip, tags: r.tags, version: r.version };
    });

  app.get('/v1/removed-keys', { preValidation: admin }, async () => {
    return { keys: await d.registry.listRemovedKeys() };
  });

  app.post<{ Body: { publicKey: string } }>('/v1/removed-keys/allow', { schema: { body: S.publicKeyBody }, preValidation: admin }, async (req) => {
    if (!await d.registry.allowKey(req.body.publicKey)) throw new NotFoundError(`removed key ${req.body.publicKey}`);
    d.log.info({ peer: redactKey(req.body.publicKey) }, 'removed key allowed to join again');
    return { ok: true, publicKey: req.body.publicKey };
  });

  registerPolicyRoutes(app, { registry: d.registry, tokens: d.tokens, peerMap: d.peerMap, log: d.log, admin });
  registerReassertRoutes(app, { registry: d.registry, peerMap: d.peerMap, log: d.log, cidr: d.cidr, sessionTtlMs: d.sessionTtlMs,
    records: d.records, joins: d.joins, limit: limit('join'), member, vipOf });

  if (d.dashboard) {
    await registerDashboard(app, { ...d.dashboard, registry: d.registry, tokens: d.tokens, feed: d.feed, log: d.log, adminToken: d.adminToken,
      tls: !!d.https, bearer, adminAuth });
  }
  if (d.proxyUsers) registerProxyUserRoutes(app, { proxyUsers: d.proxyUsers, log: d.log, admin });

  return app;
}
