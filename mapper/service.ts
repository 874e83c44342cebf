/**
 * The `isthmus mapper` process: directory cache + lookup API + proxy fronts, wired together.
 * The SOCKS5 port also accepts HTTP proxy requests (first byte tells them apart); an
 * optional separate HTTP proxy port accepts both as well.
 */
import type net from 'node:net';
import type http from 'node:http';
import type { FastifyInstance } from 'fastify';
import { type Logger, silentLogger, type Prefix, type RedisSpec, DEFAULT_PREFIX, connectRedis } from '../common';
import { isLoopbackHost, parseRange } from './addr';
import { RedisDirectory, type MemberDirectory } from './directory';
import { buildLookupApi } from './lookup-api';
import { DEFAULT_PROXY_TIMEOUTS, credentialsMatch, type Credentials, type GatewayAuth, type ProxyContext, type ProxyTimeouts } from './context';
import { ExposeStore } from './expose-store';
import { ExposureManager, localOverlayAddress, type ExposeOptions } from './expose';
import { RedisProxyUsers, type ProxyUserVerifier } from './proxy-users';
import { GatewayAccess, redisPolicyLoader } from './gateway';
import { netDialer, type Dialer } from './dialer';
import { createHttpProxy, DEFAULT_MAX_HEADER_BYTES } from './http-proxy';
import { createProxyFront } from './front';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface MapperServiceOptions {
  /** redis URL or connection options (common/redis-connect.ts); ignored when `directory` is given */
  redis?: RedisSpec;
  /** Redis key prefix. @default DEFAULT_PREFIX (common/redis-schema.ts) */
  prefix?: string;
  /** Start (listeners up) while Redis is down; the directory waits for it (DirectoryOptions.waitForRedis). */
  waitForRedis?: boolean;
  /** use this directory instead of one over Redis */
  directory?: MemberDirectory;
  /** lookup API listen address; omitted = no API */
  api?: ListenAddress;
  /** SOCKS5 (+ HTTP) listen address; omitted = no SOCKS */
  socks?: ListenAddress;
  /** separate HTTP proxy listen address */
  httpProxy?: ListenAddress;
  credentials?: Credentials;
  /**
   * Gateway mode (docs/GATEWAY.md): the proxies take proxy users (Redis-backed, or `users`)
   * instead of `credentials`, and check each destination against the policy for the user and
   * for this gateway member, found by `selfVip` (its agent's virtual IP).
   */
  gateway?: { selfVip(): Promise<string | null>; users?: ProxyUserVerifier; revalidateMs?: number };
  /** @default '100.64.0.0/10' */
  overlayCidr?: string;
  /** if set, IPv4 destinations outside these and the overlay are refused as not allowed */
  originalCidrs?: string[];
  dialer?: Dialer;
  timeouts?: Partial<ProxyTimeouts>;
  /** @default 16384 */
  maxHeaderBytes?: number;
  logger?: Logger;
  /** port exposure on this gateway (POST /v1/expose); GET and DELETE work on every mapper with an API over Redis */
  expose?: ExposeOptions;
  /**
   * Without `gateway`: this mapper's own virtual IP (its tags for the policy, its id on exposure
   * records) @default the local address inside the overlay. Gateway mode asks its agent
   * (`gateway.selfVip`) instead, for the proxies and exposure alike.
   */
  gatewayVip?: string;
  /** proxy users for /v1/expose; @default the `credentials` user, acting with this gateway's own tags */
  users?: ProxyUserVerifier;
}

export const DEFAULT_OVERLAY_CIDR = '100.64.0.0/10';

export interface MapperService {
  readonly context: ProxyContext;
  readonly directory: MemberDirectory;
  /** gateway mode: the Redis-backed proxy users (readiness, metrics) */
  readonly proxyUsers?: RedisProxyUsers;
  /** actual bound addresses (port 0 resolved) */
  readonly addresses: { api?: ListenAddress; socks?: ListenAddress; httpProxy?: ListenAddress };
  /** port exposure (present with an API over Redis) */
  readonly expose?: ExposureManager;
  stop(): Promise<void>;
}

function listen(server: net.Server | http.Server, a: ListenAddress): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(a.port, a.host, () => {
      server.removeListener('error', reject);
      const ad = server.address() as net.AddressInfo;
      resolve({ host: ad.address, port: ad.port });
    });
  });
}

