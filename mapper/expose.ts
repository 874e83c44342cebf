/**
 * Port exposure (the seed's frp-style 4-tuple): a proxy user asks this gateway to expose a
 * member's TCP port; the gateway listens on a random free port of its range and forwards every
 * connection to (the member's virtual IP, port) through the local overlay, with the proxy
 * fronts' dialer. The 4-tuple (gatewayIp, gatewayPort, originalIp, port) is recorded in Redis
 * (expose-store.ts), so any gateway answers where a target is exposed.
 *
 * Life of an exposure:
 *   create   policy (user's and gateway's tags: GatewayAccess, gateway.ts, the proxies' check),
 *            per-user limit, a free port,
 *            then the record (one per target across gateways; an existing one is answered instead)
 *   use      each connection re-checks the member and the policy, then joins the two sockets
 *   sweep    every `sweepMs`: an exposure with open connections or a new one since the last
 *            sweep is "used" (expiresAt = now + idleMs, written to Redis); one unused until
 *            expiresAt closes; the record refresh tells which records someone else deleted
 *   delete   by its creator (any gateway): record gone, listener closed, connections closed
 *   restart  the records of the previous run (dead listeners) are deleted at start
 */
import net from 'node:net';
import os from 'node:os';
import { randomInt } from 'node:crypto';
import { contains, tryParseAddr, type Prefix } from '../common';
import { count, type ProxyContext } from './context';
import { resolveTarget } from './target';
import type { MapEntry } from './directory';
import type { ProxyUser } from './proxy-users';
import { ExposeStore, targetOf, type ExposureRecord } from './expose-store';
import type { GatewayAccess } from './gateway';
import { joinSockets } from './tunnel';

export interface PortRange {
  first: number;
  last: number;
}

export interface ExposeOptions {
  /** ports to allocate from, e.g. 20000-20999 */
  range: PortRange;
  /** address the exposed ports listen on */
  listenHost: string;
  /** address answered as gatewayIp @default listenHost */
  advertiseIp?: string;
  /** an exposure unused (no connection, no bytes) this long closes @default 600000 */
  idleMs?: number;
  /** exposures one user may hold on this gateway @default 16 */
  maxPerUser?: number;
  /** @default 1000 */
  sweepMs?: number;
}

export const DEFAULT_EXPOSE_OPTIONS = { idleMs: 600_000, maxPerUser: 16, sweepMs: 1000 } as const;

/** A refusal with the HTTP status and error code the API answers. */
export class ExposeRefusedError extends Error {
  override name = 'ExposeRefusedError';
  readonly code = 'ERR_EXPOSE_REFUSED';
  constructor(readonly status: number, readonly error: string, readonly reason: string) {
    super(reason);
  }
}

/** Parses `20000-20999` (or one port); throws with the reason. */
export function parsePortRange(text: string): PortRange {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5}))?\s*$/.exec(text);
  if (!m) throw new Error(`${JSON.stringify(text)}: want FIRST-LAST, e.g. 20000-20999`);
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  if (first < 1 || last > 65535) throw new Error(`${text}: ports are 1-65535`);
  if (first > last) throw new Error(`${text}: the first port is above the last`);
  return { first, last };
}

interface Conn {
  client: net.Socket;
  up?: net.Socket;
}

interface Exposure {
  rec: ExposureRecord;
  /** the creating user as verified at creation (its tags are checked again per connection) */
  user: ProxyUser;
  server: net.Server;
  conns: Set<Conn>;
  /** a connection opened since the last sweep */
  used: boolean;
  /** expiresAt changed since the last refresh */
  dirty: boolean;
}

/** What the API answers for an exposure. */
export interface ExposureView {
  gatewayIp: string;
  gatewayPort: number;
  originalIp: string;
  port: number;
  expiresAt: number;
  gatewayId: string;
}

export function viewOf(r: ExposureRecord): ExposureView {
  return { gatewayIp: r.gatewayIp, gatewayPort: r.gatewayPort, originalIp: r.originalIp, port: r.port, expiresAt: r.expiresAt, gatewayId: r.gatewayId };
}

