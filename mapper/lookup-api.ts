/**
 * Lookup HTTP API (fastify), answered from the directory cache:
 *   GET  /v1/map/:originalIp     → MapResult | 404 { error, reason } | 400 { error, reason }
 *   POST /v1/map { ips: [...] }  → { found: MapResult[], unknown: string[] } (at most MAX_BATCH ips)
 *   GET  /v1/reverse/:virtualIp  → MapResult | 404 | 400
 *   GET  /healthz                → { ok, live }
 * Directory failures (Redis down) answer 503 { error: 'unavailable', reason }. With
 * `credentials`, every route but /healthz wants them as HTTP Basic (401 otherwise).
 * With `expose`, the /v1/expose routes of expose-api.ts too (authenticated by proxy users).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { MapEntry, MemberDirectory } from './directory';
import { ADDR_PATTERN, MAX_ADDR_LEN } from '../common';
import { credentialsMatch, type Credentials } from './context';
import type { ProxyUserVerifier } from './proxy-users';
import type { ExposureManager } from './expose';
import { EXPOSE_ROUTE_PREFIX, parseBasic, registerExposeRoutes } from './expose-api';

/** Most IPs one batch request may ask about. */
export const MAX_BATCH = 256;

/** The wire shape of one mapping (same as the SDK's). */
export interface MapResult {
  originalIp: string;
  virtualIp: string;
  hostname: string | null;
  online: boolean;
  relay: { ip: string; port: number } | null;
  agent: { ip: string; port: number } | null;
  tags: string[];
  lastSeen: number | null;
}

export function toResult(e: MapEntry): MapResult {
  return { originalIp: e.originalIp, virtualIp: e.virtualIp, hostname: e.hostname, online: e.online, relay: e.relay, agent: e.agent, tags: e.tags, lastSeen: e.lastSeen };
}

const ipString = { type: 'string', maxLength: MAX_ADDR_LEN, pattern: ADDR_PATTERN } as const;
const endpoint = { type: ['object', 'null'], properties: { ip: { type: 'string' }, port: { type: 'integer' } } } as const;
const mapResult = {
  type: 'object',
  properties: {
    originalIp: { type: 'string' }, virtualIp: { type: 'string' }, hostname: { type: ['string', 'null'] },
    online: { type: 'boolean' }, relay: endpoint, agent: endpoint,
    tags: { type: 'array', items: { type: 'string' } }, lastSeen: { type: ['number', 'null'] },
  },
} as const;
const errorBody = { type: 'object', properties: { error: { type: 'string' }, reason: { type: 'string' } } } as const;

export interface LookupApiOptions {
  directory: MemberDirectory;
  /** reports whether the cache is live (subscribed); for /healthz */
  live?: () => boolean;
  /** required as HTTP Basic on every route but /healthz */
  credentials?: Credentials;
  /** port exposure (POST/GET/DELETE /v1/expose) */
  expose?: ExposureManager;
  /** who may use /v1/expose (HTTP Basic) */
  users?: ProxyUserVerifier;
  /** gateway mode: every route but /healthz wants one of `users` (HTTP Basic) instead of `credentials` */
  usersOnEveryRoute?: boolean;
}

/** The check of every route but /healthz (and exposure, which checks proxy users itself). */
function apiGuard(opts: LookupApiOptions): ((header: string | undefined) => Promise<boolean>) | undefined {
  const want = opts.credentials;
  if (want) return async (h) => { const c = parseBasic(h); return c !== null && credentialsMatch(want, c.name, c.password); };
  const users = opts.users;
  if (opts.usersOnEveryRoute && users) return async (h) => { const c = parseBasic(h); return c !== null && (await users.verify(c.name, c.password)) !== null; };
  return undefined;
}

export function buildLookupApi(opts: LookupApiOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  const dir = opts.directory;

  app.setErrorHandler((err: { validation?: unknown; message: string; statusCode?: number }, _req, reply) => {
    if (err.validation) return reply.code(400).send({ error: 'bad-request', reason: err.message });
    if ((err.statusCode ?? 500) < 500) return reply.code(err.statusCode!).send({ error: 'bad-request', reason: err.message });
    return reply.code(503).send({ error: 'unavailable', reason: err.message });
  });
  const guard = apiGuard(opts);
  if (guard) {
    app.addHook('onRequest', async (req, reply) => {
      if (req.url === '/healthz') return;
      // Exposure authenticates proxy users itself (expose-api.ts), with its own answers.
      if (opts.expose && req.routeOptions.url?.startsWith(EXPOSE_ROUTE_PREFIX)) return;
      if (await guard(req.headers.authorization)) return;
      return reply.code(401).header('www-authenticate', 'Basic realm="isthmus-mapper"').send({ error: 'unauthorized', reason: 'this mapper wants its credentials (HTTP Basic)' });
    });
  }
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: 'not-found', reason: `no route ${req.method} ${req.url.slice(0, 100)}` }));

  app.get<{ Params: { originalIp: string } }>('/v1/map/:originalIp', {
    schema: { params: { type: 'object', required: ['originalIp'], properties: { originalIp: ipString } }, response: { 200: mapResult, 404: errorBody, 400: errorBody } },
  }, async (req, reply) => {
    const e = await dir.byOriginalIp(req.params.originalIp);
    if (!e) return reply.code(404).send({ error: 'unknown-original-ip', reason: `no member has original IP ${req.params.originalIp}` });
    return toResult(e);
  });

  app.get<{ Params: { virtualIp: string } }>('/v1/reverse/:virtualIp', {
    schema: { params: { type: 'object', required: ['virtualIp'], properties: { virtualIp: ipString } }, response: { 200: mapResult, 404: errorBody, 400: errorBody } },
  }, async (req, reply) => {
    const e = await dir.byVirtualIp(req.params.virtualIp);
    if (!e) return reply.code(404).send({ error: 'unknown-virtual-ip', reason: `no member has virtual IP ${req.params.virtualIp}` });
    return toResult(e);
  });

  app.post<{ Body: { ips: string[] } }>('/v1/map', {
    schema: {
      body: { type: 'object', required: ['ips'], additionalProperties: false, properties: { ips: { type: 'array', maxItems: MAX_BATCH, items: ipString } } },
      response: { 200: { type: 'object', properties: { found: { type: 'array', items: mapResult }, unknown: { type: 'array', items: { type: 'string' } } } }, 400: errorBody },
    },
  }, async (req) => {
    const ips = [...new Set(req.body.ips)];
    const entries = await Promise.all(ips.map((ip) => dir.byOriginalIp(ip)));
    const found: MapResult[] = [];
    const unknown: string[] = [];
    entries.forEach((e, i) => (e ? found.push(toResult(e)) : unknown.push(ips[i]!)));
    return { found, unknown };
  });

  if (opts.expose) registerExposeRoutes(app, opts.expose, opts.users);

  app.get('/healthz', async () => ({ ok: true, live: opts.live ? opts.live() : true }));
  return app;
}
