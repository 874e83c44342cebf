/**
 * Follows the coordinator's member events on `P:events` (common/redis-schema.ts): when a member
 * is removed (`node-removed`, by an admin, `--leave` or the ephemeral sweep), the relay forgets
 * its cached key → vip answer and unbinds its session at once, instead of forwarding for it
 * until the session idles out.
 */
import { parseAddr, EventType, decodeEvent } from '../common';
import type { RelayEventSubscriber } from './redis-events';

/** Pure: the vip of a `node-removed` event message, else undefined. */
export function removedVip(message: string): number | undefined {
  const e = decodeEvent(message);
  return e?.type === EventType.NodeRemoved ? vipOf(e.vip) : undefined;
}

function vipOf(text: string): number | undefined {
  try {
    return parseAddr(text);
  } catch {
    return undefined;
  }
}

/**
 * Follow `node-removed` on the relay's shared subscription (started here if it was not yet);
 * returns the function that stops following (the subscription is its owner's to close).
 */
export async function followMemberRemovals(events: RelayEventSubscriber, onRemoved: (vip: number) => void): Promise<() => void> {
  const off = events.on([EventType.NodeRemoved], (e) => {
    const vip = e.type === EventType.NodeRemoved ? vipOf(e.vip) : undefined;
    if (vip !== undefined) onRemoved(vip);
  });
  try {
    await events.start();
  } catch (err) {
    off();
    throw err;
  }
  return off;
}