function redisDown(err: unknown): ExposeRefusedError {
  return new ExposeRefusedError(503, 'unavailable', `Redis unavailable: ${(err as Error).message}`);
}

/** The first local IPv4 address inside the overlay: this host's virtual IP (on the agent's TUN). */
export function localOverlayAddress(overlay: Prefix): string | undefined {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) {
      const n = a.family === 'IPv4' ? tryParseAddr(a.address) : undefined;
      if (n !== undefined && contains(overlay, n)) return a.address;
    }
  }
  return undefined;
}

export class ExposureManager {
  private readonly byPort = new Map<number, Exposure>();
  private readonly byTarget = new Map<string, Exposure>();
  /** user → creations in flight */
  private readonly pending = new Map<string, number>();
  private readonly idleMs: number;
  private readonly maxPerUser: number;
  private readonly sweepMs: number;
  private timer: NodeJS.Timeout | undefined;
  private gatewayVip: string | undefined;
  private cleanup: Promise<void> | undefined;
  private sweeping = false;
  private stopped = false;

  constructor(
    private readonly store: ExposeStore,
    private readonly ctx: ProxyContext,
    /** null: this mapper only answers GET / DELETE (no --expose-range) */
    private readonly opts: ExposeOptions | null,
    /** the policy check and this gateway's identity, shared with the proxies (gateway.ts) */
    private readonly access: GatewayAccess,
  ) {
    this.idleMs = opts?.idleMs ?? DEFAULT_EXPOSE_OPTIONS.idleMs;
    this.maxPerUser = opts?.maxPerUser ?? DEFAULT_EXPOSE_OPTIONS.maxPerUser;
    this.sweepMs = opts?.sweepMs ?? DEFAULT_EXPOSE_OPTIONS.sweepMs;
  }

  get enabled(): boolean {
    return this.opts !== null;
  }

  /** Open exposures on this gateway. */
  get size(): number {
    return this.byPort.size;
  }

  /** Starts the sweep and, if this gateway knows who it is, removes its records from a previous run. */
  async start(): Promise<void> {
    if (!this.opts) return;
    this.timer = setInterval(() => void this.sweep(), this.sweepMs);
    this.timer.unref();
    // Not a member yet (agent not up) or Redis down: the first POST tries again.
    this.identity().catch((err: Error) => this.ctx.log.info({ err: err.message }, 'exposure: gateway identity not known yet'));
  }

  /** This gateway's own tags (the mapper's static --socks-user acts with them). */
  async gatewayTags(): Promise<string[]> {
    return (await this.identity()).entry.tags;
  }

  /** This gateway's vip and member record (GatewayAccess); the first time, also deletes the records of its previous run. */
  private async identity(): Promise<{ vip: string; entry: MapEntry }> {
    const id = await this.access.identity();
    if (!id.ok) {
      throw id.why === 'unavailable' ? new ExposeRefusedError(503, 'unavailable', id.reason) : new ExposeRefusedError(503, 'gateway-not-member', id.reason);
    }
    const vip = id.vip;
    if (!this.cleanup && this.opts) {
      // Once, before this run's first record: the previous run's listeners died with it.
      this.cleanup = this.store.removeGateway(vip).then((n) => {
        if (n > 0) this.ctx.log.info({ records: n }, 'exposure: removed the records of the previous run');
      });
      this.cleanup.catch(() => { this.cleanup = undefined; });
    }
    try { await this.cleanup; } catch (err) { throw redisDown(err); } // (a mapper that does not expose writes nothing)
    this.gatewayVip = vip;
    return { vip, entry: id.entry };
  }

