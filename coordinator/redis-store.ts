/**
 * The member registry in Redis (schema: docs/STATE.md). Every change is one Lua script
 * (lua-scripts.ts), so N coordinators on one Redis never hand out the same vip.
 */
import type Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { EventType, redisKeys, type NodeEventType, type RedisKeys, isAddr, parseAddr } from '../common';
import type { KeyChallenge } from '../protocol';
import { ChallengeSigner, type IssuedChallenge, type OpenedChallenge } from './challenge-token';
import { CHALLENGE_TTL_SEC, CHANGE_FEED_MAXLEN, DEFAULT_REASSERT_GRACE_MS } from './constants';
import { CidrMismatchError, JoinRefusedError, type JoinRefusalCode } from './errors';
import type { VipPool } from './ipam';
import { AUTH_LUA, CHANGES_LUA, INIT_GENERATION_LUA, JOIN_LUA, POLICY_LUA, REASSERT_LUA, REMOVE_LUA, SNAPSHOT_LUA, STATE_CHECK_LUA, SWEEP_LUA,
  TAG_LUA } from './lua-scripts';
import type { Member } from './types';

export interface RegistryOptions {
  prefix: string;
  cidr: VipPool;
  quarantineMs: number;
  /** Unix ms. */
  now: () => number;
  /** New vip allocations are held this long after the state is found gone. @default 60 s */
  reassertGraceMs?: number;
}

/** A verified membership record to restore (POST /v1/reassert; membership-record.ts). */
export interface ReassertParams {
  publicKey: string;
  vip: string;
  originalIp: string;
  hostname: string;
  tags: string[];
  originalCidrs: string[];
  ephemeral: boolean;
  /** The record's issued-at (Unix ms) and generation. */
  issuedAt: number;
  generation: string;
  challengeId: string;
  sessionTokenHash: string;
  sessionTtlMs: number;
}

export interface JoinParams {
  publicKey: string;
  originalIp: string;
  hostname: string;
  tokenHash?: string;
  challengeId: string;
  /** The challenge behind `challengeId` as the caller already opened it (openChallenge); else it is opened here. */
  opened?: OpenedChallenge;
  /** The original IP is the address the join request came from (else it must be inside a granted prefix). */
  originalIpIsSource: boolean;
  sessionTokenHash: string;
  sessionTtlMs: number;
}

export interface NodeRecord extends Member {
  created: number;
  lastSeen: number;
  ephemeral: boolean;
  /** Prefixes its original IP may be in (from its join token), besides the address it joins from. */
  originalCidrs: string[];
  /** The relay 4-tuple, when the member has a live relay session. */
  session?: Record<string, string>;
}

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;
interface Scripts {
  isthmusJoin: ScriptFn; isthmusRemove: ScriptFn; isthmusAuth: ScriptFn;
  isthmusSweep: ScriptFn; isthmusSnapshot: ScriptFn; isthmusTag: ScriptFn;
  isthmusPolicy: ScriptFn; isthmusChanges: ScriptFn;
  isthmusInitGeneration: ScriptFn; isthmusStateCheck: ScriptFn; isthmusReassert: ScriptFn;
}

/**
 * One entry of the change feed (`P:changes`), with the state before the change: what lets a
 * coordinator tell what a member saw at an older version. `prevTags` is the member's tags
 * before a node-changed/node-removed (null for node-up, and for entries written before the
 * field existed: unknown); `prev` is the policy text before a policy change (null: none).
 */
export type ChangeEntry =
  | { version: number; type: NodeEventType; vip: string; prevTags: readonly string[] | null }
  | { version: number; type: typeof EventType.PolicyChanged; prev: string | null };

/** The feed after a version, consistent with the member records and policy it returns. */
export interface FeedChanges {
  version: number;
  entries: ChangeEntry[];
  /** The current record of every vip the entries touch; undefined: it is gone. */
  nodes: Map<string, Member | undefined>;
  /** The current policy text when an entry changed it (null: none); undefined: unchanged. */
  policy?: string | null;
}

function parseTags(raw: string | undefined): string[] | null {
  if (raw === undefined) return null;
  try {
    const v = JSON.parse(raw) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v as string[] : null;
  } catch {
    return null;
  }
}

