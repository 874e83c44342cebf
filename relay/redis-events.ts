/**
 * The relay's one subscription to `P:events` (key and event names: common/redis-schema.ts).
 *
 * A subscribed ioredis client can do nothing else, so it is a connection of its own; the relay
 * needs the channel for three things (the mesh's route cache, the access policy and members'
 * tags, member removals) and has them share this one: one `SUBSCRIBE`, each message decoded
 * once and handed to the listeners of its event type.
 *
 * After a reconnect (Redis restarted, a Sentinel switch: the connection is a `duplicate()` of
 * the main client, so common/sentinel-switch.ts moves it with the others) ioredis subscribes
 * again by itself; events published meanwhile are lost, so every `onResubscribed` listener is
 * told, and re-reads what it caches. The first connection is not a resubscription.
 */
import type Redis from 'ioredis';
import { type ClusterEvent, type EventType, type Logger, DEFAULT_PREFIX, decodeEvent, redisKeys } from '../common';

export interface RelayEventsOptions {
  /** Redis key prefix. @default DEFAULT_PREFIX */
  prefix?: string;
  logger: Logger;
}

type Listener = (e: ClusterEvent) => void;

export class RelayEventSubscriber {
  private readonly channel: string;
  private sub: Redis | undefined;
  private readonly byType = new Map<EventType, Set<Listener>>();
  private readonly resubscribed = new Set<() => void>();

  constructor(private readonly redis: Redis, private readonly o: RelayEventsOptions) {
    this.channel = redisKeys(o.prefix ?? DEFAULT_PREFIX).events;
  }

  /** Call `fn` with every event of one of `types`; returns the function that stops it. */
  on(types: readonly EventType[], fn: Listener): () => void {
    for (const t of types) {
      let s = this.byType.get(t);
      if (!s) this.byType.set(t, (s = new Set()));
      s.add(fn);
    }
    return () => {
      for (const t of types) this.byType.get(t)?.delete(fn);
    };
  }

  /** Call `fn` after each reconnect of the subscription (events may have been missed). */
  onResubscribed(fn: () => void): () => void {
    this.resubscribed.add(fn);
    return () => {
      this.resubscribed.delete(fn);
    };
  }

  /**
   * Open the connection (once) and subscribe; safe to call again (by each user, or to retry
   * after a failure: the connection is kept and SUBSCRIBE is idempotent).
   */
  async start(): Promise<void> {
    if (!this.sub) {
      const sub = this.redis.duplicate();
      this.sub = sub;
      // Reachability is logged once per change on the main client (watchRedis), not per retry here.
      sub.on('error', (e: Error) => this.o.logger.debug({ err: e.message }, 'redis (relay events) error'));
      let first = true;
      sub.on('ready', () => {
        if (first) {
          first = false;
          return;
        }
        this.o.logger.info('relay events resubscribed; cached routes, policy and tags are re-read');
        for (const fn of [...this.resubscribed]) fn();
      });
      sub.on('message', (_ch: string, msg: string) => this.dispatch(msg));
    }
    await this.sub.subscribe(this.channel);
  }

  private dispatch(msg: string): void {
    const e = decodeEvent(msg);
    if (!e) return;
    const s = this.byType.get(e.type);
    if (s) for (const fn of [...s]) fn(e);
  }

  /** Close the connection; listeners stay registered but hear nothing more. */
  async stop(): Promise<void> {
    const sub = this.sub;
    this.sub = undefined;
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }
}
