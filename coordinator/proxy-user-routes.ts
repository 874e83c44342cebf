/**
 * Admin routes of the proxy users (gateway credentials, coordinator/proxy-users.ts):
 *
 *   POST   /v1/proxy-users        {name, tags}  → 201 {name, tags, createdAt, password}  (the password only here, once)
 *   GET    /v1/proxy-users                      → {users: [{name, tags, createdAt}]}   (never a hash)
 *   DELETE /v1/proxy-users/:name                → {ok, name}; 404 when unknown
 *
 * All behind the admin token and its rate limits (api.ts `admin`).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '../common';
import { NotFoundError } from './errors';
import type { ProxyUserStore } from './proxy-users';
import * as S from './schemas';
import type { ProxyUserCreateRequest, ProxyUserCreated, ProxyUserView } from './types';

export interface ProxyUserRouteDeps {
  proxyUsers: ProxyUserStore;
  log: Logger;
  admin: (req: FastifyRequest) => Promise<void>;
}

export function registerProxyUserRoutes(app: FastifyInstance, d: ProxyUserRouteDeps): void {
  app.post<{ Body: ProxyUserCreateRequest }>('/v1/proxy-users', { schema: { body: S.proxyUserCreateBody }, preValidation: d.admin },
    async (req, reply) => {
      const { password, user } = await d.proxyUsers.create(req.body.name, req.body.tags);
      d.log.info({ proxyUser: user.name, tags: user.tags }, 'proxy user created');
      const out: ProxyUserCreated = { ...user, password };
      return reply.code(201).send(out);
    });

  app.get('/v1/proxy-users', { preValidation: d.admin }, async (): Promise<{ users: ProxyUserView[] }> => {
    return { users: await d.proxyUsers.list() };
  });

  app.delete<{ Params: { name: string } }>('/v1/proxy-users/:name', { schema: { params: S.proxyUserParams }, preValidation: d.admin }, async (req) => {
    if (!await d.proxyUsers.revoke(req.params.name)) throw new NotFoundError(`proxy user ${req.params.name}`);
    d.log.info({ proxyUser: req.params.name }, 'proxy user revoked');
    return { ok: true, name: req.params.name };
  });
}