/** A `P:changes` entry; undefined when it is not one we understand. */
export function parseChangeEntry(id: string, fields: string[]): ChangeEntry | undefined {
  const version = Number(id.split('-')[0]);
  const f = pairsToObject(fields);
  if (f.type === EventType.PolicyChanged) return { version, type: f.type, prev: f.prev ? f.prev : null };
  if ((f.type === EventType.NodeUp || f.type === EventType.NodeChanged || f.type === EventType.NodeRemoved) && f.vip) {
    return { version, type: f.type, vip: f.vip, prevTags: f.type === EventType.NodeUp ? null : parseTags(f.tags) };
  }
  return undefined;
}

/** A member's identity as a join left it in Redis (JOIN_LUA's answer): a membership record's fields. */
export interface JoinedRecord {
  publicKey: string;
  originalIp: string;
  hostname: string;
  tags: string[];
  originalCidrs: string[];
  ephemeral: boolean;
  /** `P:deployment` generation. */
  generation: string;
}

/** A public key an admin removed (`P:removed-keys`): its joins are refused until allowed again. */
export interface RemovedKey {
  publicKey: string;
  vip: string;
  hostname: string;
  removedAt: number;
}

export function peerFromHash(vip: string, h: Record<string, string>): Member | undefined {
  if (!h.pub) return undefined;
  return { vip, originalIp: h.orig, publicKey: h.pub, hostname: h.hostname, tags: JSON.parse(h.tags || '[]') as string[] };
}

function pairsToObject(flat: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  return o;
}

/** Members in address order: by the vip as a uint32 (100.64.0.9 before 100.64.0.10). */
export function byVip(a: { vip: string }, b: { vip: string }): number {
  return parseAddr(a.vip) - parseAddr(b.vip);
}

/** A random state generation id (`P:deployment`). */
function newGeneration(): string {
  return randomBytes(12).toString('base64url');
}

/** A coordinator whose challenge check failed re-reads `P:challenge-key` at most this often. */
const CHALLENGE_KEY_RELOAD_MS = 5_000;

export class RedisRegistry {
  readonly keys: RedisKeys;
  private readonly s: Scripts;
  private signer?: { secret: string; signer: ChallengeSigner };
  private signerLoadedAt = -Infinity;
  private generationSeen: string | undefined;

