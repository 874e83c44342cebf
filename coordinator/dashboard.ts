/**
 * The read-only web dashboard at `/ui` (docs/OPERATIONS.md "Dashboard"): members, relays,
 * join tokens (never their secrets) and the policy, kept live by server-sent events.
 *
 *   GET  /ui/login       login form (no credentials needed)
 *   POST /ui/login       form field `token` = the admin token → session cookie, 303 to /ui
 *   POST /ui/logout      clears the cookie
 *   GET  /ui             the page (a session cookie; without one: 303 to /ui/login)
 *   GET  /ui/state       JSON snapshot (cookie or `Authorization: Bearer <admin token>`)
 *   GET  /ui/events      text/event-stream: `snapshot`, `relays`, `change` (cookie or bearer)
 *   GET  /ui/assets/*    the static script and style sheet (public, as shipped in the package)
 *
 * The browser never holds the admin token after login: the cookie holds an expiry and a random
 * id, signed (HMAC-SHA256, @fastify/cookie) with a key derived from the admin token, so every
 * coordinator sharing the token accepts it and changing the token ends every session. It is
 * HttpOnly, SameSite=Strict, Secure under TLS, scoped to /ui and lives DASHBOARD_SESSION_MS.
 * Logins and cookie checks count against the admin rate limits like bearer checks do.
 *
 * Live updates come from the coordinator's one `P:events` subscription (peer-feed.ts): an
 * event goes to every open stream at once as `change`, and a fresh snapshot (one set of Redis
 * reads, shared by all streams) follows, at most one per SNAPSHOT_GAP_MS, or per four times the
 * last one's read time when that is longer (a big registry is not re-read back to back). Relay
 * counters do not come with events: while a stream is open the relays alone
 * (`P:relay-stats-ids`, one hash per relay) are re-read every RELAY_REFRESH_MS. Browsers never
 * poll.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import type Redis from 'ioredis';
import { type ClusterEvent, type Logger, redisKeys, type RedisKeys } from '../common';
import { CoordinatorError, UnauthorizedError } from './errors';
import type { RedisRegistry } from './redis-store';
import type { TokenStore } from './token-store';
import type { TokenView } from './types';
import type { PeerFeed } from './peer-feed';
import { secretsEqual } from './token-rules';

/** A dashboard login lasts this long; then the page asks for the token again. @default 1 h */
export const DASHBOARD_SESSION_MS = 60 * 60 * 1000;
/** Most live streams one coordinator serves at once (503 beyond). */
export const MAX_DASHBOARD_STREAMS = 64;
/** Snapshots after events: at most one per this gap (a burst of joins costs one read). */
const SNAPSHOT_GAP_MS = 500;
/** Relay counters re-read this often while a stream is open (relays write them every 5 s). */
const RELAY_REFRESH_MS = 5000;
/** A comment line on every stream this often, so proxies keep it open. */
const KEEPALIVE_MS = 15_000;
/** A stream whose client does not read is dropped past this much unsent data. */
const MAX_STREAM_BACKLOG = 4 * 1024 * 1024;
/** Members in one snapshot (the rest are counted in `membersTotal`). */
const MAX_MEMBERS = 5000;
/** Relay ids written within this long are listed (their record expires after 3 intervals). */
const RELAY_RECENT_MS = 60_000;

const COOKIE = 'isthmus_ui';
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
  + "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

export interface DashboardMember {
  vip: string;
  hostname: string;
  originalIp: string;
  tags: string[];
  online: boolean;
  /** The relay holding its session, when online. */
  relayId?: string;
  /** The address the relay sees the member at (its NAT's), when online. */
  agentAddr?: string;
  /** Unix ms: the session's start, when online. */
  onlineSince?: number;
  lastSeen: number;
  created: number;
  ephemeral: boolean;
}

export interface DashboardRelay {
  id: string;
  sessions: number;
  framesForwarded: number;
  bytesForwarded: number;
  dropped: number;
  framesPerSec: number;
  bytesPerSec: number;
  dropsPerSec: number;
  /** Unix ms of the relay's last write; `since`: its first. */
  at: number;
  since: number;
}

/** A join token as the page shows it: the admin API's view, copied field by field so no secret can slip in. */
export type DashboardToken = TokenView;

export interface DashboardSnapshot {
  at: number;
  version: number;
  members: DashboardMember[];
  membersTotal: number;
  relays: DashboardRelay[];
  tokens: DashboardToken[];
  /** The policy text as stored (canonical JSON), null: none. */
  policy: string | null;
}

