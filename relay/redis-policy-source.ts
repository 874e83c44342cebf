/**
 * The relay's PolicySource on Redis (key names and events: common/redis-schema.ts):
 *
 *   - policy: GET `P:policy` (JSON text; absent = no policy), written by the coordinator.
 *   - tags: HGET `P:node:<vip>` `tags` (a JSON array, from the member's token or an admin).
 *   - events: `P:events` through the relay's one subscription (redis-events.ts):
 *     `policy-changed`, `node-up`/`node-changed` (tags may differ), `node-removed`; after a
 *     reconnect, `undefined` (events may have been missed while Redis was away, so the relay
 *     re-reads the policy and every tag it holds).
 */
import type Redis from 'ioredis';
import { type ClusterEvent, type Logger, formatAddr, parseAddr, DEFAULT_PREFIX, EventType, decodeEvent, redisKeys, type RedisKeys } from '../common';
import type { PolicySource, PolicySourceEvent } from './policy-source';
import { RelayEventSubscriber } from './redis-events';

export interface RedisPolicySourceOptions {
  /** Redis key prefix. @default DEFAULT_PREFIX */
  prefix?: string;
  logger: Logger;
  /** The relay's shared `P:events` subscription; without it the source opens its own. */
  events?: RelayEventSubscriber;
}

/** Pure: the PolicySourceEvent of a `P:events` message, else undefined (session events, junk). */
export function policySourceEvent(message: string): PolicySourceEvent | undefined {
  const e = decodeEvent(message);
  return e ? policySourceEventOf(e) : undefined;
}

/** The event types a PolicySource follows. */
const POLICY_EVENT_TYPES = [EventType.PolicyChanged, EventType.NodeUp, EventType.NodeChanged, EventType.NodeRemoved] as const;

function policySourceEventOf(e: ClusterEvent): PolicySourceEvent | undefined {
  if (e.type === EventType.PolicyChanged) return { type: EventType.PolicyChanged };
  if (e.type !== EventType.NodeUp && e.type !== EventType.NodeChanged && e.type !== EventType.NodeRemoved) return undefined;
  let vip: number;
  try {
    vip = parseAddr(e.vip);
  } catch {
    return undefined;
  }
  return e.type === EventType.NodeRemoved ? { type: EventType.NodeRemoved, vip } : { type: EventType.NodeChanged, vip };
}

/** Pure: a node record's `tags` field as stored → the tag list; malformed → [] (untagged). */
export function parseStoredTags(field: string | null): readonly string[] | undefined {
  if (field === null) return undefined;
  try {
    const v: unknown = JSON.parse(field);
    if (Array.isArray(v) && v.every((t) => typeof t === 'string')) return v as string[];
  } catch {
    // fall through
  }
  return [];
}

export class RedisPolicySource implements PolicySource {
  private readonly keys: RedisKeys;
  private readonly listeners: ((e: PolicySourceEvent | undefined) => void)[] = [];
  /** The subscription this source opened itself (no `events` option), closed by stop(). */
  private ownEvents: RelayEventSubscriber | undefined;
  private unlisten: (() => void)[] = [];

  constructor(private readonly redis: Redis, private readonly o: RedisPolicySourceOptions) {
    this.keys = redisKeys(o.prefix ?? DEFAULT_PREFIX);
  }

  onEvent(listener: (e: PolicySourceEvent | undefined) => void): void {
    this.listeners.push(listener);
  }

  /** Follow `P:events` (the shared subscription, or one of its own); safe to retry. */
  async start(): Promise<void> {
    let events = this.o.events;
    if (!events) {
      this.ownEvents ??= new RelayEventSubscriber(this.redis, { prefix: this.o.prefix, logger: this.o.logger });
      events = this.ownEvents;
    }
    if (this.unlisten.length === 0) {
      this.unlisten.push(
        events.on(POLICY_EVENT_TYPES, (ev) => {
          const e = policySourceEventOf(ev);
          if (e) this.emit(e);
        }),
        events.onResubscribed(() => this.emit(undefined)),
      );
    }
    await events.start();
  }

  async stop(): Promise<void> {
    for (const off of this.unlisten) off();
    this.unlisten = [];
    const own = this.ownEvents;
    this.ownEvents = undefined;
    await own?.stop();
  }

  private emit(e: PolicySourceEvent | undefined): void {
    for (const l of this.listeners) l(e);
  }

  loadPolicy(): Promise<string | null> {
    return this.redis.get(this.keys.policy);
  }

  async lookupTags(vip: number): Promise<readonly string[] | undefined> {
    const field = await this.redis.hget(this.keys.node(formatAddr(vip)), 'tags');
    if (field !== null) return parseStoredTags(field);
    // No tags field: a member record without it is untagged; no record is no member.
    return (await this.redis.exists(this.keys.node(formatAddr(vip)))) === 1 ? [] : undefined;
  }
}
