/**
 * Which member owns which address, as this agent has accepted them from peer maps: the
 * agent's own check that no peer-map entry takes another member's address (defence in depth
 * behind the coordinator's join rules: even a wrong or compromised coordinator cannot redirect
 * a vip or an original IP that another member already holds). The first holder keeps it.
 *
 * Pure, no I/O. Prefixes are networks (host bits clear). Prefixes overlap when one contains the other; entries from the coordinator are
 * /32s, so a lookup is one Map probe per prefix length in use.
 */
import { formatPrefix, prefixMask, type Prefix } from '../common';

export interface ClaimConflict {
  /** The refused prefix, a.b.c.d/n. */
  cidr: string;
  /** Who holds an overlapping prefix. */
  holder: string;
}

export class PeerClaims {
  /** Per prefix length: network → owner. */
  private readonly byLength: Array<Map<number, string> | undefined> = new Array(33).fill(undefined);
  private readonly byOwner = new Map<string, Prefix[]>();

  /** The first other owner whose prefixes overlap `c`, if any. */
  private overlap(owner: string, c: Prefix): string | undefined {
    for (let bits = 0; bits <= 32; bits++) {
      const m = this.byLength[bits];
      if (!m || m.size === 0) continue;
      if (bits <= c.bits) {
        // An existing prefix as long or shorter contains c when c's network falls in it.
        const o = m.get((c.addr & prefixMask(bits)) >>> 0);
        if (o !== undefined && o !== owner) return o;
      } else {
        // A longer existing prefix overlaps when it lies inside c.
        const mask = prefixMask(c.bits);
        for (const [net, o] of m) if (o !== owner && ((net & mask) >>> 0) === c.addr) return o;
      }
    }
    return undefined;
  }

  /** The conflict that claiming `cidrs` for `owner` would cause, if any (nothing is changed). */
  conflict(owner: string, cidrs: readonly Prefix[]): ClaimConflict | undefined {
    for (const c of cidrs) {
      const holder = this.overlap(owner, c);
      if (holder !== undefined) return { cidr: formatPrefix(c), holder };
    }
    return undefined;
  }

  /**
   * Give `owner` exactly `cidrs` (replacing what it held) unless one overlaps another owner's:
   * then nothing changes and the conflict is returned.
   */
  claim(owner: string, cidrs: readonly Prefix[]): ClaimConflict | undefined {
    const c = this.conflict(owner, cidrs);
    if (c) return c;
    this.release(owner);
    for (const p of cidrs) {
      let m = this.byLength[p.bits];
      if (!m) { m = new Map(); this.byLength[p.bits] = m; }
      m.set(p.addr, owner);
    }
    this.byOwner.set(owner, [...cidrs]);
    return undefined;
  }

  release(owner: string): void {
    const held = this.byOwner.get(owner);
    if (!held) return;
    for (const p of held) {
      const m = this.byLength[p.bits];
      if (m && m.get(p.addr) === owner) m.delete(p.addr);
    }
    this.byOwner.delete(owner);
  }

  has(owner: string): boolean {
    return this.byOwner.has(owner);
  }
}
