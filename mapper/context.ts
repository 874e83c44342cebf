/**
 * What the SOCKS5 and HTTP proxy fronts share: destination policy, the dialer, credentials,
 * stage timeouts, counters. Counters are plain numbers keyed by a reason label.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from '../common';
import type { Dialer } from './dialer';
import type { MapEntry } from './directory';
import type { TargetPolicy } from './target';
import type { ProxyUser, ProxyUserVerifier } from './proxy-users';
import type { AccessRefusal } from './gateway';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Gateway mode: callers authenticate as proxy users (instead of `credentials`), and every
 * destination passes the per-user policy check before it is dialed (gateway.ts).
 */
export interface GatewayAuth {
  users: ProxyUserVerifier;
  access: { check(user: ProxyUser, ip: string, port: number, entry: MapEntry | null): Promise<AccessRefusal | null> };
}

export interface ProxyTimeouts {
  /** each handshake stage (greeting, auth, request; HTTP headers) @default 10000 */
  handshakeMs: number;
  /** dialing the member @default 10000 */
  connectMs: number;
  /** an established tunnel or UDP association with no traffic either way @default 300000 */
  idleMs: number;
}

export const DEFAULT_PROXY_TIMEOUTS: ProxyTimeouts = { handshakeMs: 10_000, connectMs: 10_000, idleMs: 300_000 };

export interface ProxyContext {
  policy: TargetPolicy;
  dial: Dialer;
  credentials?: Credentials;
  gateway?: GatewayAuth;
  timeouts: ProxyTimeouts;
  log: Logger;
  /** outcome label → count (e.g. `socks.connect.ok`, `http.refused.unknown`) */
  counters: Map<string, number>;
}

export function count(ctx: ProxyContext, label: string): void {
  ctx.counters.set(label, (ctx.counters.get(label) ?? 0) + 1);
}

/** Constant-time comparison of the pair (hashing first equalises lengths). */
export function credentialsMatch(want: Credentials, username: string, password: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  const u = timingSafeEqual(h(want.username), h(username));
  const p = timingSafeEqual(h(want.password), h(password));
  return u && p;
}

/** Verifies proxy-user credentials; 'unavailable' when the verifier cannot tell (Redis down). */
export async function verifyProxyUser(g: GatewayAuth, username: string, password: string): Promise<ProxyUser | null | 'unavailable'> {
  try {
    return await g.users.verify(username, password);
  } catch {
    return 'unavailable';
  }
}
