/**
 * The exposure routes of the mapper API (expose.ts does the work):
 *   POST   /v1/expose { originalIp, port }      → 201 ExposureView (created) | 200 (already exposed: that 4-tuple)
 *   GET    /v1/expose?originalIp=..&port=..     → 200 ExposureView (any gateway's, from Redis) | 404 not-exposed
 *   DELETE /v1/expose?originalIp=..&port=..     → 200 ExposureView (any gateway; the creating user only)
 *   DELETE /v1/expose/:gatewayPort              → 200 ExposureView (this gateway's port; the creating user only)
 * Every route wants a proxy user's credentials as HTTP Basic (401 otherwise); refusals are
 * `{ error, reason }` with the status of ExposeRefusedError (400 input, 403 policy / not-owner,
 * 404 unknown member / not exposed, 429 per-user limit, 503 range exhausted / Redis down).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ADDR_PATTERN, MAX_ADDR_LEN } from '../common';
import type { ProxyUser, ProxyUserVerifier } from './proxy-users';
import { ExposeRefusedError, type ExposureManager } from './expose';

const ipString = { type: 'string', maxLength: MAX_ADDR_LEN, pattern: ADDR_PATTERN } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;
const target = { type: 'object', required: ['originalIp', 'port'], additionalProperties: false, properties: { originalIp: ipString, port } } as const;
const view = {
  type: 'object',
  properties: {
    gatewayIp: { type: 'string' }, gatewayPort: { type: 'integer' }, originalIp: { type: 'string' }, port: { type: 'integer' },
    expiresAt: { type: 'number' }, gatewayId: { type: 'string' },
  },
} as const;
const errorBody = { type: 'object', properties: { error: { type: 'string' }, reason: { type: 'string' } } } as const;
const responses = { 200: view, 201: view, '4xx': errorBody, '5xx': errorBody } as const;

/** Routes whose URL starts with this are authenticated by proxy users, not the mapper's own credentials. */
export const EXPOSE_ROUTE_PREFIX = '/v1/expose';

export function parseBasic(header: string | undefined): { name: string; password: string } | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
  if (!m) return null;
  const dec = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = dec.indexOf(':');
  return i > 0 ? { name: dec.slice(0, i), password: dec.slice(i + 1) } : null;
}

declare module 'fastify' {
  interface FastifyRequest {
    proxyUser?: ProxyUser;
  }
}

export function registerExposeRoutes(app: FastifyInstance, expose: ExposureManager, users: ProxyUserVerifier | undefined): void {
  const unauthorized = (reply: FastifyReply, reason: string) =>
    reply.code(401).header('www-authenticate', 'Basic realm="isthmus-expose"').send({ error: 'unauthorized', reason });
  const auth = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!users) return unauthorized(reply, 'port exposure needs proxy users, and none are configured on this mapper');
    const c = parseBasic(req.headers.authorization);
    if (!c) return unauthorized(reply, 'port exposure wants a proxy user\'s credentials (HTTP Basic)');
    const u = await users.verify(c.name, c.password);
    if (!u) return unauthorized(reply, 'unknown proxy user or wrong password');
    req.proxyUser = u;
  };
  const refused = (reply: FastifyReply, err: unknown) => {
    if (err instanceof ExposeRefusedError) return reply.code(err.status).send({ error: err.error, reason: err.reason });
    throw err;
  };

  app.post<{ Body: { originalIp: string; port: number } }>(EXPOSE_ROUTE_PREFIX, { preHandler: auth, schema: { body: target, response: responses } }, async (req, reply) => {
    try {
      const r = await expose.create(req.proxyUser!, req.body.originalIp, req.body.port);
      return reply.code(r.created ? 201 : 200).send(r.exposure);
    } catch (err) { return refused(reply, err); }
  });

  app.get<{ Querystring: { originalIp: string; port: number } }>(EXPOSE_ROUTE_PREFIX, { preHandler: auth, schema: { querystring: target, response: responses } }, async (req, reply) => {
    try { return await expose.get(req.proxyUser!, req.query.originalIp, req.query.port); } catch (err) { return refused(reply, err); }
  });

  app.delete<{ Querystring: { originalIp: string; port: number } }>(EXPOSE_ROUTE_PREFIX, { preHandler: auth, schema: { querystring: target, response: responses } }, async (req, reply) => {
    try { return await expose.deleteTarget(req.proxyUser!, req.query.originalIp, req.query.port); } catch (err) { return refused(reply, err); }
  });

  app.delete<{ Params: { gatewayPort: number } }>(`${EXPOSE_ROUTE_PREFIX}/:gatewayPort`, {
    preHandler: auth,
    schema: { params: { type: 'object', required: ['gatewayPort'], properties: { gatewayPort: port } }, response: responses },
  }, async (req, reply) => {
    try { return await expose.deletePort(req.proxyUser!, req.params.gatewayPort); } catch (err) { return refused(reply, err); }
  });
}
