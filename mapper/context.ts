/**
 * What the SOCKS5 and HTTP proxy fronts share: destination policy, the dialer, credentials,
 * stage timeouts, counters. Counters are plain numbers keyed by a reason label.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from '../common';
import type { Dialer } from './dialer';
import type { TargetPolicy } from './target';

export interface Credentials {
  username: string;
  password: string;
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
