/**
 * The Redis schema: every key and channel name, the event types published on `P:events`, and
 * their JSON codec. This is a wire format between our own processes (coordinator, relays,
 * mapper), so it has exactly one owner: this module. docs/STATE.md describes the same table in
 * prose, and test/unit/common/redis-schema.test.ts fails when the two disagree.
 *
 * Leaf module: imports nothing.
 *
 * Owners in the notes below: C coordinator, R relay, M mapper (reads only). `P` is the
 * configurable prefix (`DEFAULT_PREFIX`).
 */

/** The Redis key prefix every isthmus process uses unless configured otherwise. */
export const DEFAULT_PREFIX = 'isthmus:';

/**
 * Every key and channel, as its name after the prefix. A trailing `<param>` is the one variable
 * part: `redisKeys(P).node(vip)` builds `P` + `node:` + vip. Names without a parameter are
 * plain strings in `redisKeys(P)`. Each doc comment reads `type · written by · read by · TTL —
 * meaning`, the columns of docs/STATE.md (a test compares them).
 */
export const KEY_PATTERNS = {
  /** hash · written by C · read by C, R, M · TTL none — `pub` (base64 X25519), `orig`, `hostname`,
   *  `tags` (JSON array), `granted` (JSON array), `ephemeral` (`1`/`0`), `created`, `restored`, `lastSeen` (ms). */
  node: 'node:<vip>',
  /** set · written by C · read by C, M · TTL none — all member vips. */
  nodes: 'nodes',
  /** set · written by C · read by C · TTL none — vips of ephemeral members (swept). */
  ephemeral: 'ephemeral',
  /** string · written by C · read by C, M · TTL none — → vip. */
  orig: 'orig:<originalIp>',
  /** string · written by C · read by C, R · TTL none — → vip (the same key re-joining keeps its vip). */
  key: 'key:<pubBase64>',
  /** string · written by C · read by C, M · TTL none — → vip (SOCKS5 domain names); the name is
   *  lower-cased (`CASE_INSENSITIVE_KEYS`), so one name has one holder. */
  host: 'host:<hostname>',
  /** hash · written by R · read by C, M, R · TTL 30 s, refreshed by the owning relay every `--session-refresh` (10 s), one pipeline for all its sessions (never per PING) — the relay 4-tuple:
   *  `relayIp`, `relayPort`, `agentIp`, `agentPort`, `relayId`, `since` (ms). */
  session: 'session:<vip>',
  /** hash · written by R · read by R, C · TTL 3 s, re-written every 1 s (heartbeat) — `meshIp`,
   *  `meshPort`, `listenIp`, `listenPort`, `since` (ms, first heartbeat). */
  relay: 'relay:<id>',
  /** hash · written by R · read by C · TTL 3 × the publish interval (15 s), re-written every 5 s — relay counters for the
   *  dashboard: `sessions`, `framesForwarded`, `bytesForwarded`, `dropped` (totals since start), `framesPerSec`,
   *  `bytesPerSec`, `dropsPerSec` (over the last interval), `at`, `since` (ms). */
  relayStats: 'relay-stats:<id>',
  /** sorted set · written by R · read by C · TTL none — relay id → Unix ms of its last `relay-stats:` write
   *  (the dashboard lists the relays from it; entries older than an hour are dropped by the relays). */
  relayStatsIds: 'relay-stats-ids',
  /** string · written by R · read by R · TTL none — base64 shared mesh secret, created with SET NX. */
  meshKey: 'mesh-key',
  /** hash · written by C · read by C · TTL expiry + 1 day (none if no expiry) — join token, by
   *  SHA-256 of the secret: `id`, `usesLeft`, `expiresAt`, `tags` (JSON), `ephemeral`, `createdAt`. */
  token: 'token:<sha256hex>',
  /** hash · written by C · read by C · TTL none — token id (`tok_…`) → sha256hex. */
  tokenIds: 'token-ids',
  /** string · written by C · read by C · TTL session TTL (default 24 h), renewed on use when less than half is left — bearer session token by
   *  SHA-256: `"<vip> <pub>"`. */
  sessionToken: 'stoken:<sha256hex>',
  /** string · written by C · read by C · TTL none — base64 secret the coordinators sign and derive
   *  join challenges with (coordinator/challenge-token.ts), created with SET NX. */
  challengeKey: 'challenge-key',
  /** string · written by C · read by C · TTL until the challenge expired + 60 s — `1`: the join
   *  challenge with this nonce (base64url) was used by a successful join (single use). */
  challengeUsed: 'challenge-used:<nonce>',
  /** hash · written by C · read by C · TTL none — public key (base64) → JSON `{vip, hostname,
   *  removedAt}`: keys an admin removed; their joins are refused until an admin allows them. */
  removedKeys: 'removed-keys',
  /** string · written by C · read by C, R · TTL none — the access policy as JSON (policy/ parses
   *  it); absent: no policy, every member reaches every member. */
  policy: 'policy',
  /** string · written by C · read by C · TTL none — overlay CIDR the state belongs to. */
  ipamCidr: 'ipam:cidr',
  /** string · written by C · read by C · TTL none — next never-used offset in the CIDR. */
  ipamCursor: 'ipam:cursor',
  /** sorted set · written by C · read by C · TTL none — removed vips, score = Unix ms when reusable. */
  ipamQuarantine: 'ipam:quarantine',
  /** hash · written by C · read by C · TTL none — the state generation: `generation` (random id, new
   *  whenever a coordinator finds the state gone), `createdAt` (ms), `rebuiltAt` (ms, when the state
   *  was found gone; absent on a first start), `holdStarted` (`1` once new allocations were held). */
  deployment: 'deployment',
  /** string · written by C · read by C · TTL `--reassert-grace` (60 s) — `1`: new vip allocations are
   *  held (join 503 `allocations-held`) so members re-assert their records first. */
  allocationHold: 'allocation-hold',
  /** string · written by C · read by C · TTL 30 days (the longest record life) — Unix ms the member
   *  with this key was removed: its membership records issued before then cannot re-assert it. */
  departed: 'departed:<pubBase64>',
  /** string · written by C · read by C · TTL none — change-feed version, `INCR`ed per member or policy change. */
  version: 'version',
  /** stream · written by C · read by C · TTL `MAXLEN ~ 10000` — change feed: id `<version>-0`,
   *  fields `type`, `vip`, `tags` (node-changed/node-removed: the tags before); policy-changed:
   *  `type`, `prev` (the policy text before, '' for none). */
  changes: 'changes',
  /** hash · written by M · read by M · TTL 30 s, refreshed every 1 s by the owning gateway (mapper) — an exposed port
   *  (mapper/expose.ts), one per target `<originalIp>:<port>`: `gatewayId` (the owner's vip), `gatewayIp`,
   *  `gatewayPort`, `originalIp`, `port`, `user` (the proxy user who created it), `createdAt`, `expiresAt` (ms). */
  expose: 'expose:<target>',
  /** set · written by M · read by M · TTL 30 s, refreshed with its records — the targets (`<originalIp>:<port>`) one
   *  gateway exposes, so a restarted gateway removes the records of its dead listeners. */
  exposeGateway: 'expose-gateway:<gatewayId>',
  /** hash · written by C · read by C, M · TTL none — proxy user (gateway credentials, `isthmus proxy-user`): `salt`
   *  (base64), `hash` (base64 scrypt of the password), `scrypt` (`N,r,p`), `tags` (JSON array), `createdAt` (ms). */
  proxyUser: 'proxy-user:<name>',
  /** set · written by C · read by C · TTL none — every proxy user name (for list). */
  proxyUsers: 'proxy-users',
  /** pub/sub channel · written by C, R · read by C, R, M · TTL – — JSON events: `EVENT_TYPES`,
   *  `encodeEvent`, `decodeEvent`. */
  events: 'events',
} as const;

