/**
 * Follows the coordinator's member events on `P:events` (common/redis-schema.ts): when a member
 * is removed (`node-removed`, by an admin, `--leave` or the ephemeral sweep), the relay forgets
 * its cached key → vip answer and unbinds its session at once, instead of forwarding for it
 * until the session idles out.
 */
import type Redis from 'ioredis';
import { type Logger, parseAddr, EventType, decodeEvent, redisKeys } from '../common';

/** Pure: the vip of a `node-removed` event message, else undefined. */
export function removedVip(message: string): number | undefined {
  const e = decodeEvent(message);
  if (e?.type !== EventType.NodeRemoved) return undefined;
  try {
    return parseAddr(e.vip);
  } catch {
    return undefined;
  }
}

/** Subscribe on a dedicated connection (a subscribed ioredis client can do nothing else). */
export async function followMemberRemovals(redis: Redis, prefix: string, onRemoved: (vip: number) => void, log: Logger): Promise<() => Promise<void>> {
  const sub = redis.duplicate();
  // Reachability is logged once per change on the main client (watchRedis), not per retry here.
  sub.on('error', (e: Error) => log.debug({ err: e.message }, 'redis events connection error'));
  sub.on('message', (_channel: string, message: string) => {
    const vip = removedVip(message);
    if (vip !== undefined) onRemoved(vip);
  });
  await sub.subscribe(redisKeys(prefix).events);
  return async () => {
    await sub.quit().catch(() => sub.disconnect());
  };
}
