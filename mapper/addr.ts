/**
 * Destination text the mapper is handed (pure). The overlay is IPv4-only; IPv6 destinations are
 * refused. IPv4 addresses and prefixes themselves are parsed by common/ipv4.ts.
 */
import { contains, masked, parsePrefix, tryParseAddr, type Prefix } from '../common';

/** Loose IPv6 test: enough to answer "address type not supported" instead of "unknown host". */
export function looksLikeIPv6(s: string): boolean {
  const t = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  return t.includes(':') && /^[0-9a-fA-F:.]+(%.+)?$/.test(t);
}

export class InvalidCidrError extends Error {
  override name = 'InvalidCidrError';
  readonly code = 'ERR_INVALID_CIDR';
  constructor(text: string) {
    super(`invalid IPv4 CIDR: ${JSON.stringify(text)} (want a.b.c.d/n)`);
  }
}

/** An overlay or original range from options ('10.1.2.3/8' means 10.0.0.0/8); InvalidCidrError otherwise. */
export function parseRange(text: string): Prefix {
  try {
    return masked(parsePrefix(text.trim()));
  } catch {
    throw new InvalidCidrError(text);
  }
}

/** Hostname as accepted for a member (RFC 1123 labels); lower-cased by the caller. */
export function isHostname(s: string): boolean {
  return s.length > 0 && s.length <= 253 && /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/.test(s);
}

const LOOPBACK = parsePrefix('127.0.0.0/8');

/** 127.0.0.0/8, ::1 or `localhost`: a listen address only this host reaches. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  const a = tryParseAddr(host);
  return a !== undefined && contains(LOOPBACK, a);
}
