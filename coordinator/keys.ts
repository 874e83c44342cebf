/**
 * Redis key names, the single source of the schema documented in docs/STATE.md. `P` is the
 * configurable prefix. The Lua scripts build the same names from the prefix (lua-scripts.ts).
 */
export function redisKeys(P: string) {
  return {
    node: (vip: string) => `${P}node:${vip}`,
    nodes: `${P}nodes`,
    ephemeral: `${P}ephemeral`,
    orig: (ip: string) => `${P}orig:${ip}`,
    key: (pub: string) => `${P}key:${pub}`,
    /** Lower-cased: hostnames are case-insensitive, so one name has one holder. */
    host: (name: string) => `${P}host:${name.toLowerCase()}`,
    session: (vip: string) => `${P}session:${vip}`,
    token: (hash: string) => `${P}token:${hash}`,
    tokenIds: `${P}token-ids`,
    sessionToken: (hash: string) => `${P}stoken:${hash}`,
    challenge: (id: string) => `${P}challenge:${id}`,
    /** hash pub → JSON {vip, hostname, removedAt}: keys an admin removed; joins refused (403 key-removed). */
    removedKeys: `${P}removed-keys`,
    ipamCidr: `${P}ipam:cidr`,
    ipamCursor: `${P}ipam:cursor`,
    quarantine: `${P}ipam:quarantine`,
    version: `${P}version`,
    changes: `${P}changes`,
    events: `${P}events`,
  } as const;
}
export type RedisKeys = ReturnType<typeof redisKeys>;

/** Event types published on `P:events` by the coordinator (relays add session-up/-down). */
export const NodeEventType = {
  up: 'node-up',
  changed: 'node-changed',
  removed: 'node-removed',
} as const;
export type NodeEventType = (typeof NodeEventType)[keyof typeof NodeEventType];

export interface NodeEvent {
  type: NodeEventType;
  vip: string;
  /** Change-feed version this event was given (`P:version`). */
  version: number;
}
