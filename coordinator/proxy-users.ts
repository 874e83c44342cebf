/**
 * Proxy users: the credentials callers give a gateway (`isthmus mapper --gateway`) on its
 * SOCKS5 (RFC 1929) and HTTP (`Proxy-Authorization: Basic`) fronts. Stored in Redis as
 * `P:proxy-user:<name>` (common/redis-schema.ts) with a salted scrypt hash of the password,
 * never the password; `P:proxy-users` lists the names. Creating or revoking one publishes
 * `proxy-user-changed` on `P:events` in the same MULTI, so every gateway drops what it cached.
 *
 * The hash and the record parser live here, beside the writer; the mapper's verifier
 * (mapper/proxy-users.ts) uses the same `verifyProxyPassword`.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type Redis from 'ioredis';
import { EventType, encodeEvent, redisKeys, type RedisKeys } from '../common';
import { TAG_NAME } from '../policy';
import { CoordinatorError } from './errors';

/**
 * A proxy user name: it is the RFC 1929 UNAME and the part before the first `:` of HTTP
 * Basic credentials, so no `:`, and short enough to log.
 */
export const PROXY_USER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;

/** Generated passwords: 24 random bytes, base64url (32 characters; no URL escaping needed in `user:pass@host`). */
export const PROXY_PASSWORD_BYTES = 24;

/** scrypt cost: N = 2^14, r = 8, p = 1 (16 MiB, tens of ms per check), stored with each record so it can change. */
export const DEFAULT_SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const KEY_LEN = 32;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** A proxy user as stored (the hash stays in the store; `ProxyUserView` is what the API shows). */
export interface ProxyUserRecord {
  name: string;
  tags: string[];
  createdAt: number;
  salt: Buffer;
  hash: Buffer;
  scrypt: ScryptParams;
}

export interface ProxyUserView {
  name: string;
  tags: string[];
  createdAt: number;
}

/** 409 proxy-user-exists: names are never silently re-keyed (revoke first). */
export class ProxyUserExistsError extends CoordinatorError {
  override name = 'ProxyUserExistsError';
  constructor(name: string) {
    super('proxy-user-exists', `proxy user ${name} exists: revoke it first (isthmus proxy-user revoke ${name})`, 409);
  }
}

function scryptAsync(password: string, salt: Buffer, s: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_LEN, { N: s.N, r: s.r, p: s.p, maxmem: 256 * s.N * s.r }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Constant-time check of `password` against a stored record. */
export async function verifyProxyPassword(rec: Pick<ProxyUserRecord, 'salt' | 'hash' | 'scrypt'>, password: string): Promise<boolean> {
  const key = await scryptAsync(password, rec.salt, rec.scrypt);
  return key.length === rec.hash.length && timingSafeEqual(key, rec.hash);
}

/** Parse a `P:proxy-user:<name>` hash; undefined when absent or not a well-formed record (fails closed). */
export function proxyUserFromHash(name: string, h: Record<string, string>): ProxyUserRecord | undefined {
  if (!h.hash || !h.salt || !h.scrypt) return undefined;
  const m = /^(\d{1,7}),(\d{1,3}),(\d{1,3})$/.exec(h.scrypt);
  if (!m) return undefined;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Bounds keep a hand-edited record from making every check a memory bomb.
  if (N < 2 || N > 1 << 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
  let tags: string[];
  try {
    const t: unknown = JSON.parse(h.tags ?? '[]');
    if (!Array.isArray(t) || !t.every((x) => typeof x === 'string' && TAG_NAME.test(x))) return undefined;
    tags = t as string[];
  } catch {
    return undefined;
  }
  const hash = Buffer.from(h.hash, 'base64');
  if (hash.length !== KEY_LEN) return undefined;
  return { name, tags, createdAt: Number(h.createdAt) || 0, salt: Buffer.from(h.salt, 'base64'), hash, scrypt: { N, r, p } };
}

export class ProxyUserStore {
  private readonly k: RedisKeys;
  constructor(private readonly redis: Redis, prefix: string, private readonly now: () => number, private readonly params: ScryptParams = DEFAULT_SCRYPT) {
    this.k = redisKeys(prefix);
  }

  /** Creates `name` with a generated password (returned once). Refuses a name that exists. */
  async create(name: string, tags: readonly string[]): Promise<{ password: string; user: ProxyUserView }> {
    const password = randomBytes(PROXY_PASSWORD_BYTES).toString('base64url');
    const salt = randomBytes(16);
    const hash = await scryptAsync(password, salt, this.params);
    const user: ProxyUserView = { name, tags: [...new Set(tags)].sort(), createdAt: this.now() };
    const fields = {
      salt: salt.toString('base64'), hash: hash.toString('base64'), scrypt: `${this.params.N},${this.params.r},${this.params.p}`,
      tags: JSON.stringify(user.tags), createdAt: String(user.createdAt),
    };
    // HSETNX on `hash` claims the name atomically; the rest follows in one MULTI only if we won.
    const key = this.k.proxyUser(name);
    if (await this.redis.hsetnx(key, 'hash', fields.hash) !== 1) throw new ProxyUserExistsError(name);
    await this.redis.multi()
      .hset(key, fields)
      .sadd(this.k.proxyUsers, name)
      .publish(this.k.events, encodeEvent({ type: EventType.ProxyUserChanged, name }))
      .exec();
    return { password, user };
  }

  async get(name: string): Promise<ProxyUserRecord | undefined> {
    return proxyUserFromHash(name, await this.redis.hgetall(this.k.proxyUser(name)));
  }

  async list(): Promise<ProxyUserView[]> {
    const names = (await this.redis.smembers(this.k.proxyUsers)).sort();
    const out: ProxyUserView[] = [];
    for (const name of names) {
      const rec = await this.get(name);
      if (rec) out.push({ name, tags: rec.tags, createdAt: rec.createdAt });
    }
    return out;
  }

  /** True when the user existed. Deletes it and tells every gateway, in one MULTI. */
  async revoke(name: string): Promise<boolean> {
    const res = await this.redis.multi()
      .del(this.k.proxyUser(name))
      .srem(this.k.proxyUsers, name)
      .publish(this.k.events, encodeEvent({ type: EventType.ProxyUserChanged, name }))
      .exec();
    return Number(res?.[0]?.[1] ?? 0) > 0;
  }
}