export interface DashboardDeps {
  registry: RedisRegistry;
  tokens: TokenStore;
  feed: PeerFeed;
  redis: Redis;
  prefix: string;
  log: Logger;
  adminToken?: string;
  /** Served over TLS: the cookie is Secure. */
  tls: boolean;
  /** The bearer token of a request, if any (api.ts). */
  bearer(req: FastifyRequest): string | undefined;
  /** The admin rate limits and failure count for one credential check (api.ts); throws when refused. */
  adminAuth(req: FastifyRequest, ok: boolean): Promise<void>;
  now?: () => number;
}

/** The folder holding the page's files: `coordinator/ui` next to this file (tsx) or from `dist/coordinator/` (compiled, and the package). */
export function dashboardAssetDir(): string {
  const candidates = [path.join(__dirname, 'ui'), path.join(__dirname, '..', '..', 'coordinator', 'ui')];
  const dir = candidates.find((d) => existsSync(path.join(d, 'dashboard.html')));
  if (!dir) throw new Error(`dashboard files not found (looked in ${candidates.join(', ')})`);
  return dir;
}

const ASSETS: Record<string, string> = {
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

async function readRelays(redis: Redis, keys: RedisKeys, now: number): Promise<DashboardRelay[]> {
  const ids = await redis.zrangebyscore(keys.relayStatsIds, now - RELAY_RECENT_MS, '+inf');
  if (ids.length === 0) return [];
  const p = redis.pipeline();
  for (const id of ids) p.hgetall(keys.relayStats(id));
  const res = (await p.exec()) ?? [];
  const num = (v: string | undefined) => {
    const n = Number(v);
    return Number.isFinite(n) ? n : 0;
  };
  const out: DashboardRelay[] = [];
  ids.forEach((id, i) => {
    const [err, h] = res[i] ?? [];
    if (err || !h || typeof h !== 'object' || Object.keys(h).length === 0) return; // expired
    const r = h as Record<string, string>;
    out.push({
      id, sessions: num(r.sessions), framesForwarded: num(r.framesForwarded), bytesForwarded: num(r.bytesForwarded), dropped: num(r.dropped),
      framesPerSec: num(r.framesPerSec), bytesPerSec: num(r.bytesPerSec), dropsPerSec: num(r.dropsPerSec), at: num(r.at), since: num(r.since),
    });
  });
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Everything the page shows, read from Redis now. Token secrets are never stored, so never read. */
export async function dashboardSnapshot(d: Pick<DashboardDeps, 'registry' | 'tokens' | 'redis'> & { keys: RedisKeys; now: () => number }): Promise<DashboardSnapshot> {
  const now = d.now();
  const [version, nodes, tokens, policy, relays] = await Promise.all([
    d.registry.version(), d.registry.listNodes(), d.tokens.list(), d.registry.policyText(), readRelays(d.redis, d.keys, now),
  ]);
  const members = nodes.slice(0, MAX_MEMBERS).map((n): DashboardMember => {
    const s = n.session;
    return {
      vip: n.vip, hostname: n.hostname, originalIp: n.originalIp, tags: n.tags, online: !!s,
      ...(s ? { relayId: s.relayId, agentAddr: s.agentIp && s.agentPort ? `${s.agentIp}:${s.agentPort}` : undefined, onlineSince: Number(s.since) || undefined } : {}),
      lastSeen: n.lastSeen, created: n.created, ephemeral: n.ephemeral,
    };
  });
  return {
    at: now, version, members, membersTotal: nodes.length, relays, policy,
    tokens: tokens.map((t) => ({ id: t.id, state: t.state, usesLeft: t.usesLeft, expiresAt: t.expiresAt, tags: t.tags,
      originalCidrs: t.originalCidrs, ephemeral: t.ephemeral, createdAt: t.createdAt })),
  };
}

interface Stream {
  res: ServerResponse;
  /** Unix ms when its login ends (undefined: bearer). */
  until?: number;
  timer?: NodeJS.Timeout;
}

/** The open streams of one coordinator and the one feed subscription they share. */
class StreamHub {
  private readonly streams = new Set<Stream>();
  private unsubscribe?: () => void;
  private relayTimer?: NodeJS.Timeout;
  private keepaliveTimer?: NodeJS.Timeout;
  private snapshotTimer?: NodeJS.Timeout;
  private lastSnapshot = 0;
  /** Wait between snapshots: SNAPSHOT_GAP_MS, or four times the last build's time when longer (big registries). */
  private gap = SNAPSHOT_GAP_MS;
  private building = false;
  private again = false;

  constructor(private readonly feed: PeerFeed, private readonly snapshot: () => Promise<DashboardSnapshot>,
    private readonly relays: () => Promise<DashboardRelay[]>, private readonly log: Logger) {}

  get size(): number {
    return this.streams.size;
  }

  add(s: Stream): void {
    this.streams.add(s);
    if (this.streams.size === 1) {
      this.unsubscribe = this.feed.onEvent((e) => this.onEvent(e));
      this.relayTimer = setInterval(() => this.pushRelays(), RELAY_REFRESH_MS);
      this.keepaliveTimer = setInterval(() => { for (const x of this.streams) this.write(x, ': keepalive\n\n'); }, KEEPALIVE_MS);
      this.relayTimer.unref();
      this.keepaliveTimer.unref();
    }
  }

  remove(s: Stream): void {
    if (!this.streams.delete(s)) return;
    if (s.timer) clearTimeout(s.timer);
    if (!s.res.writableEnded) s.res.end();
    if (this.streams.size === 0) {
      this.unsubscribe?.();
      clearInterval(this.relayTimer);
      clearInterval(this.keepaliveTimer);
      clearTimeout(this.snapshotTimer);
      this.snapshotTimer = undefined;
    }
  }

  closeAll(): void {
    for (const s of [...this.streams]) this.remove(s);
  }

  send(s: Stream, event: string, data: unknown): void {
    this.write(s, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private write(s: Stream, text: string): void {
    if (s.res.writableEnded || s.res.destroyed) return this.remove(s);
    if (s.res.writableLength > MAX_STREAM_BACKLOG) {
      this.log.warn('dashboard stream dropped: its client does not read');
      s.res.destroy();
      return this.remove(s);
    }
    s.res.write(text);
  }

  private broadcast(event: string, data: unknown): void {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const s of [...this.streams]) this.write(s, text);
  }

  private onEvent(e: ClusterEvent | undefined): void {
    // `undefined`: the subscription came back; events may have been missed. Say so, re-read.
    this.broadcast('change', e ?? { type: 'resubscribed' });
    this.scheduleSnapshot();
  }

  private scheduleSnapshot(): void {
    if (this.snapshotTimer) return;
    const wait = Math.max(0, this.lastSnapshot + this.gap - Date.now());
    this.snapshotTimer = setTimeout(() => {
      this.snapshotTimer = undefined;
      void this.pushSnapshot();
    }, wait);
    this.snapshotTimer.unref();
  }

  private async pushSnapshot(): Promise<void> {
    if (this.building) {
      this.again = true;
      return;
    }
    this.building = true;
    this.lastSnapshot = Date.now();
    try {
      const snap = await this.snapshot();
      this.gap = Math.max(SNAPSHOT_GAP_MS, 4 * (Date.now() - this.lastSnapshot));
      this.broadcast('snapshot', snap);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'dashboard snapshot failed');
    } finally {
      this.building = false;
    }
    if (this.again && this.streams.size > 0) {
      this.again = false;
      this.scheduleSnapshot();
    }
  }

  private pushRelays(): void {
    this.relays().then((r) => this.broadcast('relays', { at: Date.now(), relays: r }),
      (err: Error) => this.log.warn({ err: err.message }, 'dashboard relay refresh failed'));
  }
}

const loginBody = {
  type: 'object', additionalProperties: false, required: ['token'],
  properties: { token: { type: 'string', minLength: 1, maxLength: 1024 } },
} as const;

/** Registers `/ui` and its routes on `app` (an encapsulated plugin: the cookie and form parsers stay inside it). */
export async function registerDashboard(app: FastifyInstance, d: DashboardDeps): Promise<void> {
  const now = d.now ?? Date.now;
  const keys = redisKeys(d.prefix);
  const dir = dashboardAssetDir();
  const file = (name: string) => readFileSync(path.join(dir, name));
  const pages = { dashboard: file('dashboard.html'), login: file('login.html') };
  const assets = new Map(Object.entries(ASSETS).map(([name, type]) => [name, { body: file(name), type }]));
  const snapshot = () => dashboardSnapshot({ registry: d.registry, tokens: d.tokens, redis: d.redis, keys, now });
  const hub = new StreamHub(d.feed, snapshot, () => readRelays(d.redis, keys, now()), d.log);
  app.addHook('preClose', async () => hub.closeAll());

  // A key of its own for the cookies, derived from the admin token (never the token itself).
  const cookieKey = d.adminToken ? createHmac('sha256', d.adminToken).update('isthmus dashboard session cookie v1').digest() : randomBytes(32);

  await app.register(async (ui) => {
    await ui.register(fastifyCookie, { secret: cookieKey });
    ui.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    ui.addHook('onSend', async (_req, reply, payload) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
      return payload;
    });

    const enabled = () => {
      if (!d.adminToken) throw new CoordinatorError('admin-disabled', 'this coordinator has no --admin-token', 403);
      return d.adminToken;
    };
    /** The expiry of a valid session cookie; undefined: none sent; 0: sent but invalid or expired. */
    const session = (req: FastifyRequest): number | undefined => {
      const raw = req.cookies[COOKIE];
      if (raw === undefined) return undefined;
      const u = req.unsignCookie(raw);
      if (!u.valid || u.value === null) return 0;
      const exp = Number(u.value.split('.')[0]);
      return Number.isSafeInteger(exp) && exp > now() ? exp : 0;
    };
    /** Bearer or cookie; both count against the admin limits. Returns the login's end (cookie). */
    const viewer = async (req: FastifyRequest): Promise<number | undefined> => {
      const token = enabled();
      const t = d.bearer(req);
      if (t !== undefined) {
        await d.adminAuth(req, secretsEqual(t, token));
        return undefined;
      }
      const exp = session(req);
      if (exp === undefined) throw new UnauthorizedError('not logged in: log in at /ui/login (or send Authorization: Bearer <admin token>)');
      await d.adminAuth(req, exp > 0);
      return exp;
    };

    ui.get('/ui/login', async (_req, reply) => reply.type('text/html; charset=utf-8').send(pages.login));

    ui.post<{ Body: { token: string } }>('/ui/login', { schema: { body: loginBody } }, async (req, reply) => {
      const token = enabled();
      const ok = secretsEqual(req.body.token, token);
      try {
        await d.adminAuth(req, ok);
      } catch (err) {
        if (err instanceof CoordinatorError && err.statusCode === 401) {
          return reply.code(401).type('text/html; charset=utf-8')
            .send('<!doctype html><meta charset="utf-8"><title>isthmus: login refused</title>'
              + '<p>Wrong admin token. <a href="/ui/login">Try again</a>.</p>');
        }
        throw err;
      }
      const exp = now() + DASHBOARD_SESSION_MS;
      reply.setCookie(COOKIE, `${exp}.${randomBytes(16).toString('base64url')}`, {
        signed: true, httpOnly: true, sameSite: 'strict', secure: d.tls, path: '/ui', maxAge: Math.floor(DASHBOARD_SESSION_MS / 1000),
      });
      d.log.info({ source: req.ip }, 'dashboard login');
      return reply.code(303).header('location', '/ui').send();
    });

    ui.post('/ui/logout', async (_req, reply) => {
      reply.clearCookie(COOKIE, { path: '/ui', httpOnly: true, sameSite: 'strict', secure: d.tls });
      return reply.code(303).header('location', '/ui/login').send();
    });

    const page = async (req: FastifyRequest, reply: FastifyReply) => {
      enabled();
      if (d.bearer(req) === undefined && !session(req)) {
        if (req.cookies[COOKIE] !== undefined) reply.clearCookie(COOKIE, { path: '/ui' });
        return reply.code(303).header('location', '/ui/login').send();
      }
      await viewer(req);
      return reply.type('text/html; charset=utf-8').send(pages.dashboard);
    };
    ui.get('/ui', page);
    ui.get('/ui/', page);

    ui.get<{ Params: { name: string } }>('/ui/assets/:name', async (req, reply) => {
      const a = assets.get(req.params.name);
      if (!a) return reply.code(404).send({ error: 'not-found', message: `no asset ${req.params.name}` });
      return reply.type(a.type).send(a.body);
    });

    ui.get('/ui/state', async (req) => {
      await viewer(req);
      return snapshot();
    });

    ui.get('/ui/events', async (req, reply) => {
      const until = await viewer(req);
      if (hub.size >= MAX_DASHBOARD_STREAMS) {
        return reply.code(503).header('retry-after', 30)
          .send({ error: 'too-many-streams', message: `this coordinator already serves ${MAX_DASHBOARD_STREAMS} dashboard streams` });
      }
      const first = await snapshot();
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      const s: Stream = { res, until };
      hub.add(s);
      res.on('close', () => hub.remove(s));
      // The browser reconnects after 3 s; a stream ends with its login (the reconnect then gets 401).
      res.write('retry: 3000\n\n');
      hub.send(s, 'snapshot', first);
      if (until !== undefined) {
        s.timer = setTimeout(() => {
          hub.send(s, 'logout', { reason: 'the dashboard login expired: log in again' });
          hub.remove(s);
        }, Math.max(0, until - now()));
        s.timer.unref();
      }
    });
  });
}
