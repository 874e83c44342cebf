/**
 * Which address a proxied destination really means (pure policy over a MemberDirectory):
 *   an original IP a member registered   → that member's virtual IP
 *   an address inside the overlay CIDR   → itself (already a virtual IP)
 *   a member's hostname                  → that member's virtual IP
 *   anything else                        → refused: the mapper is never an open proxy
 * Whatever the directory (Redis) answers, only addresses inside the overlay are dialed: a
 * mapping to a virtual IP outside it is refused as `bad-mapping`.
 */
import { contains, formatPrefix, isSpecialPurpose, tryParseAddr, type Prefix } from '../common';
import { isHostname, looksLikeIPv6 } from './addr';
import type { MapEntry, MemberDirectory } from './directory';

export const RefuseWhy = {
  /** no member has this original IP / hostname */
  Unknown: 'unknown',
  /** outside the overlay and the allowed original ranges */
  NotAllowed: 'not-allowed',
  /** IPv6 */
  Unsupported: 'unsupported',
  /** port 0, garbage names */
  Invalid: 'invalid',
  /** the directory could not answer (Redis down) */
  Unavailable: 'unavailable',
  /** the directory maps the name to a virtual IP outside the overlay: never dialed (Redis is not trusted to send us elsewhere) */
  BadMapping: 'bad-mapping',
  /** gateway mode: the policy does not let the proxy user (or the gateway itself) open this flow (gateway.ts) */
  Policy: 'policy',
} as const;
export type RefuseWhy = (typeof RefuseWhy)[keyof typeof RefuseWhy];

export type Target =
  | { kind: 'dial'; ip: string; port: number; via: 'original' | 'virtual' | 'hostname'; entry: MapEntry | null }
  | { kind: 'refuse'; why: RefuseWhy; reason: string };

export interface TargetPolicy {
  directory: MemberDirectory;
  /** virtual IPs, dialed as they are */
  overlay: Prefix;
  /** if set, IPv4 destinations outside these and the overlay are refused as not allowed */
  originalCidrs?: Prefix[];
}

export async function resolveTarget(rawHost: string, port: number, p: TargetPolicy): Promise<Target> {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return refuse('invalid', `bad port ${port}`);
  const host = rawHost.startsWith('[') && rawHost.endsWith(']') ? rawHost.slice(1, -1) : rawHost;
  if (looksLikeIPv6(host)) return refuse('unsupported', 'IPv6 destinations are not supported');
  try {
    const addr = tryParseAddr(host);
    if (addr !== undefined) {
      const entry = await p.directory.byOriginalIp(host);
      if (entry) return dialMember(entry, port, 'original', p.overlay);
      if (contains(p.overlay, addr)) return { kind: 'dial', ip: host, port, via: 'virtual', entry: null };
      if (isSpecialPurpose(addr)) return refuse('not-allowed', `${host} is not a member address`);
      if (p.originalCidrs && !p.originalCidrs.some((c) => contains(c, addr))) {
        return refuse('not-allowed', `${host} is outside the overlay and the original ranges`);
      }
      return refuse('unknown', `no member has original IP ${host}`);
    }
    if (!isHostname(host)) return refuse('invalid', 'not a hostname or IPv4 address');
    const entry = await p.directory.byHostname(host);
    if (entry) return dialMember(entry, port, 'hostname', p.overlay);
    return refuse('unknown', `no member is named ${host.slice(0, 64)}`);
  } catch (err) {
    return refuse('unavailable', `directory unavailable: ${(err as Error).message}`);
  }
}

function dialMember(entry: MapEntry, port: number, via: 'original' | 'hostname', overlay: Prefix): Target {
  const vip = tryParseAddr(entry.virtualIp);
  if (vip === undefined || !contains(overlay, vip)) {
    return refuse('bad-mapping', `the directory maps this member to ${JSON.stringify(entry.virtualIp.slice(0, 64))}, outside the overlay ${formatPrefix(overlay)}: not dialed`);
  }
  return { kind: 'dial', ip: entry.virtualIp, port, via, entry };
}

function refuse(why: RefuseWhy, reason: string): Target {
  return { kind: 'refuse', why, reason };
}