  /** A member's entry by original IP, or the refusal the API answers. */
  private async member(originalIp: string, port: number) {
    const t = await resolveTarget(originalIp, port, this.ctx.policy);
    if (t.kind === 'refuse') {
      const status = { unknown: 404, 'not-allowed': 403, unsupported: 400, invalid: 400, unavailable: 503, 'bad-mapping': 502, policy: 403 }[t.why];
      throw new ExposeRefusedError(status, t.why === 'unknown' ? 'unknown-original-ip' : t.why, t.reason);
    }
    if (t.via !== 'original' || !t.entry) throw new ExposeRefusedError(404, 'unknown-original-ip', `no member has original IP ${originalIp}`);
    return t.entry;
  }

  /** The shared policy check (gateway.ts); `self` null: the user alone (GET, about an exposure on any gateway). */
  private async judge(user: ProxyUser, self: MapEntry | null, target: MapEntry, port: number): Promise<void> {
    const r = await this.access.judge(user, self, target, port);
    if (!r) return;
    if (r.why === 'unavailable') throw new ExposeRefusedError(503, 'unavailable', r.reason);
    throw new ExposeRefusedError(403, 'policy-denied', r.reason);
  }

  /** POST: exposes (originalIp, port) for `user`. `created` false: the target was exposed already (possibly elsewhere). */
  async create(user: ProxyUser, originalIp: string, port: number): Promise<{ created: boolean; exposure: ExposureView }> {
    try {
      return await this.createInner(user, originalIp, port);
    } catch (err) {
      count(this.ctx, `expose.refused.${err instanceof ExposeRefusedError ? err.error : 'error'}`);
      throw err;
    }
  }

  private async createInner(user: ProxyUser, originalIp: string, port: number): Promise<{ created: boolean; exposure: ExposureView }> {
    const o = this.opts;
    if (!o || this.stopped) throw new ExposeRefusedError(404, 'expose-disabled', 'port exposure is not enabled on this mapper (--expose-range)');
    const entry = await this.member(originalIp, port);
    const self = await this.identity();
    await this.judge(user, self.entry, entry, port);
    const target = targetOf(originalIp, port);
    const local = this.byTarget.get(target);
    if (local) return { created: false, exposure: viewOf(local.rec) };
    // Counting the user's creations still in flight too, so parallel POSTs cannot pass the limit.
    let mine = this.pending.get(user.name) ?? 0;
    for (const x of this.byPort.values()) if (x.rec.user === user.name) mine++;
    if (mine >= this.maxPerUser) {
      throw new ExposeRefusedError(429, 'too-many-exposures', `user ${user.name} holds ${mine} exposures on this gateway, the most allowed (--expose-max-per-user)`);
    }
    this.pending.set(user.name, (this.pending.get(user.name) ?? 0) + 1);
    try {
      return await this.allocate(o, user, self.vip, originalIp, port);
    } finally {
      const n = (this.pending.get(user.name) ?? 1) - 1;
      if (n > 0) this.pending.set(user.name, n); else this.pending.delete(user.name);
    }
  }

  /** A port, then the record (or the existing one's answer, if another creation won the target). */
  private async allocate(o: ExposeOptions, user: ProxyUser, gatewayId: string, originalIp: string, port: number): Promise<{ created: boolean; exposure: ExposureView }> {
    const target = targetOf(originalIp, port);
    const { server, gatewayPort } = await this.listen(o);
    const now = Date.now();
    const rec: ExposureRecord = {
      gatewayId, gatewayIp: o.advertiseIp ?? o.listenHost, gatewayPort, originalIp, port, user: user.name,
      createdAt: now, expiresAt: now + this.idleMs,
    };
    let existing: ExposureRecord | null;
    try {
      existing = await this.store.create(rec);
    } catch (err) {
      server.close();
      throw redisDown(err);
    }
    if (existing || this.stopped || this.byTarget.has(target)) {
      server.close();
      if (!existing && this.stopped) await this.store.remove(originalIp, port, '', gatewayId).catch(() => undefined);
      const other = existing ?? this.byTarget.get(target)?.rec;
      if (other) return { created: false, exposure: viewOf(other) };
      throw new ExposeRefusedError(503, 'stopping', 'this gateway is shutting down');
    }
    const x: Exposure = { rec, user: { name: user.name, tags: [...user.tags] }, server, conns: new Set(), used: false, dirty: false };
    server.on('connection', (s: net.Socket) => this.onConnection(x, s));
    this.byPort.set(gatewayPort, x);
    this.byTarget.set(target, x);
    count(this.ctx, 'expose.created');
    this.ctx.log.info({ gatewayPort, originalIp, port, user: user.name }, 'exposure created');
    return { created: true, exposure: viewOf(rec) };
  }

