/**
 * What a member may claim as its original IP, pure (no Redis). The stateless half of the rule
 * runs here, in the API, before the join script; the stateful half (the address the join comes
 * from, or a prefix its token granted; nobody else holds it) runs in the join script
 * (lua-scripts.ts), atomically. Trust model: docs/SECURITY.md; rules: docs/STATE.md.
 */
import { SPECIAL_PURPOSE, contains, formatPrefix, isSpecialPurpose, parseAddr, parseNetwork, tryParseAddr } from '../common';
import type { VipPool } from './ipam';

/** Most `--original-cidr` prefixes on one token. */
export const MAX_ORIGINAL_CIDRS = 32;

/** Normalize a TCP peer address as Node reports it ('::ffff:10.0.0.1' → '10.0.0.1'); not IPv4 → undefined. */
export function sourceIpv4(remote: string | undefined): string | undefined {
  if (!remote) return undefined;
  const v4 = remote.startsWith('::ffff:') ? remote.slice(7) : remote;
  return tryParseAddr(v4) === undefined ? undefined : v4;
}

export type StaticRefusal = { code: 'original-ip-in-overlay' | 'original-ip-special'; message: string };

/** The checks that need no state: undefined = may be claimed (subject to the join script). */
export function staticOriginalIpRefusal(originalIp: string, overlay: VipPool): StaticRefusal | undefined {
  const a = parseAddr(originalIp);
  if (contains(overlay.prefix, a)) {
    return { code: 'original-ip-in-overlay', message: `original IP ${originalIp} is inside the overlay CIDR ${overlay.text}: virtual IPs are assigned, never claimed` };
  }
  if (isSpecialPurpose(a)) {
    const ranges = SPECIAL_PURPOSE.map((r) => formatPrefix(r.prefix)).join(', ');
    return { code: 'original-ip-special', message: `original IP ${originalIp} is a special-purpose address (${ranges}): not a host address` };
  }
  return undefined;
}

/**
 * Parse the prefixes an admin grants a token (`--original-cidr`): strict (host bits set is an
 * error), normalized, unique, sorted. Throws Error with the offending value named.
 */
export function parseOriginalCidrs(list: readonly string[]): string[] {
  const out = new Set<string>();
  for (const s of list) {
    try {
      out.add(formatPrefix(parseNetwork(s.trim())));
    } catch (err) {
      throw new Error(`original CIDR ${JSON.stringify(s)}: ${(err as Error).message}`);
    }
  }
  return [...out].sort();
}

/** Same rule the join script applies: `addr` inside one of `cidrs` (normalized a.b.c.d/n). */
export function insideAny(addr: string, cidrs: readonly string[]): boolean {
  const a = parseAddr(addr);
  return cidrs.some((s) => contains(parseNetwork(s), a));
}
