/**
 * IPv4 address helpers (pure). The overlay is IPv4-only; IPv6 destinations are refused.
 */
import { ipv4ToInt } from '../common/packet-io';
import { parseCidr as parseStrict, prefixMask } from '../common/cidr';

/** Strict dotted-quad: four decimal octets 0..255, no leading zeros (no octal ambiguity). */
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(s: string): boolean {
  return s.length <= 15 && IPV4_RE.test(s);
}

/** Loose IPv6 test: enough to answer "address type not supported" instead of "unknown host". */
export function looksLikeIPv6(s: string): boolean {
  const t = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  return t.includes(':') && /^[0-9a-fA-F:.]+(%.+)?$/.test(t);
}

export interface Cidr {
  base: number;
  mask: number;
  text: string;
}

export class InvalidCidrError extends Error {
  override name = 'InvalidCidrError';
  readonly code = 'ERR_INVALID_CIDR';
  constructor(text: string) {
    super(`invalid IPv4 CIDR: ${JSON.stringify(text)} (want a.b.c.d/n)`);
  }
}

export function parseCidr(text: string): Cidr {
  let c;
  try {
    c = parseStrict(text.trim(), { normalize: true });
  } catch {
    throw new InvalidCidrError(text);
  }
  return { base: c.network, mask: prefixMask(c.bits), text };
}

export function cidrContains(c: Cidr, ip: string): boolean {
  return isIPv4(ip) && ((ipv4ToInt(ip) & c.mask) >>> 0) === c.base;
}

/**
 * Addresses the mapper never dials unless they are inside the overlay or a known member's
 * mapping: unspecified, multicast, broadcast, link-local. Stops it being used to poke at
 * the host's own services or the LAN through a name nobody registered.
 */
export function isSpecialPurpose(ip: string): boolean {
  const n = ipv4ToInt(ip);
  const a = n >>> 24;
  return a === 0 || a === 127 || a >= 224 || ((n >>> 16) === ((169 << 8) | 254));
}

/** Hostname as accepted for a member (RFC 1123 labels); lower-cased by the caller. */
export function isHostname(s: string): boolean {
  return s.length > 0 && s.length <= 253 && /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/.test(s);
}
