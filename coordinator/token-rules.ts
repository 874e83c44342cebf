/**
 * Join tokens and bearer secrets, pure. A secret is shown once and only its SHA-256 is kept
 * in Redis; ids are random and public (for list/revoke).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const JOIN_TOKEN_PREFIX = 'isj_';
export const SESSION_TOKEN_PREFIX = 'iss_';

/** 32 random bytes, base64url, with a prefix that tells what kind of secret it is. */
export function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

export function newTokenId(): string {
  return 'tok_' + randomBytes(6).toString('hex');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of two secrets of any length (compares their hashes). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(Buffer.from(hashSecret(a), 'hex'), Buffer.from(hashSecret(b), 'hex'));
}

export interface TokenRecord {
  id: string;
  /** Uses left; -1 = unlimited. */
  usesLeft: number;
  /** Unix ms; 0 = never. */
  expiresAt: number;
  tags: string[];
  /** Prefixes a member joining with it may claim its original IP in (besides its source address). */
  originalCidrs: string[];
  ephemeral: boolean;
  createdAt: number;
}

export type TokenState = 'valid' | 'expired' | 'exhausted';

/** The same rule the join Lua script applies. */
export function tokenState(t: Pick<TokenRecord, 'usesLeft' | 'expiresAt'>, now: number): TokenState {
  if (t.expiresAt > 0 && t.expiresAt <= now) return 'expired';
  if (t.usesLeft === 0) return 'exhausted';
  return 'valid';
}

/** A new member's tags: the token's, sorted, unique (members never choose their own; an admin may change them later). */
export function memberTags(granted: readonly string[]): string[] {
  return [...new Set(granted)].sort();
}

/** Parse a Redis hash written by the store into a TokenRecord (undefined if incomplete). */
export function tokenFromHash(h: Record<string, string>): TokenRecord | undefined {
  if (!h.id) return undefined;
  return {
    id: h.id,
    usesLeft: Number(h.usesLeft),
    expiresAt: Number(h.expiresAt),
    tags: JSON.parse(h.tags || '[]') as string[],
    originalCidrs: JSON.parse(h.cidrs || '[]') as string[],
    ephemeral: h.ephemeral === '1',
    createdAt: Number(h.createdAt),
  };
}
