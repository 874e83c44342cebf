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
import { formatAddr, formatPrefix, masked, parsePrefix, prefixSize, tryParseAddr, type Prefix } from '../common';

/** The block virtual IPs are allocated from (`--cidr`). */
export interface VipPool {
  /** Normalized `a.b.c.d/n` (host bits cleared); stored in Redis to catch a changed --cidr. */
  text: string;
  /** The network (host bits cleared). */
  prefix: Prefix;
  /** Number of addresses in the block (2^(32-bits)). */
  size: number;
  /** First and last offset that may be handed out (skip network and broadcast). */
  firstOffset: number;
  lastOffset: number;
}

export class InvalidCidrError extends Error {
  override name = 'InvalidCidrError';
  readonly code = 'invalid-cidr';
}

/** Parse the pool's IPv4 CIDR (host bits ignored); prefix must be 8..30 so there is room and a broadcast to skip. */
export function parseVipPool(text: string): VipPool {
  let prefix: Prefix;
  try {
    prefix = masked(parsePrefix(text.trim()));
  } catch {
    throw new InvalidCidrError(`not an IPv4 CIDR: ${text}`);
  }
  if (prefix.bits < 8 || prefix.bits > 30) throw new InvalidCidrError(`CIDR prefix must be /8../30: ${text}`);
  const size = prefixSize(prefix);
  return { text: formatPrefix(prefix), prefix, size, firstOffset: 1, lastOffset: size - 2 };
}

export function vipAt(cidr: VipPool, offset: number): string {
  if (!Number.isInteger(offset) || offset < cidr.firstOffset || offset > cidr.lastOffset) {
    throw new RangeError(`offset ${offset} outside ${cidr.text}`);
  }
  return formatAddr(cidr.prefix.addr + offset);
}

/** Offset of `ip` inside the block, or -1 when it is not a usable address of it. */
export function offsetOf(cidr: VipPool, ip: string): number {
  const n = tryParseAddr(ip);
  if (n === undefined) return -1;
  const off = n - cidr.prefix.addr;
  return off >= cidr.firstOffset && off <= cidr.lastOffset ? off : -1;
}

/** The allocation rule in plain TypeScript (single process). */
export class ReferenceAllocator {
  private cursor: number;
  /** vip → release time (ms). */
  private readonly quarantine = new Map<string, number>();
  private readonly used = new Set<string>();

  constructor(readonly cidr: VipPool, private readonly quarantineMs: number) {
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
