/**
 * Virtual-IP arithmetic and the allocation rule, pure (no Redis). The Redis Lua scripts in
 * lua-scripts.ts implement the same rule atomically; `ReferenceAllocator` is the readable
 * version the tests compare them against.
 *
 * Rule: free addresses are `[cursor, last]` (never handed out yet) plus quarantined addresses
 * whose release time has passed. Fresh addresses go first, so a removed member's address is
 * reused as late as possible, and never before its quarantine ends. The network and broadcast
 * addresses are never handed out.
 */
import { intToIpv4, ipv4ToInt } from '../common/packet-io';
import { formatCidr, parseCidr as parseStrict } from '../common/cidr';

export interface Cidr {
  /** Normalized `a.b.c.d/n` (host bits cleared). */
  text: string;
  /** Network address, host-order uint32. */
  base: number;
  prefix: number;
  /** Number of addresses in the block (2^(32-prefix)). */
  size: number;
  /** First and last offset that may be handed out (skip network and broadcast). */
  firstOffset: number;
  lastOffset: number;
}

export class InvalidCidrError extends Error {
  override name = 'InvalidCidrError';
  readonly code = 'invalid-cidr';
}

/** Parse an IPv4 CIDR; prefix must be 8..30 so there is room and a broadcast to skip. */
export function parseCidr(text: string): Cidr {
  let c;
  try {
    c = parseStrict(text.trim(), { normalize: true });
  } catch {
    throw new InvalidCidrError(`not an IPv4 CIDR: ${text}`);
  }
  const prefix = c.bits;
  if (prefix < 8 || prefix > 30) throw new InvalidCidrError(`CIDR prefix must be /8../30: ${text}`);
  const size = 2 ** (32 - prefix);
  return { text: formatCidr(c.network, prefix), base: c.network, prefix, size, firstOffset: 1, lastOffset: size - 2 };
}

export function vipAt(cidr: Cidr, offset: number): string {
  if (!Number.isInteger(offset) || offset < cidr.firstOffset || offset > cidr.lastOffset) {
    throw new RangeError(`offset ${offset} outside ${cidr.text}`);
  }
  return intToIpv4((cidr.base + offset) >>> 0);
}

/** Offset of `ip` inside the block, or -1 when it is not a usable address of it. */
export function offsetOf(cidr: Cidr, ip: string): number {
  let n: number;
  try {
    n = ipv4ToInt(ip);
  } catch {
    return -1;
  }
  const off = n - cidr.base;
  return off >= cidr.firstOffset && off <= cidr.lastOffset ? off : -1;
}

/** The allocation rule in plain TypeScript (single process). */
export class ReferenceAllocator {
  private cursor: number;
  /** vip → release time (ms). */
  private readonly quarantine = new Map<string, number>();
  private readonly used = new Set<string>();

  constructor(readonly cidr: Cidr, private readonly quarantineMs: number) {
    this.cursor = cidr.firstOffset;
  }

  /** A free vip, or undefined when the pool is exhausted at time `now`. */
  allocate(now: number): string | undefined {
    let vip: string | undefined;
    if (this.cursor <= this.cidr.lastOffset) {
      vip = vipAt(this.cidr, this.cursor++);
    } else {
      // The released address with the earliest release time (ties: smallest address string,
      // as a Redis sorted set orders equal scores).
      let best: [string, number] | undefined;
      for (const [v, at] of this.quarantine) {
        if (at > now) continue;
        if (!best || at < best[1] || (at === best[1] && v < best[0])) best = [v, at];
      }
      if (best) {
        vip = best[0];
        this.quarantine.delete(vip);
      }
    }
    if (vip) this.used.add(vip);
    return vip;
  }

  release(vip: string, now: number): void {
    if (!this.used.delete(vip)) return;
    this.quarantine.set(vip, now + this.quarantineMs);
  }

  inUse(): ReadonlySet<string> {
    return this.used;
  }
}