export type KeyName = keyof typeof KEY_PATTERNS;

type Builder<T extends string> = T extends `${string}<${string}>` ? (param: string) => string : string;

/** `redisKeys(P)`: each key of `KEY_PATTERNS`, as a name or a function of its parameter. */
export type RedisKeys = { readonly [K in KeyName]: Builder<(typeof KEY_PATTERNS)[K]> };

/** The fixed part of a pattern (before its `<param>`) and whether it takes a parameter. */
export function keyHead(name: KeyName): { head: string; param: boolean } {
  const pattern: string = KEY_PATTERNS[name];
  const i = pattern.indexOf('<');
  return i < 0 ? { head: pattern, param: false } : { head: pattern.slice(0, i), param: true };
}

/** Keys whose parameter is case-insensitive: the builders (here and in the coordinator's Lua)
 *  lower-case it, so `Web-1` and `web-1` are one name with one holder. */
export const CASE_INSENSITIVE_KEYS: ReadonlySet<KeyName> = new Set<KeyName>(['host']);

/** Every key and channel name under `prefix`. */
export function redisKeys(prefix: string = DEFAULT_PREFIX): RedisKeys {
  const out: Record<string, string | ((param: string) => string)> = {};
  for (const name of Object.keys(KEY_PATTERNS) as KeyName[]) {
    const { head, param } = keyHead(name);
    const fixed = prefix + head;
    out[name] = !param ? fixed : CASE_INSENSITIVE_KEYS.has(name) ? (p: string) => fixed + p.toLowerCase() : (p: string) => fixed + p;
  }
  return out as RedisKeys;
}

