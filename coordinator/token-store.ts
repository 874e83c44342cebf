/**
 * Join tokens in Redis: `P:token:<sha256>` hash (the secret itself is never stored), and
 * `P:token-ids` hash id → sha256 for list/revoke. The join script consumes uses.
 */
import type Redis from 'ioredis';
import { redisKeys, type RedisKeys } from '../common';
import { hashSecret, newSecret, newTokenId, tokenFromHash, tokenState, JOIN_TOKEN_PREFIX,
  type TokenRecord, type TokenState } from './token-rules';

export interface CreateTokenOptions {
  /** Uses before the token is exhausted. @default 1; -1 = unlimited */
  uses?: number;
  /** Lifetime in ms. @default 0 = no expiry */
  ttlMs?: number;
  tags?: string[];
  /** Prefixes (normalized a.b.c.d/n) a member joining with it may claim its original IP in. */
  originalCidrs?: string[];
  /** Members joined with it are removed when their relay session is gone for a while. */
  ephemeral?: boolean;
}

export interface TokenInfo extends TokenRecord {
  state: TokenState;
}

export class TokenStore {
  private readonly k: RedisKeys;
  constructor(private readonly redis: Redis, prefix: string, private readonly now: () => number) {
    this.k = redisKeys(prefix);
  }

  /** Returns the secret (shown once) and its record. */
  async create(opts: CreateTokenOptions): Promise<{ token: string; info: TokenInfo }> {
    const token = newSecret(JOIN_TOKEN_PREFIX);
    const hash = hashSecret(token);
    const now = this.now();
    const rec: TokenRecord = {
      id: newTokenId(),
      usesLeft: opts.uses ?? 1,
      expiresAt: opts.ttlMs ? now + opts.ttlMs : 0,
      tags: [...new Set(opts.tags ?? [])].sort(),
      originalCidrs: [...new Set(opts.originalCidrs ?? [])].sort(),
      ephemeral: opts.ephemeral ?? false,
      createdAt: now,
    };
    const m = this.redis.multi()
      .hset(this.k.token(hash), {
        id: rec.id, usesLeft: rec.usesLeft, expiresAt: rec.expiresAt, tags: JSON.stringify(rec.tags), cidrs: JSON.stringify(rec.originalCidrs),
        ephemeral: rec.ephemeral ? '1' : '0', createdAt: rec.createdAt,
      })
      .hset(this.k.tokenIds, rec.id, hash);
    // Keep an expired token a day so `token list` can say "expired" instead of forgetting it.
    if (rec.expiresAt) m.pexpireat(this.k.token(hash), rec.expiresAt + 86_400_000);
    await m.exec();
    return { token, info: { ...rec, state: tokenState(rec, now) } };
  }

  async list(): Promise<TokenInfo[]> {
    const ids = await this.redis.hgetall(this.k.tokenIds);
    const now = this.now();
    const out: TokenInfo[] = [];
    for (const [id, hash] of Object.entries(ids)) {
      const rec = tokenFromHash(await this.redis.hgetall(this.k.token(hash)));
      if (!rec) {
        await this.redis.hdel(this.k.tokenIds, id); // its key expired: forget the id too
        continue;
      }
      out.push({ ...rec, state: tokenState(rec, now) });
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** True when a token with that id existed. */
  async revoke(id: string): Promise<boolean> {
    const hash = await this.redis.hget(this.k.tokenIds, id);
    if (!hash) return false;
    await this.redis.multi().del(this.k.token(hash)).hdel(this.k.tokenIds, id).exec();
    return true;
  }
}
