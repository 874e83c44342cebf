/**
 * The agent's reply-tracking table: flows the local member opened (UDP, ICMP echo), so their
 * replies pass the inbound filter although no rule lets the peer open them.
 *
 * Bounded by construction and allocation-free: `capacity` slots in typed arrays, grouped in
 * sets of WAYS (4). A flow may live in either of two sets chosen by two hashes: a new flow
 * goes to the less crowded one (the "power of two choices"), into the slot nearest to expiry
 * (a free or expired one if any). So the table never grows, never rehashes and never looks at
 * more than eight slots, yet keeps nearly every flow until it is nearly full. Measured with
 * 65,536 slots: 32,768 flows all kept but 0.01 %, 49,152 flows 99.3 % (one set per flow: 96 %
 * and 89 %; crowded sets lose flows early). Entries expire after an idle
 * timeout per protocol, refreshed by traffic either way. A key is four int32 words, never a
 * string: protocol, remote address, local address, remote port << 16 | local port.
 *
 * Only the local member's own outbound packets insert, so a peer cannot flood a set to evict
 * another peer's flows: it can only answer flows it was sent.
 */
import { IP_PROTO_ICMP } from '../protocol';

/** Slots per set: a set's keys are 64 contiguous bytes. */
export const WAYS = 4;
/** @default 65,536 entries: 1.5 MB (16 bytes of key and 8 of expiry each). */
export const DEFAULT_FLOW_TABLE_SIZE = 65536;
/** Idle lifetime of a UDP flow, as Linux's conntrack for UDP streams and nebula's default. @default 180 s */
export const DEFAULT_UDP_TIMEOUT_MS = 180_000;
/** Idle lifetime of an ICMP echo: a ping that waits longer than this has no reply coming. @default 30 s */
export const DEFAULT_ICMP_TIMEOUT_MS = 30_000;

export interface FlowTableOptions {
  /** Entries; rounded up to a power of two, at least 2 × WAYS. @default DEFAULT_FLOW_TABLE_SIZE */
  size?: number;
  /** @default DEFAULT_UDP_TIMEOUT_MS */
  udpTimeoutMs?: number;
  /** @default DEFAULT_ICMP_TIMEOUT_MS */
  icmpTimeoutMs?: number;
}

export class FlowTable {
  readonly capacity: number;
  private readonly setMask: number;
  /** Four int32 words per slot: protocol (0 = never used), remote, local, ports. */
  private readonly keys: Int32Array;
  /** Per slot: when it expires (clock ms); 0 for a slot never used. */
  private readonly expires: Float64Array;
  private readonly udpTimeoutMs: number;
  private readonly icmpTimeoutMs: number;
  /** Live entries overwritten before they expired: a sign the table is too small. */
  evictions = 0;

  constructor(opts: FlowTableOptions = {}) {
    let cap = 2 * WAYS;
    while (cap < (opts.size ?? DEFAULT_FLOW_TABLE_SIZE)) cap *= 2;
    this.capacity = cap;
    this.setMask = cap / WAYS - 1;
    this.keys = new Int32Array(cap * 4);
    this.expires = new Float64Array(cap);
    this.udpTimeoutMs = opts.udpTimeoutMs ?? DEFAULT_UDP_TIMEOUT_MS;
    this.icmpTimeoutMs = opts.icmpTimeoutMs ?? DEFAULT_ICMP_TIMEOUT_MS;
  }

  /**
   * Is the flow tracked and alive at `now`? A hit refreshes its idle timer (replies keep a flow
   * alive, as conntrack does). `proto` is 1..255; addresses are int32 (`addr | 0`).
   */
  lookup(proto: number, remote: number, local: number, ports: number, now: number): boolean {
    const h = mix(proto, remote, local, ports);
    let i = this.find((h & this.setMask) * WAYS, proto, remote, local, ports);
    if (i < 0) i = this.find((mix2(h) & this.setMask) * WAYS, proto, remote, local, ports);
    if (i < 0 || this.expires[i] <= now) return false;
    this.expires[i] = now + this.timeout(proto);
    return true;
  }

  /** Track the flow, or refresh it if tracked. */
  insert(proto: number, remote: number, local: number, ports: number, now: number): void {
    const h = mix(proto, remote, local, ports);
    const a = (h & this.setMask) * WAYS;
    const b = (mix2(h) & this.setMask) * WAYS;
    let slot = this.find(a, proto, remote, local, ports);
    if (slot < 0) slot = this.find(b, proto, remote, local, ports);
    if (slot < 0) {
      // The less crowded of the two sets (the "power of two choices"), else the older entry.
      const liveA = this.live(a, now);
      const liveB = this.live(b, now);
      if (liveA < liveB) slot = this.victim(a);
      else if (liveB < liveA) slot = this.victim(b);
      else {
        const va = this.victim(a);
        const vb = this.victim(b);
        slot = this.expires[vb] < this.expires[va] ? vb : va;
      }
      if (this.expires[slot] > now) this.evictions++;
      const w = slot << 2;
      this.keys[w] = proto;
      this.keys[w + 1] = remote;
      this.keys[w + 2] = local;
      this.keys[w + 3] = ports;
    }
    this.expires[slot] = now + this.timeout(proto);
  }

  /** Live entries at `now` (walks the table: for stats and tests, not the data path). */
  size(now: number): number {
    let n = 0;
    for (let i = 0; i < this.capacity; i++) if (this.expires[i] > now) n++;
    return n;
  }

  private timeout(proto: number): number {
    return proto === IP_PROTO_ICMP ? this.icmpTimeoutMs : this.udpTimeoutMs;
  }

  /** The slot holding the key in the set starting at `base`, or -1. */
  private find(base: number, proto: number, remote: number, local: number, ports: number): number {
    const k = this.keys;
    for (let i = base; i < base + WAYS; i++) {
      const w = i << 2;
      if (k[w] === proto && k[w + 1] === remote && k[w + 2] === local && k[w + 3] === ports) return i;
    }
    return -1;
  }

  /** Live slots of the set at `base`. */
  private live(base: number, now: number): number {
    let n = 0;
    for (let i = base; i < base + WAYS; i++) if (this.expires[i] > now) n++;
    return n;
  }

  /** The slot of the set at `base` nearest to expiry: a free or expired one when there is one. */
  private victim(base: number): number {
    let v = base;
    for (let i = base + 1; i < base + WAYS; i++) if (this.expires[i] < this.expires[v]) v = i;
    return v;
  }
}

/** A multiplicative mix of the key words (murmur3's finaliser constants). */
function mix(proto: number, remote: number, local: number, ports: number): number {
  let h = Math.imul(remote ^ proto, 0x9e3779b1);
  h = Math.imul(h ^ local ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ ports ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The second set's hash, derived from the first. */
function mix2(h: number): number {
  h = Math.imul(h ^ (h >>> 15), 0x27d4eb2d);
  return h ^ (h >>> 13);
}
