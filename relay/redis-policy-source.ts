/**
 * The relay's PolicySource on Redis (key names and events: common/redis-schema.ts):
 *
 *   - policy: GET `P:policy` (JSON text; absent = no policy), written by the coordinator.
 *   - tags: HGET `P:node:<vip>` `tags` (a JSON array, from the member's token or an admin).
 *   - events: a dedicated subscription to `P:events`: `policy-changed`, `node-up`/`node-changed`
 *     (tags may differ), `node-removed`; after a reconnect, `undefined` (events may have been
 *     missed while Redis was away, so the relay re-reads the policy and every tag it holds).
 */
import type Redis from 'ioredis';
import { type Logger, formatAddr, parseAddr, DEFAULT_PREFIX, EventType, decodeEvent, redisKeys, type RedisKeys } from '../common';
import type { PolicySource, PolicySourceEvent } from './policy-source';

export interface RedisPolicySourceOptions {
  /** Redis key prefix. @default DEFAULT_PREFIX */
  prefix?: string;
  logger: Logger;
}

/** Pure: the PolicySourceEvent of a `P:events` message, else undefined (session events, junk). */
export function policySourceEvent(message: string): PolicySourceEvent | undefined {
  const e = decodeEvent(message);
  if (!e) return undefined;
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
  private sub: Redis | undefined;

  constructor(private readonly redis: Redis, private readonly o: RedisPolicySourceOptions) {
    this.keys = redisKeys(o.prefix ?? DEFAULT_PREFIX);
  }

  onEvent(listener: (e: PolicySourceEvent | undefined) => void): void {
    this.listeners.push(listener);
  }

  /** Subscribe to `P:events` on a dedicated connection. */
  async start(): Promise<void> {
    const sub = this.redis.duplicate();
    this.sub = sub;
    // Reachability is logged once per change on the main client (watchRedis), not per retry here.
    sub.on('error', (e: Error) => this.o.logger.debug({ err: e.message }, 'redis (policy events) error'));
    let first = true;
    sub.on('ready', () => {
      if (first) {
        first = false;
        return;
      }
      this.o.logger.info('policy events resubscribed; re-reading the policy and tags');
      this.emit(undefined);
    });
    sub.on('message', (_ch: string, msg: string) => {
      const e = policySourceEvent(msg);
      if (e) this.emit(e);
    });
    await sub.subscribe(this.keys.events);
  }

  async stop(): Promise<void> {
    const sub = this.sub;
    this.sub = undefined;
    if (sub) await sub.quit().catch(() => sub.disconnect());
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
