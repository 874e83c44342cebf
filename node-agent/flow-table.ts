/**
 * The agent's reply-tracking table: flows the local member opened (UDP, ICMP echo), so their
 * replies pass the inbound filter although no rule lets the peer open them.
 *
 * Bounded by construction and allocation-free: a set-associative hash table in typed arrays,
 * `capacity` entries in sets of WAYS (4), like a CPU cache. A flow lives in one set; inserting
 * into a full set overwrites the entry closest to expiry (expired entries first), so the table
 * never grows, never rehashes and never walks more than 4 entries. Entries expire after an idle
 * timeout per protocol, refreshed by traffic either way. A key is four int32 words (protocol,
 * remote address, local address, remote port << 16 | local port), never a string.
 *
 * Who fills it cannot choose the set: only the local member's own outbound packets insert, so a
 * peer cannot flood a set to evict another peer's flows (it can only answer flows it was sent).
 */
import { IP_PROTO_ICMP } from '../protocol/ip-packet';

/** Entries per set. Four keeps a lookup to one cache line or two and makes conflicts rare. */
export const WAYS = 4;
/** @default 65,536 entries (16,384 sets of 4), about 1.4 MB. */
export const DEFAULT_FLOW_TABLE_SIZE = 65536;
/** Idle lifetime of a UDP flow, as Linux's conntrack for UDP streams and nebula's default. @default 180 s */
export const DEFAULT_UDP_TIMEOUT_MS = 180_000;
/** Idle lifetime of an ICMP echo: a ping that waits longer than this has no reply coming. @default 30 s */
export const DEFAULT_ICMP_TIMEOUT_MS = 30_000;

export interface FlowTableOptions {
  /** Entries; rounded up to a power of two, at least WAYS. @default DEFAULT_FLOW_TABLE_SIZE */
  size?: number;
  /** @default DEFAULT_UDP_TIMEOUT_MS */
  udpTimeoutMs?: number;
  /** @default DEFAULT_ICMP_TIMEOUT_MS */
  icmpTimeoutMs?: number;
}

export class FlowTable {
  readonly capacity: number;
  private readonly setMask: number;
  private readonly proto: Uint8Array; // 0 = empty slot
  private readonly remote: Int32Array;
  private readonly local: Int32Array;
  private readonly ports: Int32Array;
  private readonly expires: Float64Array;
  private readonly udpTimeoutMs: number;
  private readonly icmpTimeoutMs: number;
  /** Live entries overwritten before they expired: a sign the table is too small. */
  evictions = 0;

  constructor(opts: FlowTableOptions = {}) {
    let cap = WAYS;
    while (cap < (opts.size ?? DEFAULT_FLOW_TABLE_SIZE)) cap *= 2;
    this.capacity = cap;
    this.setMask = cap / WAYS - 1;
    this.proto = new Uint8Array(cap);
    this.remote = new Int32Array(cap);
    this.local = new Int32Array(cap);
    this.ports = new Int32Array(cap);
    this.expires = new Float64Array(cap);
    this.udpTimeoutMs = opts.udpTimeoutMs ?? DEFAULT_UDP_TIMEOUT_MS;
    this.icmpTimeoutMs = opts.icmpTimeoutMs ?? DEFAULT_ICMP_TIMEOUT_MS;
  }

  /**
   * Is the flow tracked and alive at `now`? A hit refreshes its idle timer (replies keep a flow
   * alive, as conntrack does). Addresses are int32 (`addr | 0`); ports = remote << 16 | local.
   */
  lookup(proto: number, remote: number, local: number, ports: number, now: number): boolean {
    const base = this.setOf(proto, remote, local, ports);
    for (let i = base; i < base + WAYS; i++) {
      if (this.proto[i] === proto && this.remote[i] === remote && this.local[i] === local && this.ports[i] === ports) {
        if (this.expires[i] <= now) return false;
        this.expires[i] = now + this.timeout(proto);
        return true;
      }
    }
    return false;
  }

  /** Track the flow (or refresh it), overwriting the set's entry nearest to expiry if full. */
  insert(proto: number, remote: number, local: number, ports: number, now: number): void {
    const base = this.setOf(proto, remote, local, ports);
    let slot = base;
    let hit = false;
    // Slots are filled in order and never emptied again, so the first empty slot ends the set.
    for (let i = base; i < base + WAYS; i++) {
      if (this.proto[i] === 0) {
        slot = i;
        break;
      }
      if (this.proto[i] === proto && this.remote[i] === remote && this.local[i] === local && this.ports[i] === ports) {
        slot = i;
        hit = true;
        break;
      }
      if (this.expires[i] < this.expires[slot]) slot = i;
    }
    if (!hit && this.proto[slot] !== 0 && this.expires[slot] > now) this.evictions++;
    this.proto[slot] = proto;
    this.remote[slot] = remote;
    this.local[slot] = local;
    this.ports[slot] = ports;
    this.expires[slot] = now + this.timeout(proto);
  }

  /** Live entries at `now` (walks the table: for stats and tests, not the data path). */
  size(now: number): number {
    let n = 0;
    for (let i = 0; i < this.capacity; i++) if (this.proto[i] !== 0 && this.expires[i] > now) n++;
    return n;
  }

  private timeout(proto: number): number {
    return proto === IP_PROTO_ICMP ? this.icmpTimeoutMs : this.udpTimeoutMs;
  }

  /** First slot of the flow's set: a multiplicative mix of the key words (murmur3's finaliser constants). */
  private setOf(proto: number, remote: number, local: number, ports: number): number {
    let h = Math.imul(remote ^ proto, 0x9e3779b1);
    h = Math.imul(h ^ local ^ (h >>> 15), 0x85ebca6b);
    h = Math.imul(h ^ ports ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    return (h & this.setMask) * WAYS;
  }
}
