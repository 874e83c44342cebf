/**
 * The mesh's Redis side (key names and events: common/redis-schema.ts):
 *
 *   - `P:relay:<id>` hash {meshIp, meshPort, listenIp, listenPort, since}, re-written every
 *     `heartbeatMs` with TTL `ttlMs`: a relay that dies drops out of the registry by itself.
 *   - route lookups: `P:session:<vip>`.relayId, then `P:relay:<id>` → mesh address. When that
 *     key is missing but the relay's address is known from before (it expired while Redis was
 *     unreachable or failing over, and the relay has not re-registered yet), the known address
 *     answers: the session record still names the relay.
 *   - `P:events` (the relay's one subscription, redis-events.ts): session-up/down go to the mesh,
 *     which invalidates its route cache at once; after a reconnect the mesh re-checks every
 *     route (events may have been missed while Redis was away).
 *   - `P:mesh-key`: the shared mesh secret when no --mesh-key file is given. Created once with
 *     SET NX by the first relay; whoever can read Redis is already trusted with the cluster.
 */
import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { type Logger, DEFAULT_PREFIX, EventType, redisKeys, type RedisKeys, type SessionEvent, formatAddr, parseAddr } from '../common';
import type { MeshHome, MeshRouteSource, MeshSessionEvent } from './mesh';
import { RelayEventSubscriber } from './redis-events';

export interface MeshRegistryOptions {
  relayId: string;
  meshIp: string;
  meshPort: number;
  listenIp: string;
  listenPort: number;
  /** Redis key prefix. @default DEFAULT_PREFIX */
  prefix?: string;
  /** @default 1000 */
  heartbeatMs?: number;
  /** @default 3 × heartbeatMs */
  ttlMs?: number;
  logger: Logger;
  /** The relay's shared `P:events` subscription; without it the registry opens its own. */
  events?: RelayEventSubscriber;
}

export class RedisMeshRegistry implements MeshRouteSource {
  private readonly keys: RedisKeys;
  private readonly heartbeatMs: number;
  private readonly ttlMs: number;
  /** The subscription this registry opened itself (no `events` option), closed by stop(). */
  private ownEvents: RelayEventSubscriber | undefined;
  private unlisten: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private onReady: (() => void) | undefined;
  private readonly listeners: ((e: MeshSessionEvent | undefined) => void)[] = [];
  /** Mesh address last seen per relay id (lookups and events); bounded, a cluster has few relays. */
  private readonly lastKnown = new Map<string, { ip: string; port: string }>();

  constructor(private readonly redis: Redis, private readonly o: MeshRegistryOptions) {
    this.keys = redisKeys(o.prefix ?? DEFAULT_PREFIX);
    this.heartbeatMs = o.heartbeatMs ?? 1000;
    this.ttlMs = o.ttlMs ?? 3 * this.heartbeatMs;
  }

  onEvent(listener: (e: MeshSessionEvent | undefined) => void): void {
    this.listeners.push(listener);
  }

  /** The shared mesh secret from `P:mesh-key`, created if absent. */
  async loadSharedKey(): Promise<Uint8Array> {
    const k = this.keys.meshKey;
    await this.redis.set(k, randomBytes(32).toString('base64'), 'NX');
    const v = await this.redis.get(k);
    if (!v) throw new Error(`${k} vanished`);
    return Buffer.from(v, 'base64');
  }

  async start(): Promise<void> {
    let events = this.o.events;
    if (!events) {
      this.ownEvents ??= new RelayEventSubscriber(this.redis, { prefix: this.o.prefix, logger: this.o.logger });
      events = this.ownEvents;
    }
    if (this.unlisten.length === 0) {
      this.unlisten.push(
        events.on([EventType.SessionUp, EventType.SessionDown], (e) => this.onSessionEvent(e as SessionEvent)),
        events.onResubscribed(() => this.emit(undefined)),
      );
    }
    await events.start();
    await this.heartbeat();
    // Logged once per failure streak (Redis down or failing over), not once per beat.
    let failing = false;
    const beat = () => {
      this.heartbeat().then(() => {
        if (failing) this.o.logger.info('relay heartbeat restored');
        failing = false;
      }, (e: Error) => {
        if (!failing) this.o.logger.warn({ err: e.message }, 'relay heartbeat failed');
        failing = true;
      });
    };
    this.timer = setInterval(beat, this.heartbeatMs);
    this.timer.unref();
    // After a reconnect (a restart, a Sentinel failover) our key may have expired meanwhile:
    // re-register at once, so peers' route lookups find this relay again without waiting a beat.
    this.onReady = beat;
    this.redis.on('ready', beat);
  }

  private heartbeat(): Promise<unknown> {
    const k = this.keys.relay(this.o.relayId);
    return this.redis.multi()
      .hset(k, {
        meshIp: this.o.meshIp, meshPort: String(this.o.meshPort), listenIp: this.o.listenIp, listenPort: String(this.o.listenPort),
      })
      .hsetnx(k, 'since', String(Date.now()))
      .pexpire(k, this.ttlMs)
      .exec();
  }

  private remember(relayId: string, ip: string, port: string): void {
    if (this.lastKnown.size >= 1024 && !this.lastKnown.has(relayId)) this.lastKnown.clear();
    this.lastKnown.set(relayId, { ip, port });
  }

  private onSessionEvent(e: SessionEvent): void {
    let vip: number;
    try {
      vip = parseAddr(e.vip);
    } catch {
      return;
    }
    let mesh: { addr: number; port: number } | undefined;
    if (e.meshIp !== undefined && e.meshPort !== undefined) {
      try {
        mesh = { addr: parseAddr(e.meshIp), port: e.meshPort };
        this.remember(e.relayId, e.meshIp, String(e.meshPort));
      } catch {
        mesh = undefined;
      }
    }
    this.emit({ type: e.type, vip, relayId: e.relayId, mesh });
  }

  private emit(e: MeshSessionEvent | undefined): void {
    for (const l of this.listeners) l(e);
  }

  async lookupHome(vip: number, selfId: string): Promise<MeshHome | undefined> {
    const relayId = await this.redis.hget(this.keys.session(formatAddr(vip)), 'relayId');
    if (!relayId || relayId === selfId) return undefined;
    let [ip, port] = await this.redis.hmget(this.keys.relay(relayId), 'meshIp', 'meshPort');
    if (ip && port) this.remember(relayId, ip, port);
    else ({ ip, port } = this.lastKnown.get(relayId) ?? { ip: null, port: null });
    if (!ip || !port) return undefined;
    try {
      return { relayId, addr: parseAddr(ip), port: Number(port) };
    } catch {
      return undefined;
    }
  }

  /** Fields the session recorder adds to its events so peers learn this relay's mesh address. */
  eventFields(): Pick<SessionEvent, 'meshIp' | 'meshPort'> {
    return { meshIp: this.o.meshIp, meshPort: this.o.meshPort };
  }

  /** Stop the heartbeat and leave the registry (the key would expire anyway). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.onReady) this.redis.off('ready', this.onReady);
    this.onReady = undefined;
    for (const off of this.unlisten) off();
    this.unlisten = [];
    this.ownEvents?.stop().catch(() => undefined);
    this.ownEvents = undefined;
    await this.redis.del(this.keys.relay(this.o.relayId)).catch(() => undefined);
  }
}