  /** Listens on a random free port of the range (tries at most 64 ports). */
  private async listen(o: ExposeOptions): Promise<{ server: net.Server; gatewayPort: number }> {
    const size = o.range.last - o.range.first + 1;
    const free: number[] = [];
    for (let p = o.range.first; p <= o.range.last; p++) if (!this.byPort.has(p)) free.push(p);
    if (free.length === 0) throw new ExposeRefusedError(503, 'expose-range-exhausted', `all ${size} ports of ${o.range.first}-${o.range.last} are exposed on this gateway`);
    for (let tries = 0; tries < 64 && free.length > 0; tries++) {
      const i = randomInt(free.length);
      const p = free[i]!;
      free[i] = free[free.length - 1]!;
      free.pop();
      const server = net.createServer({ allowHalfOpen: true });
      const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        server.once('error', resolve);
        server.listen(p, o.listenHost, () => { server.removeListener('error', resolve); resolve(null); });
      });
      if (!err) {
        server.on('error', (e) => this.ctx.log.warn({ err: e.message, gatewayPort: p }, 'exposed port listener error'));
        return { server, gatewayPort: p };
      }
      if (err.code !== 'EADDRINUSE') throw new ExposeRefusedError(503, 'listen-failed', `cannot listen on ${o.listenHost}:${p}: ${err.code ?? err.message}`);
    }
    throw new ExposeRefusedError(503, 'expose-range-exhausted', `no free port in ${o.range.first}-${o.range.last} (the free ones tried are in use by other programs)`);
  }

  private onConnection(x: Exposure, client: net.Socket): void {
    client.on('error', () => client.destroy());
    if (!this.byPort.has(x.rec.gatewayPort)) { client.destroy(); return; }
    x.used = true;
    const c: Conn = { client };
    x.conns.add(c);
    client.once('close', () => { x.conns.delete(c); c.up?.destroy(); });
    client.pause();
    void (async () => {
      // The member and the policy again, per connection: either may have changed since the POST.
      const entry = await this.member(x.rec.originalIp, x.rec.port);
      const self = await this.identity();
      await this.judge(x.user, self.entry, entry, x.rec.port);
      const up = await this.ctx.dial(entry.virtualIp, x.rec.port, this.ctx.timeouts.connectMs);
      if (client.destroyed || !this.byPort.has(x.rec.gatewayPort)) { up.destroy(); return; }
      c.up = up;
      count(this.ctx, 'expose.conn.ok');
      joinSockets(client, up, this.ctx.timeouts.idleMs);
    })().catch((err: unknown) => {
      count(this.ctx, `expose.conn.${err instanceof ExposeRefusedError ? err.error : 'dial-failed'}`);
      this.ctx.log.debug({ err: (err as Error).message, gatewayPort: x.rec.gatewayPort }, 'exposed port connection refused');
      client.destroy();
    });
  }

  /** Closes an exposure here (listener and connections); its record is the caller's business. */
  private close(x: Exposure, why: string): void {
    if (this.byPort.get(x.rec.gatewayPort) !== x) return;
    this.byPort.delete(x.rec.gatewayPort);
    this.byTarget.delete(targetOf(x.rec.originalIp, x.rec.port));
    x.server.close();
    for (const c of x.conns) { c.client.destroy(); c.up?.destroy(); }
    x.conns.clear();
    count(this.ctx, `expose.closed.${why}`);
    this.ctx.log.info({ gatewayPort: x.rec.gatewayPort, originalIp: x.rec.originalIp, port: x.rec.port, why }, 'exposure closed');
  }

  /** GET: where is (originalIp, port) exposed? Any gateway answers, from Redis; only to a user the policy lets reach it. */
  async get(user: ProxyUser, originalIp: string, port: number): Promise<ExposureView> {
    const entry = await this.member(originalIp, port);
    let rec;
    try { rec = await this.store.get(originalIp, port); } catch (err) { throw redisDown(err); }
    if (!rec) throw new ExposeRefusedError(404, 'not-exposed', `${originalIp}:${port} is not exposed on any gateway`);
    // The exposed port needs no credentials, so knowing it is access: the user's tags must reach the target.
    await this.judge(user, null, entry, port);
    return viewOf(rec);
  }

  /** DELETE by target, on any gateway: only the user who created it. */
  async deleteTarget(user: ProxyUser, originalIp: string, port: number): Promise<ExposureView> {
    let rec;
    try { rec = await this.store.get(originalIp, port); } catch (err) { throw redisDown(err); }
    const local = this.byTarget.get(targetOf(originalIp, port));
    if (!rec && !local) throw new ExposeRefusedError(404, 'not-exposed', `${originalIp}:${port} is not exposed on any gateway`);
    return this.remove(user, rec ?? local!.rec, local);
  }

  /** DELETE by this gateway's port: only the user who created it. */
  async deletePort(user: ProxyUser, gatewayPort: number): Promise<ExposureView> {
    const local = this.byPort.get(gatewayPort);
    if (!local) throw new ExposeRefusedError(404, 'not-exposed', `nothing is exposed on port ${gatewayPort} of this gateway`);
    return this.remove(user, local.rec, local);
  }

  private async remove(user: ProxyUser, rec: ExposureRecord, local: Exposure | undefined): Promise<ExposureView> {
    const owner = local?.rec.user ?? rec.user;
    if (owner !== user.name) throw new ExposeRefusedError(403, 'not-owner', `${rec.originalIp}:${rec.port} was exposed by another user; only they may delete it`);
    let r;
    try { r = await this.store.remove(rec.originalIp, rec.port, user.name); } catch (err) { throw redisDown(err); }
    if (r === 'not-owner') throw new ExposeRefusedError(403, 'not-owner', `${rec.originalIp}:${rec.port} was exposed by another user; only they may delete it`);
    if (local) this.close(local, 'deleted');
    count(this.ctx, 'expose.deleted');
    return viewOf(local?.rec ?? rec);
  }

  /** One sweep: idle expiry, then the record refresh (which also finds records deleted elsewhere). */
  async sweep(now = Date.now()): Promise<void> {
    if (this.sweeping || !this.gatewayVip) return;
    this.sweeping = true;
    try {
      const live: Exposure[] = [];
      for (const x of [...this.byPort.values()]) {
        if (x.used || x.conns.size > 0) {
          x.used = false;
          x.rec.expiresAt = now + this.idleMs;
          x.dirty = true;
        }
        if (now >= x.rec.expiresAt) {
          this.close(x, 'idle');
          await this.store.remove(x.rec.originalIp, x.rec.port, '', x.rec.gatewayId).catch(() => undefined);
          continue;
        }
        live.push(x);
      }
      if (live.length === 0) return;
      const ours = await this.store.refresh(this.gatewayVip, live.map((x) => ({ target: targetOf(x.rec.originalIp, x.rec.port), expiresAt: x.dirty ? x.rec.expiresAt : undefined })));
      live.forEach((x, i) => {
        x.dirty = false;
        if (!ours[i]) this.close(x, 'record-gone');
      });
    } catch (err) {
      this.ctx.log.debug({ err: (err as Error).message }, 'exposure refresh failed (Redis); retrying next sweep');
    } finally {
      this.sweeping = false;
    }
  }

  /** Closes every exposure and deletes its records (best effort: they expire anyway). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const all = [...this.byPort.values()];
    for (const x of all) this.close(x, 'stopped');
    await Promise.all(all.map((x) => this.store.remove(x.rec.originalIp, x.rec.port, '', x.rec.gatewayId).catch(() => undefined)));
  }
}
