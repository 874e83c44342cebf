/**
 * What a member may claim as its original IP, pure (no Redis). The stateless half of the rule
 * runs here, in the API, before the join script; the stateful half (the address the join comes
 * from, or a prefix its token granted; nobody else holds it) runs in the join script
 * (lua-scripts.ts), atomically. Trust model: /work/shared/DESIGN.md; rules: docs/STATE.md.
 *
 * Note for the merge with common/ipv4.ts: `isSpecialPurpose` and the prefix helpers here are
 * the same idea as that module's; keep one of them.
 */
import { ipv4ToInt } from '../common/packet-io';
import { formatCidr, parseCidr as parseStrict, prefixMask } from '../common/cidr';
import type { Cidr as OverlayCidr } from './ipam';

/** Addresses no host has on a network it joins from (RFC 6890 subset): never an original IP. */
export const SPECIAL_PURPOSE_PREFIXES = [
  '0.0.0.0/8', // "this network"
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link local
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, including 255.255.255.255 (limited broadcast)
] as const;

const SPECIAL = SPECIAL_PURPOSE_PREFIXES.map((p) => parseStrict(p));

/** Most `--original-cidr` prefixes on one token. */
export const MAX_ORIGINAL_CIDRS = 32;

export function isSpecialPurpose(addr: number): boolean {
  return SPECIAL.some((c) => ((addr & prefixMask(c.bits)) >>> 0) === c.network);
}

/** Normalize a TCP peer address as Node reports it ('::ffff:10.0.0.1' → '10.0.0.1'); not IPv4 → undefined. */
export function sourceIpv4(remote: string | undefined): string | undefined {
  if (!remote) return undefined;
  const v4 = remote.startsWith('::ffff:') ? remote.slice(7) : remote;
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(v4) ? v4 : undefined;
}

export type StaticRefusal = { code: 'original-ip-in-overlay' | 'original-ip-special'; message: string };

/** The checks that need no state: undefined = may be claimed (subject to the join script). */
export function staticOriginalIpRefusal(originalIp: string, overlay: OverlayCidr): StaticRefusal | undefined {
  const a = ipv4ToInt(originalIp);
  if (((a & prefixMask(overlay.prefix)) >>> 0) === overlay.base) {
    return { code: 'original-ip-in-overlay', message: `original IP ${originalIp} is inside the overlay CIDR ${overlay.text}: virtual IPs are assigned, never claimed` };
  }
  if (isSpecialPurpose(a)) {
    return { code: 'original-ip-special', message: `original IP ${originalIp} is a special-purpose address (${SPECIAL_PURPOSE_PREFIXES.join(', ')}): not a host address` };
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
    let c;
    try {
      c = parseStrict(s.trim());
    } catch (err) {
      throw new Error(`original CIDR ${JSON.stringify(s)}: ${(err as Error).message}`);
    }
    out.add(formatCidr(c.network, c.bits));
  }
  return [...out].sort();
}

/** Same rule the join script applies: `addr` inside one of `cidrs` (normalized a.b.c.d/n). */
export function insideAny(addr: string, cidrs: readonly string[]): boolean {
  const a = ipv4ToInt(addr);
  return cidrs.some((s) => {
    const c = parseStrict(s);
    return ((a & prefixMask(c.bits)) >>> 0) === c.network;
  });
}
