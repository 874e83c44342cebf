/**
 * Every Redis key and channel the mapper reads, in one place (docs/STATE.md is the
 * source of truth; the coordinator and relays write these). The mapper never writes.
 */

/** @default 'isthmus:' */
export const DEFAULT_PREFIX = 'isthmus:';

export interface MapperKeys {
  /** string → vip */
  orig(originalIp: string): string;
  /** hash: pub, orig, hostname, tags (JSON array), created, lastSeen (ms), ephemeral */
  node(vip: string): string;
  /** string → vip */
  host(hostname: string): string;
  /** hash with TTL: relayIp, relayPort, agentIp, agentPort, relayId, since */
  session(vip: string): string;
  /** pub/sub channel, JSON `{type, vip, ...}` */
  events: string;
}

export function mapperKeys(prefix: string = DEFAULT_PREFIX): MapperKeys {
  return {
    orig: (ip) => `${prefix}orig:${ip}`,
    node: (vip) => `${prefix}node:${vip}`,
    host: (h) => `${prefix}host:${h}`,
    session: (vip) => `${prefix}session:${vip}`,
    events: `${prefix}events`,
  };
}

/** Event types on the events channel. */
export const EventType = {
  NodeUp: 'node-up',
  NodeChanged: 'node-changed',
  NodeRemoved: 'node-removed',
  SessionUp: 'session-up',
  SessionDown: 'session-down',
} as const;