  constructor(readonly redis: Redis, private readonly opts: RegistryOptions) {
    this.keys = redisKeys(opts.prefix);
    for (const [name, lua] of [['isthmusJoin', JOIN_LUA], ['isthmusRemove', REMOVE_LUA], ['isthmusAuth', AUTH_LUA],
      ['isthmusSweep', SWEEP_LUA], ['isthmusSnapshot', SNAPSHOT_LUA], ['isthmusTag', TAG_LUA],
      ['isthmusPolicy', POLICY_LUA], ['isthmusChanges', CHANGES_LUA], ['isthmusInitGeneration', INIT_GENERATION_LUA],
      ['isthmusStateCheck', STATE_CHECK_LUA], ['isthmusReassert', REASSERT_LUA]] as const) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 0, lua });
    }
    this.s = redis as unknown as Scripts;
  }

  private head(): (string | number)[] {
    return [this.opts.prefix, this.opts.now(), this.opts.quarantineMs, CHANGE_FEED_MAXLEN];
  }

  /** Record the CIDR on first start; refuse a different one later (vips would collide). */
  async init(): Promise<void> {
    await this.redis.set(this.keys.ipamCidr, this.opts.cidr.text, 'NX');
    const stored = await this.redis.get(this.keys.ipamCidr);
    if (stored !== this.opts.cidr.text) throw new CidrMismatchError(String(stored), this.opts.cidr.text);
    await this.loadChallengeKey();
    const r = await this.s.isthmusInitGeneration(...this.head(), newGeneration()) as [string, number];
    this.generationSeen = r[0];
  }

  /** The state generation this coordinator last saw (`P:deployment`). */
  get generation(): string | undefined {
    return this.generationSeen;
  }

  private get graceMs(): number {
    return this.opts.reassertGraceMs ?? DEFAULT_REASSERT_GRACE_MS;
  }

  /**
   * Is the state still there? Re-creates `P:deployment` (new generation, allocations held for
   * the grace window, versions raised) when Redis lost it. `rebuilt`: this call found it gone;
   * `changed`: the generation differs from the one this coordinator saw last (another
   * coordinator rebuilt it, or was started on an emptied Redis).
   */
  async checkState(): Promise<{ generation: string; rebuilt: boolean; changed: boolean }> {
    const r = await this.s.isthmusStateCheck(...this.head(), newGeneration(), this.graceMs) as [string, number];
    const changed = this.generationSeen !== undefined && r[0] !== this.generationSeen;
    this.generationSeen = r[0];
    if (Number(r[1]) === 1) {
      // Everything went: the CIDR marker and the challenge secret too.
      await this.redis.set(this.keys.ipamCidr, this.opts.cidr.text, 'NX');
      await this.loadChallengeKey();
    }
    return { generation: r[0], rebuilt: Number(r[1]) === 1, changed };
  }

  /** Milliseconds new allocations are still held (0: not held). */
  async allocationHoldMs(): Promise<number> {
    return Math.max(0, await this.redis.pttl(this.keys.allocationHold));
  }

  /** Restore a member from its verified record (REASSERT_LUA). The caller checked the record and the key proof. */
  async reassert(p: ReassertParams): Promise<{ vip: string; version: number; restored: boolean }> {
    const ch = await this.openChallenge(p.challengeId);
    if (!ch) throw new JoinRefusedError('challenge-unknown');
    const r = await this.s.isthmusReassert(...this.head(), newGeneration(), this.graceMs, p.publicKey, p.vip, p.originalIp, p.hostname,
      JSON.stringify([...p.tags].sort()), JSON.stringify(p.originalCidrs), p.ephemeral ? '1' : '0', p.issuedAt, p.generation,
      ch.usedId, p.sessionTokenHash, p.sessionTtlMs, ch.usedTtlMs) as [string, string, string | number, number?];
    if (r[0] !== 'ok') throw new JoinRefusedError(r[1] as JoinRefusalCode, r[2] ? String(r[2]) : undefined);
    return { vip: r[1], version: Number(r[2]), restored: r[3] === 1 };
  }

  /** `P:challenge-key` (created if absent, SET NX: every coordinator ends up with the same one). */
  private async loadChallengeKey(): Promise<boolean> {
    const k = this.keys.challengeKey;
    await this.redis.set(k, randomBytes(32).toString('base64'), 'NX');
    const v = await this.redis.get(k);
    if (!v) throw new Error(`${k} vanished`);
    this.signerLoadedAt = this.opts.now();
    if (this.signer?.secret === v) return false;
    this.signer = { secret: v, signer: new ChallengeSigner(Buffer.from(v, 'base64'), CHALLENGE_TTL_SEC * 1000) };
    return true;
  }

  private async challengeSigner(): Promise<ChallengeSigner> {
    if (!this.signer) await this.loadChallengeKey();
    return this.signer!.signer;
  }

  /** A fresh join challenge (challenge-token.ts): stateless, nothing is written to Redis. */
  async createChallenge(): Promise<IssuedChallenge> {
    return (await this.challengeSigner()).issue(this.opts.now());
  }

  /**
   * The challenge behind an id if it is one of ours and not expired (used or not: the join
   * script refuses a used one). A failed check re-reads `P:challenge-key` (rate-limited), in
   * case it changed under this coordinator (Redis lost it and another coordinator made a new one).
   */
  private async openChallenge(id: string): Promise<OpenedChallenge | undefined> {
    let r = (await this.challengeSigner()).open(id, this.opts.now());
    if (r === 'invalid' && this.opts.now() - this.signerLoadedAt >= CHALLENGE_KEY_RELOAD_MS && await this.loadChallengeKey()) {
      r = this.signer!.signer.open(id, this.opts.now());
    }
    return typeof r === 'string' ? undefined : r;
  }

  /** The challenge to check a join's key proof with; undefined: unknown or expired. */
  async getChallenge(id: string): Promise<KeyChallenge | undefined> {
    return (await this.openChallenge(id))?.challenge();
  }

  /** A challenge id opened (checked, unexpired; used or not): to check a proof with and pass on to `join`. */
  async openJoinChallenge(id: string): Promise<OpenedChallenge | undefined> {
    return this.openChallenge(id);
  }

  /**
   * Join with a challenge (single use: a successful join spends it). The caller checked the key
   * proof. `record`: the member as the join left it (what a membership record needs; no read after).
   */
  async join(p: JoinParams): Promise<{ vip: string; version: number; created: boolean; record: JoinedRecord }> {
    const c = this.opts.cidr;
    const ch = p.opened ?? await this.openChallenge(p.challengeId);
    if (!ch) throw new JoinRefusedError('challenge-unknown');
    const r = await this.s.isthmusJoin(...this.head(), c.prefix.addr, c.firstOffset, c.lastOffset, p.publicKey, p.originalIp,
      p.hostname, parseAddr(p.originalIp), p.tokenHash ?? '', ch.usedId, p.originalIpIsSource ? '1' : '0',
      p.sessionTokenHash, p.sessionTtlMs, ch.usedTtlMs, newGeneration(), this.graceMs) as
      [string, string, string | number, number?, string?, string?, string?, string?];
    if (r[0] !== 'ok') throw new JoinRefusedError(r[1] as JoinRefusalCode, r[2] ? String(r[2]) : undefined);
    const record: JoinedRecord = { publicKey: p.publicKey, originalIp: p.originalIp, hostname: p.hostname, tags: parseTags(r[5]) ?? [],
      originalCidrs: parseTags(r[6]) ?? [], ephemeral: r[7] === '1', generation: r[4] ?? this.generationSeen ?? 'none' };
    return { vip: r[1], version: Number(r[2]), created: r[3] === 1, record };
  }

  /**
   * The vip a bearer session token belongs to, or undefined. Writes nothing, except that a
   * token with less than half of `sessionTtlMs` left is renewed to the full TTL.
   */
  async authSession(tokenHash: string, sessionTtlMs: number): Promise<string | undefined> {
    return (await this.authSessionInfo(tokenHash, sessionTtlMs))?.vip;
  }

  /** authSession with the member's key and the ms the token has left (after any renewal). */
  async authSessionInfo(tokenHash: string, sessionTtlMs: number): Promise<{ vip: string; publicKey: string; leftMs: number } | undefined> {
    const r = await this.s.isthmusAuth(...this.head(), tokenHash, sessionTtlMs) as [string, string, number] | null;
    return r ? { vip: r[0], publicKey: r[1], leftMs: Number(r[2]) } : undefined;
  }

  /**
   * Remove a member; false when there was none. `refuseKey`: record its key in
   * `P:removed-keys` so it cannot join again (even with a valid token) until `allowKey`.
   */
  async remove(vip: string, opts: { refuseKey?: boolean } = {}): Promise<boolean> {
    return Number(await this.s.isthmusRemove(...this.head(), vip, opts.refuseKey ? '1' : '0')) > 0;
  }

  /** Let a removed key join again (with a token); false when it was not refused. */
  async allowKey(publicKey: string): Promise<boolean> {
    return await this.redis.hdel(this.keys.removedKeys, publicKey) > 0;
  }

  async listRemovedKeys(): Promise<RemovedKey[]> {
    const h = await this.redis.hgetall(this.keys.removedKeys);
    return Object.entries(h).map(([publicKey, raw]) => {
      let r: Partial<RemovedKey> = {};
      try { r = JSON.parse(raw) as Partial<RemovedKey>; } catch { /* keep the key, unknown details */ }
      return { publicKey, vip: String(r.vip ?? ''), hostname: String(r.hostname ?? ''), removedAt: Number(r.removedAt ?? 0) };
    }).sort((a, b) => a.removedAt - b.removedAt);
  }

  /**
   * Admin tag change (adds, then removes). Undefined when no such member; otherwise its tags
   * after the change. Emits node-changed (so peers' maps follow) only when they changed.
   */
  async setTags(vip: string, add: readonly string[], remove: readonly string[]): Promise<{ tags: string[]; version: number } | undefined> {
    const r = await this.s.isthmusTag(...this.head(), vip, JSON.stringify(add), JSON.stringify(remove)) as [number, string];
    if (Number(r[0]) === 0) return undefined;
    return { version: Number(r[0]), tags: JSON.parse(r[1]) as string[] };
  }

  /** The vip of a member named by vip or hostname (case-insensitive), if it exists. */
  async resolveMember(vipOrHostname: string): Promise<string | undefined> {
    const vip = isAddr(vipOrHostname) ? vipOrHostname : await this.redis.get(this.keys.host(vipOrHostname));
    if (!vip) return undefined;
    return await this.redis.hexists(this.keys.node(vip), 'pub') ? vip : undefined;
  }

  /** Remove ephemeral members without a relay session for `timeoutMs`. Idempotent. */
  async sweepEphemeral(timeoutMs: number): Promise<string[]> {
    return await this.s.isthmusSweep(...this.head(), timeoutMs) as string[];
  }

  /** Every member and the policy text (null: none), consistent at `version`. */
  async snapshot(): Promise<{ version: number; peers: Member[]; policy: string | null }> {
    const r = await this.s.isthmusSnapshot(...this.head()) as [number, string | null, ...(string | string[])[]];
    const peers: Member[] = [];
    for (let i = 2; i + 1 < r.length; i += 2) {
      const p = peerFromHash(r[i] as string, pairsToObject(r[i + 1] as string[]));
      if (p) peers.push(p);
    }
    peers.sort(byVip);
    return { version: Number(r[0]), peers, policy: r[1] || null };
  }

  async version(): Promise<number> {
    return Number(await this.redis.get(this.keys.version) ?? 0);
  }

  /**
   * The feed after `since` with the current records it touches, read atomically; 'full' when
   * the feed cannot say (since ahead of Redis, entries trimmed, more than `limit` of them).
   */
  async changes(since: number, limit = CHANGE_FEED_MAXLEN): Promise<FeedChanges | 'full'> {
    const r = await this.s.isthmusChanges(...this.head(), since, limit) as
      ['full'] | [number, [string, string[]][], (string | string[])[], string | null];
    if (r[0] === 'full') return 'full';
    const [version, rawEntries, flat, policy] = r as [number, [string, string[]][], (string | string[])[], string | null];
    const entries: ChangeEntry[] = [];
    for (const [id, fields] of rawEntries) {
      const e = parseChangeEntry(id, fields);
      if (e) entries.push(e);
    }
    const nodes = new Map<string, Member | undefined>();
    for (let i = 0; i + 1 < flat.length; i += 2) nodes.set(flat[i] as string, peerFromHash(flat[i] as string, pairsToObject(flat[i + 1] as string[])));
    const out: FeedChanges = { version: Number(version), entries, nodes };
    if (policy !== null && policy !== undefined) out.policy = policy === '' ? null : policy;
    return out;
  }

  /** Entries with versions in (after, upTo], or undefined when the stream no longer has them all. */
  async entriesBetween(after: number, upTo: number): Promise<ChangeEntry[] | undefined> {
    if (upTo <= after) return [];
    const raw = await this.redis.xrange(this.keys.changes, `${after + 1}-0`, `${upTo}-0`);
    if (raw.length !== upTo - after || raw[0][0] !== `${after + 1}-0`) return undefined;
    const out: ChangeEntry[] = [];
    for (const [id, fields] of raw) {
      const e = parseChangeEntry(id, fields);
      if (e) out.push(e);
    }
    return out;
  }

  /** The policy text (null: no policy). */
  async policyText(): Promise<string | null> {
    return await this.redis.get(this.keys.policy);
  }

  /** Set (canonical text) or clear (null) the policy; `changed` false (no event) when it was already so. */
  async setPolicy(text: string | null): Promise<{ version: number; changed: boolean }> {
    const r = await this.s.isthmusPolicy(...this.head(), text ?? '') as [number, number];
    return { version: Number(r[0]), changed: Number(r[1]) === 1 };
  }

  /** The vip of a member named by vip, original IP or hostname (case-insensitive), if it exists. */
  async resolveAny(name: string): Promise<string | undefined> {
    const candidates = isAddr(name) ? [name, await this.redis.get(this.keys.orig(name))] : [await this.redis.get(this.keys.host(name))];
    for (const vip of candidates) if (vip && await this.redis.hexists(this.keys.node(vip), 'pub')) return vip;
    return undefined;
  }

  async getNode(vip: string): Promise<NodeRecord | undefined> {
    const [h, s] = await Promise.all([this.redis.hgetall(this.keys.node(vip)), this.redis.hgetall(this.keys.session(vip))]);
    const p = peerFromHash(vip, h);
    if (!p) return undefined;
    // Liveness is the relay session: a member holding one is seen now (its polls write nothing).
    const live = Object.keys(s).length > 0;
    return { ...p, created: Number(h.created), lastSeen: live ? this.opts.now() : Number(h.lastSeen), ephemeral: h.ephemeral === '1',
      originalCidrs: JSON.parse(h.cidrs || '[]') as string[],
      ...(Object.keys(s).length ? { session: s } : {}) };
  }

  async listNodes(): Promise<NodeRecord[]> {
    const vips = await this.redis.smembers(this.keys.nodes);
    const nodes = await Promise.all(vips.map((v) => this.getNode(v)));
    return nodes.filter((n): n is NodeRecord => !!n).sort(byVip);
  }
}
