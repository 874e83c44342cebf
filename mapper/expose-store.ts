/**
 * Exposed ports in Redis (keys: common/redis-schema.ts `expose`, `exposeGateway`; docs/STATE.md
 * "Exposed ports"). One record per target `<originalIp>:<port>` across all gateways, created
 * atomically; the owning gateway keeps it alive (30 s TTL, refreshed every second) and learns
 * from the refresh when someone else deleted it. Every write is one Lua script, so a record and
 * its gateway's index never disagree.
 */
import type { Redis } from 'ioredis';
import { redisKeys, type RedisKeys } from '../common';

/** One exposure as stored (and as GET answers it). */
export interface ExposureRecord {
  /** the owning gateway's virtual IP */
  gatewayId: string;
  gatewayIp: string;
  gatewayPort: number;
  originalIp: string;
  port: number;
  /** the proxy user who created it (only they may delete it) */
  user: string;
  createdAt: number;
  /** ms since the epoch: last use + the owner's idle timeout */
  expiresAt: number;
}

/** A record lives this long unless its gateway refreshes it (a dead gateway's records go by then). @default 30000 */
export const EXPOSE_RECORD_TTL_MS = 30_000;

export type RemoveResult = 'removed' | 'missing' | 'not-owner';

// KEYS[1] record, KEYS[2] the gateway's index. ARGV[1] ttl ms, ARGV[2] target, ARGV[3..] field pairs.
// Creates the record only if none exists; returns the existing one (HGETALL) otherwise.
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return false
`;

// KEYS[1] record. ARGV[1] user ('' = anyone), ARGV[2] index key head (P:expose-gateway:), ARGV[3] target,
// ARGV[4] gatewayId ('' = any gateway's).
const REMOVE = `
local f = redis.call('HMGET', KEYS[1], 'user', 'gatewayId')
if not f[1] then return 'missing' end
if ARGV[4] ~= '' and f[2] ~= ARGV[4] then return 'missing' end
if ARGV[1] ~= '' and f[1] ~= ARGV[1] then return 'not-owner' end
redis.call('DEL', KEYS[1])
if f[2] then redis.call('SREM', ARGV[2] .. f[2], ARGV[3]) end
return 'removed'
`;

// KEYS[1] the gateway's index, KEYS[2..] its records. ARGV[1] ttl ms, ARGV[2] gatewayId,
// ARGV[3..] per record: new expiresAt or ''. Returns 1 per record still ours (TTL renewed), else 0.
const REFRESH = `
local out = {}
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'gatewayId') == ARGV[2] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    if ARGV[i + 1] ~= '' then redis.call('HSET', KEYS[i], 'expiresAt', ARGV[i + 1]) end
    out[i - 1] = 1
  else
    out[i - 1] = 0
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return out
`;

// KEYS[1] the gateway's index. ARGV[1] gatewayId, ARGV[2] record key head (P:expose:).
// Deletes the records it still owns and the index; returns how many records went.
const REMOVE_GATEWAY = `
local n = 0
for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[2] .. t
  if redis.call('HGET', k, 'gatewayId') == ARGV[1] then
    redis.call('DEL', k)
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
return n
`;

type ScriptClient = Redis & {
  exposeCreate(k1: string, k2: string, ...argv: string[]): Promise<string[] | null>;
  exposeRemove(k1: string, ...argv: string[]): Promise<string>;
  exposeRefresh(numKeys: number, ...args: string[]): Promise<number[]>;
  exposeRemoveGateway(k1: string, ...argv: string[]): Promise<number>;
};

export function targetOf(originalIp: string, port: number): string {
  return `${originalIp}:${port}`;
}

/** Pure: a stored hash → a record, or null if it is not a well-formed one (Redis is not trusted blindly). */
export function toRecord(h: Record<string, string>): ExposureRecord | null {
  const num = (s: string | undefined) => (s !== undefined && /^[0-9]{1,16}$/.test(s) ? Number(s) : NaN);
  const r = {
    gatewayId: h.gatewayId ?? '', gatewayIp: h.gatewayIp ?? '', gatewayPort: num(h.gatewayPort), originalIp: h.originalIp ?? '',
    port: num(h.port), user: h.user ?? '', createdAt: num(h.createdAt), expiresAt: num(h.expiresAt),
  };
  const port = (p: number) => Number.isInteger(p) && p > 0 && p < 65536;
  if (!r.gatewayIp || !r.originalIp || !port(r.gatewayPort) || !port(r.port) || !Number.isFinite(r.expiresAt)) return null;
  return r;
}

function pairsToHash(flat: string[]): Record<string, string> {
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return h;
}

export class ExposeStore {
  private readonly keys: RedisKeys;
  private readonly redis: ScriptClient;
  private readonly gatewayHead: string;
  private readonly recordHead: string;

  constructor(redis: Redis, prefix: string, private readonly ttlMs = EXPOSE_RECORD_TTL_MS) {
    this.keys = redisKeys(prefix);
    this.gatewayHead = this.keys.exposeGateway('');
    this.recordHead = this.keys.expose('');
    redis.defineCommand('exposeCreate', { numberOfKeys: 2, lua: CREATE });
    redis.defineCommand('exposeRemove', { numberOfKeys: 1, lua: REMOVE });
    redis.defineCommand('exposeRefresh', { lua: REFRESH });
    redis.defineCommand('exposeRemoveGateway', { numberOfKeys: 1, lua: REMOVE_GATEWAY });
    this.redis = redis as ScriptClient;
  }

  /** Records `r` unless its target is exposed already: null when created, else the existing record. */
  async create(r: ExposureRecord): Promise<ExposureRecord | null> {
    const target = targetOf(r.originalIp, r.port);
    const fields = Object.entries(r).flatMap(([k, v]) => [k, String(v)]);
    const existing = await this.redis.exposeCreate(this.keys.expose(target), this.keys.exposeGateway(r.gatewayId), String(this.ttlMs), target, ...fields);
    if (!existing) return null;
    // A malformed record still holds the target: report it as it is, with what can be read.
    return toRecord(pairsToHash(existing)) ?? { ...r, gatewayIp: '?', gatewayId: '?', user: '?' };
  }

  async get(originalIp: string, port: number): Promise<ExposureRecord | null> {
    const h = await this.redis.hgetall(this.keys.expose(targetOf(originalIp, port)));
    return toRecord(h);
  }

  /** Deletes the record of a target; with `user`, only if that user created it; with `gatewayId`, only if that gateway owns it. */
  async remove(originalIp: string, port: number, user = '', gatewayId = ''): Promise<RemoveResult> {
    const target = targetOf(originalIp, port);
    return (await this.redis.exposeRemove(this.keys.expose(target), user, this.gatewayHead, target, gatewayId)) as RemoveResult;
  }

  /** Renews this gateway's records; `expiresAt` (or undefined) per target. Returns which are still ours. */
  async refresh(gatewayId: string, items: Array<{ target: string; expiresAt?: number }>): Promise<boolean[]> {
    if (items.length === 0) return [];
    const keys = [this.keys.exposeGateway(gatewayId), ...items.map((i) => this.keys.expose(i.target))];
    const argv = [String(this.ttlMs), gatewayId, ...items.map((i) => (i.expiresAt === undefined ? '' : String(i.expiresAt)))];
    const out = await this.redis.exposeRefresh(keys.length, ...keys, ...argv);
    return items.map((_, i) => out[i] === 1);
  }

  /** Deletes every record this gateway still owns (at start: its listeners died with the last run). */
  async removeGateway(gatewayId: string): Promise<number> {
    return this.redis.exposeRemoveGateway(this.keys.exposeGateway(gatewayId), gatewayId, this.recordHead);
  }

  /** The access policy text (`P:policy`), or null when none is set. */
  async policyText(): Promise<string | null> {
    return this.redis.get(this.keys.policy);
  }
}