export async function startMapperService(opts: MapperServiceOptions): Promise<MapperService> {
  const log = opts.logger ?? silentLogger();
  // Never an open service: beyond loopback only with credentials or gateway proxy users (the API wants them too).
  for (const [name, at] of [['api', opts.api], ['socks', opts.socks], ['httpProxy', opts.httpProxy]] as const) {
    if (at && !opts.credentials && !opts.gateway && !isLoopbackHost(at.host)) {
      throw new Error(`startMapperService: ${name} on ${at.host} needs credentials (only loopback may go without)`);
    }
  }
  const overlay: Prefix = parseRange(opts.overlayCidr ?? DEFAULT_OVERLAY_CIDR);
  const originalCidrs = opts.originalCidrs?.map(parseRange);
  let redisDir: RedisDirectory | undefined;
  let directory = opts.directory;
  if (!directory) {
    if (!opts.redis) throw new Error('startMapperService: need redis or directory');
    redisDir = new RedisDirectory({ redis: opts.redis, prefix: opts.prefix, logger: log, waitForRedis: opts.waitForRedis });
    await redisDir.start();
    directory = redisDir;
  }
  if (opts.gateway && opts.credentials) throw new Error('startMapperService: gateway mode takes proxy users, not static credentials');
  if (opts.gateway && opts.gatewayVip !== undefined) throw new Error('startMapperService: gateway mode finds its identity through its agent (gateway.selfVip), not gatewayVip');
  // This mapper's member identity, one source for the proxies' policy check and exposure.
  const fixedVip = opts.gatewayVip;
  const selfVip = opts.gateway?.selfVip
    ?? (fixedVip !== undefined ? async () => fixedVip : async () => localOverlayAddress(overlay) ?? null);
  let access: GatewayAccess | undefined;
  let proxyUsers: RedisProxyUsers | undefined;
  let gateway: GatewayAuth | undefined;
  if (opts.gateway) {
    const redis = opts.redis;
    if (!redis) { await redisDir?.close(); throw new Error('startMapperService: gateway mode needs redis (proxy users and the policy)'); }
    proxyUsers = new RedisProxyUsers({ redis, prefix: opts.prefix, logger: log, revalidateMs: opts.gateway.revalidateMs });
    await proxyUsers.start();
    const a = new GatewayAccess({ loadPolicy: redisPolicyLoader(proxyUsers.redis, opts.prefix), directory, selfVip, logger: log });
    proxyUsers.onClusterEvent((e) => a.onClusterEvent(e));
    access = a;
    gateway = { users: opts.gateway.users ?? proxyUsers, access: a };
  }
  const context: ProxyContext = {
    policy: { directory, overlay, originalCidrs },
    dial: opts.dialer ?? netDialer,
    credentials: opts.credentials,
    gateway,
    timeouts: { ...DEFAULT_PROXY_TIMEOUTS, ...opts.timeouts },
    log,
    counters: new Map(),
  };
  const closers: Array<() => Promise<void>> = [];
  const addresses: MapperService['addresses'] = {};
  const stop = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await proxyUsers?.close();
    await redisDir?.close();
  };
  let expose: ExposureManager | undefined;
  try {
    if (opts.api && opts.redis) {
      const r = connectRedis(opts.redis, { maxRetriesPerRequest: 2, connectTimeout: 5000, enableAutoPipelining: false });
      r.on('error', (err: Error) => log.debug({ err: err.message }, 'exposure redis error'));
      closers.push(async () => { r.disconnect(); });
      const store = new ExposeStore(r, opts.prefix ?? DEFAULT_PREFIX);
      if (!access) {
        // Not a gateway: the same check, its policy read with the exposure client, invalidated by the directory's events.
        const a = new GatewayAccess({ loadPolicy: () => store.policyText(), directory, selfVip, logger: log });
        redisDir?.onClusterEvent((e) => a.onClusterEvent(e));
        access = a;
      }
      const mgr = new ExposureManager(store, context, opts.expose ?? null, access);
      closers.push(() => mgr.stop());
      await mgr.start();
      expose = mgr;
    }
    if (opts.api) {
      const creds = opts.credentials;
      const mgr = expose;
      // Gateway mode: the central proxy users; else the one --socks-user, acting with this gateway's tags.
      const users: ProxyUserVerifier | undefined = opts.users ?? gateway?.users ?? (creds && mgr
        ? { verify: async (name, password) => (credentialsMatch(creds, name, password) ? { name, tags: await mgr.gatewayTags() } : null) }
        : undefined);
      const app: FastifyInstance = buildLookupApi({ directory, live: redisDir ? () => redisDir!.isLive : undefined, credentials: opts.credentials, expose, users,
        usersOnEveryRoute: Boolean(gateway) });
      await app.listen({ host: opts.api.host, port: opts.api.port });
      const ad = app.server.address() as net.AddressInfo;
      addresses.api = { host: ad.address, port: ad.port };
      closers.push(() => app.close());
      log.info({ addr: addresses.api }, 'lookup API listening');
    }
    const httpProxy = createHttpProxy(context, opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES);
    closers.push(async () => { httpProxy.closeAllConnections(); });
    const fronts: Array<[keyof MapperService['addresses'], ListenAddress]> = [];
    if (opts.socks) fronts.push(['socks', opts.socks]);
    if (opts.httpProxy) fronts.push(['httpProxy', opts.httpProxy]);
    for (const [name, at] of fronts) {
      const front = createProxyFront(context, { socks: true, http: httpProxy });
      const sockets = new Set<net.Socket>();
      front.on('connection', (s: net.Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
      addresses[name] = await listen(front, at);
      closers.push(() => new Promise((r) => { for (const s of sockets) s.destroy(); front.close(() => r()); }));
      log.info({ addr: addresses[name], proxy: name }, 'proxy listening');
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { context, directory, proxyUsers, addresses, expose, stop };
}