/** Event types on `P:events` (docs/STATE.md "Events on `P:events`"). */
export const EventType = {
  /** C: a member joined for the first time (carries `version`). */
  NodeUp: 'node-up',
  /** C: a member re-joined and its key, original IP or hostname changed (a no-op re-join emits nothing; carries `version`). */
  NodeChanged: 'node-changed',
  /** C: a member was removed (leave, admin, sweep, takeover; carries `version`). */
  NodeRemoved: 'node-removed',
  /** R: a relay bound the member's session (carries `relayId`, its mesh address if meshed). */
  SessionUp: 'session-up',
  /** R: a relay dropped a session it still owned. */
  SessionDown: 'session-down',
  /** C: an admin set or cleared the policy (`P:policy`); carries `version`, no `vip`. */
  PolicyChanged: 'policy-changed',
  /** C: an admin created or revoked a proxy user (`P:proxy-user:<name>`); carries `name`, no `vip`. */
  ProxyUserChanged: 'proxy-user-changed',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];
/** Every event type. */
export const EVENT_TYPES: readonly EventType[] = Object.values(EventType);

export type NodeEventType = typeof EventType.NodeUp | typeof EventType.NodeChanged | typeof EventType.NodeRemoved;
export type SessionEventType = typeof EventType.SessionUp | typeof EventType.SessionDown;

/** Published by the coordinator's Lua scripts (coordinator/lua-scripts.ts `emit`). */
export interface NodeEvent {
  type: NodeEventType;
  vip: string;
  /** Change-feed version (`P:version`) this change was given; positive integer. */
  version: number;
}

/** Published by a relay's session recorder (relay/redis-directory.ts). */
export interface SessionEvent {
  type: SessionEventType;
  vip: string;
  relayId: string;
  /** The publishing relay's mesh address, present (both) when it runs meshed. */
  meshIp?: string;
  meshPort?: number;
}

/** Published by the coordinator when `P:policy` changes: every peer map may change. */
export interface PolicyEvent {
  type: typeof EventType.PolicyChanged;
  /** Change-feed version this change was given. */
  version: number;
}

/** Published by the coordinator when a proxy user is created or revoked: gateways drop what they cached for `name`. */
export interface ProxyUserEvent {
  type: typeof EventType.ProxyUserChanged;
  name: string;
}

export type ClusterEvent = NodeEvent | SessionEvent | PolicyEvent | ProxyUserEvent;

export function isNodeEvent(e: ClusterEvent): e is NodeEvent {
  return e.type === EventType.NodeUp || e.type === EventType.NodeChanged || e.type === EventType.NodeRemoved;
}

/**
 * One event as the JSON text published on `P:events`. `meshPort` goes out as a decimal string,
 * as relays have always sent it; `decodeEvent` accepts a string or a number.
 */
export function encodeEvent(e: ClusterEvent): string {
  if (e.type === EventType.PolicyChanged) return JSON.stringify({ type: e.type, version: e.version });
  if (e.type === EventType.ProxyUserChanged) return JSON.stringify({ type: e.type, name: e.name });
  if (isNodeEvent(e)) return JSON.stringify({ type: e.type, vip: e.vip, version: e.version });
  const mesh = e.meshIp !== undefined && e.meshPort !== undefined ? { meshIp: e.meshIp, meshPort: String(e.meshPort) } : {};
  return JSON.stringify({ type: e.type, vip: e.vip, relayId: e.relayId, ...mesh });
}

const MAX_FIELD_LEN = 256;

function shortString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_FIELD_LEN;
}

function portOf(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^[0-9]{1,5}$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined;
}

/**
 * Parse and validate one message from `P:events`. Text from Redis is untrusted input: anything
 * that is not a well-formed event of a known type gives `undefined`; this never throws.
 * A malformed mesh address drops only the mesh fields (the session event itself stands).
 * The vip is checked to be a short string only; readers that need an address parse it.
 */
export function decodeEvent(text: string): ClusterEvent | undefined {
  if (typeof text !== 'string' || text.length > 4096) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const type = o.type;
  if (type === EventType.PolicyChanged) {
    const version = o.version;
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version <= 0) return undefined;
    return { type, version };
  }
  if (type === EventType.ProxyUserChanged) return shortString(o.name) ? { type, name: o.name } : undefined;
  if (!shortString(o.vip)) return undefined;
  const vip = o.vip;
  switch (type) {
    case EventType.NodeUp:
    case EventType.NodeChanged:
    case EventType.NodeRemoved: {
      const version = o.version;
      if (typeof version !== 'number' || !Number.isSafeInteger(version) || version <= 0) return undefined;
      return { type, vip, version };
    }
    case EventType.SessionUp:
    case EventType.SessionDown: {
      if (!shortString(o.relayId)) return undefined;
      const e: SessionEvent = { type, vip, relayId: o.relayId };
      const meshPort = portOf(o.meshPort);
      if (shortString(o.meshIp) && meshPort !== undefined) {
        e.meshIp = o.meshIp;
        e.meshPort = meshPort;
      }
      return e;
    }
    default:
      return undefined;
  }
}
