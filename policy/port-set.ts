/**
 * The ports one peer may open towards the local member, compiled for the agent's packet
 * filter: a TCP/UDP lookup is one typed-array read and a shift, whatever the number of rules.
 *
 * TCP and UDP are bitmaps of 65,536 bits (8 KiB each, only for protocols the set mentions).
 * That is cheap because sets are memoised per pair of tag classes (evaluate.ts): an agent holds
 * a handful, a controller seeing 100,000 agents still only as many as there are distinct
 * tag sets. Sets are immutable once built; share them freely.
 */
import type { PortSpec } from './types';

const BITMAP_WORDS = 65536 / 32;

export class PortSet {
  /** Everything: every protocol (including ones other than TCP/UDP/ICMP) and every port. */
  static readonly ALL = new PortSet(true, false, null, null, [{ proto: 'any' }]);
  /** Nothing: no new flow may be opened (replies to the local member's flows still come back). */
  static readonly NONE = new PortSet(false, false, null, null, []);

  private constructor(
    readonly all: boolean,
    /** ICMP echo requests (and other ICMP that is neither a reply nor an error). */
    readonly icmp: boolean,
    private readonly tcp: Uint32Array | null,
    private readonly udp: Uint32Array | null,
    /** The set as normalised specs (ranges merged, sorted): for status and explanations. */
    readonly specs: readonly PortSpec[],
  ) {}

  /** The union of `specs` (any number, in any order, overlapping or not). */
  static of(specs: Iterable<PortSpec>): PortSet {
    let icmp = false;
    const ranges: Record<'tcp' | 'udp', [number, number][]> = { tcp: [], udp: [] };
    for (const s of specs) {
      if (s.proto === 'any') return PortSet.ALL;
      if (s.proto === 'icmp') icmp = true;
      else ranges[s.proto].push([s.first, s.last]);
    }
    const tcp = merge(ranges.tcp);
    const udp = merge(ranges.udp);
    if (!icmp && tcp.length === 0 && udp.length === 0) return PortSet.NONE;
    const norm: PortSpec[] = [
      ...tcp.map(([first, last]) => ({ proto: 'tcp' as const, first, last })),
      ...udp.map(([first, last]) => ({ proto: 'udp' as const, first, last })),
      ...(icmp ? [{ proto: 'icmp' as const }] : []),
    ];
    return new PortSet(false, icmp, bitmap(tcp), bitmap(udp), norm);
  }

  /** May a TCP connection to `port` be opened (a SYN let in)? */
  allowsTcp(port: number): boolean {
    if (this.all) return true;
    const b = this.tcp;
    return b !== null && ((b[port >>> 5] >>> (port & 31)) & 1) === 1;
  }

  /** May a UDP flow to `port` be opened? */
  allowsUdp(port: number): boolean {
    if (this.all) return true;
    const b = this.udp;
    return b !== null && ((b[port >>> 5] >>> (port & 31)) & 1) === 1;
  }

  /** May ICMP echo requests (and other non-reply, non-error ICMP) come in? */
  allowsIcmp(): boolean {
    return this.all || this.icmp;
  }

  /** May a protocol other than TCP, UDP and ICMP come in? Only with `*`. */
  allowsOther(): boolean {
    return this.all;
  }

  isEmpty(): boolean {
    return this.specs.length === 0;
  }
}

/** Sorted, non-overlapping, non-adjacent ranges. */
function merge(rs: [number, number][]): [number, number][] {
  rs.sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [a, b] of rs) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

function bitmap(rs: [number, number][]): Uint32Array | null {
  if (rs.length === 0) return null;
  const b = new Uint32Array(BITMAP_WORDS);
  for (const [a, z] of rs) for (let p = a; p <= z; p++) b[p >>> 5] |= 1 << (p & 31);
  return b;
}
