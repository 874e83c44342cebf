/**
 * The receiving agent's packet filter (issue 10): the last of the three places policy is
 * enforced, after the coordinator's peer maps and the relay. It runs on every decrypted
 * inbound packet, after cryptokey routing has proved the inner source belongs to the peer, so
 * the caller passes the peer's compiled PortSet (policy's `inboundFrom`, kept per peer: no
 * lookup by tags here). Pure and allocation-free per packet: headers are read from the buffer,
 * replies are tracked in a fixed-size typed-array table (flow-table.ts).
 *
 * Inbound, in order:
 *   1. structure: IPv4, header and total length inside the region          else 'malformed'
 *   2. destination is one of the member's own addresses (its virtual IP, and its original IP,
 *      which a peer in transparent mode dials): a peer may not use us to reach anything else
 *                                                                          else 'not-our-address'
 *   3. non-first fragments pass (see FRAGMENTS below); first fragments are checked as packets
 *   4. per protocol, a packet that opens a flow needs the peer's PortSet   else 'policy':
 *      TCP  a SYN without ACK needs the port. Every other segment passes without state.
 *      UDP  passes if the port is allowed, or if it answers a flow we opened (noteOutbound).
 *      ICMP echo request (and any other type that is neither reply nor error) needs `icmp`;
 *           an echo reply must answer an echo request we sent; an error (unreachable, time
 *           exceeded, parameter problem) must quote a packet sent from one of our addresses.
 *      other protocols need `*`.
 *
 * TCP WITHOUT STATE (as Tailscale's wgengine/filter does; nebula tracks TCP too): a TCP
 * connection cannot be opened without a SYN, so letting every non-SYN segment through still
 * lets `from` open and not `to`. A stray ACK or RST reaches the kernel, which answers it with a
 * RST or ignores it, as it would on a LAN; SYN-cookie ACKs need the kernel's secret. What it
 * buys: the bulk of the traffic (S dials agents at high rates with large payloads) costs a
 * flag test and no table lookup, the table holds only UDP and pings, and established
 * connections survive an agent restart or a table eviction. The cost: tightening a policy stops
 * new connections, not established ones.
 *
 * UDP has no SYN, so replies need state: the outbound path calls noteOutbound, which records
 * UDP flows and echo requests and returns at once for everything else (TCP first).
 * Tailscale keeps 512 UDP flows in an LRU; a controller talking to thousands of agents needs
 * more, hence a 65,536-entry table with idle expiry (UDP 180 s, ICMP 30 s). With no policy
 * every peer's set is PortSet.ALL and no lookup happens, but noteOutbound still records, so
 * replies to flows already open keep passing when a policy is set later.
 *
 * FRAGMENTS: the kernel reassembles nothing without the first fragment, and the first fragment
 * is filtered like a whole packet (it must hold the whole transport header we read, else
 * 'malformed': the tiny-fragment attack of RFC 1858). Later fragments carry no ports, so they
 * pass, unless their offset is so small they could overwrite bytes we inspected in the first
 * (the overlapping-fragment attack): those are 'malformed'.
 */
import type { Clock } from '../common';
import type { PortSet } from '../policy';
import { IP_PROTO_ICMP, IP_PROTO_TCP, IP_PROTO_UDP } from '../protocol';
import { FlowTable, type FlowTableOptions } from './flow-table';

/** Why the filter dropped an inbound packet; each is also a metric label. */
export const FLOW_DROP_REASONS = [
  'malformed', // not a whole IPv4 packet, a first fragment too short for its transport header, or an overlapping fragment
  'not-our-address', // inner destination is not one of the member's own addresses
  'policy', // opens a flow the peer's PortSet does not allow, or "answers" a flow we never opened
] as const;
export type FlowDropReason = (typeof FLOW_DROP_REASONS)[number];
export type FlowVerdict = 'pass' | FlowDropReason;

/**
 * Smallest offset (8-byte blocks) of a later fragment: 24 bytes, past every transport byte
 * the filter reads (TCP's 20-byte header; an ICMP error's quoted source at bytes 20-23).
 * Real fragmenters never go that low: Linux fragments at the path MTU (at least 552), so a
 * first fragment carries hundreds of bytes.
 */
export const MIN_LATER_FRAGMENT_BLOCKS = 3;
/** noteOutbound skips refreshing the flow it refreshed last for this long (bursts of one flow). */
export const NOTE_REFRESH_MS = 1000;

const TCP_SYN = 0x02;
const TCP_ACK = 0x10;
const ICMP_ECHO_REPLY = 0;
const ICMP_UNREACHABLE = 3;
const ICMP_ECHO_REQUEST = 8;
const ICMP_TIME_EXCEEDED = 11;
const ICMP_PARAMETER_PROBLEM = 12;

export interface FlowFilterOptions extends FlowTableOptions {
  /** The member's own IPv4 addresses, host-order uint32: its virtual IP, plus its original IP (transparent mode dials it). */
  localAddresses: readonly number[];
}

export class FlowFilter {
  /** Drops by reason, plain numbers (read them into metrics; never reset here). */
  readonly drops: Record<FlowDropReason, number> = { malformed: 0, 'not-our-address': 0, policy: 0 };
  readonly table: FlowTable;
  private locals = new Int32Array(0);
  // The flow noteOutbound refreshed last, and when: a burst of one flow costs no table walk.
  private lastProto = 0;
  private lastRemote = 0;
  private lastLocal = 0;
  private lastPorts = 0;
  private lastNoted = -Infinity;

  constructor(private readonly clock: Clock, opts: FlowFilterOptions) {
    this.table = new FlowTable(opts);
    this.setLocalAddresses(opts.localAddresses);
  }

  /** Replace the member's own addresses (e.g. when transparent mode learns its original IP). */
  setLocalAddresses(addrs: readonly number[]): void {
    this.locals = Int32Array.from(addrs, (a) => a | 0);
  }

  /** The member's own addresses, host-order uint32 (for status). */
  localAddresses(): number[] {
    return Array.from(this.locals, (a) => a >>> 0);
  }

  /**
   * Decide on the decrypted inbound IPv4 packet `buf[off, off+len)` from a peer that may open
   * `ports`. Never throws; counts drops. `len` may exceed the packet (WireGuard padding).
   * `now` (the clock's time) is read only when a reply is looked up; a caller that already
   * holds the batch's time passes it: a clock read costs 100-250 ns on some VMs, more than the
   * whole decision.
   */
  inbound(buf: Uint8Array, off: number, len: number, ports: PortSet, now?: number): FlowVerdict {
    const v = this.decide(buf, off, len, ports, now);
    if (v !== 'pass') this.drops[v]++;
    return v;
  }

  private decide(b: Uint8Array, off: number, len: number, ports: PortSet, now: number | undefined): FlowVerdict {
    if (!(len >= 20) || !(off >= 0) || off + len > b.length) return 'malformed';
    const vihl = b[off];
    const hl = (vihl & 0x0f) << 2;
    const total = (b[off + 2] << 8) | b[off + 3];
    if (vihl >> 4 !== 4 || hl < 20 || total < hl || total > len) return 'malformed';
    const dst = (b[off + 16] << 24) | (b[off + 17] << 16) | (b[off + 18] << 8) | b[off + 19];
    if (!this.isLocal(dst)) return 'not-our-address';
    const fragOffset = ((b[off + 6] << 8) | b[off + 7]) & 0x1fff;
    if (fragOffset !== 0) return fragOffset < MIN_LATER_FRAGMENT_BLOCKS ? 'malformed' : 'pass';

    const proto = b[off + 9];
    const p = off + hl; // transport header
    const plen = total - hl;
    if (proto === IP_PROTO_TCP) {
      if (plen < 20) return 'malformed';
      if ((b[p + 13] & (TCP_SYN | TCP_ACK)) !== TCP_SYN) return 'pass';
      return ports.allowsTcp((b[p + 2] << 8) | b[p + 3]) ? 'pass' : 'policy';
    }
    if (proto === IP_PROTO_UDP) {
      if (plen < 8) return 'malformed';
      if (ports.allowsUdp((b[p + 2] << 8) | b[p + 3])) return 'pass';
      const src = (b[off + 12] << 24) | (b[off + 13] << 16) | (b[off + 14] << 8) | b[off + 15];
      const pp = (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]; // remote port << 16 | local port
      return this.table.lookup(IP_PROTO_UDP, src, dst, pp, now ?? this.clock.now()) ? 'pass' : 'policy';
    }
    if (proto === IP_PROTO_ICMP) {
      if (plen < 8) return 'malformed';
      const type = b[p];
      if (type === ICMP_ECHO_REPLY) {
        if (ports.allowsOther()) return 'pass'; // `*`: nothing to check (and no policy means `*`)
        const src = (b[off + 12] << 24) | (b[off + 13] << 16) | (b[off + 14] << 8) | b[off + 15];
        const id = (b[p + 4] << 8) | b[p + 5];
        return this.table.lookup(IP_PROTO_ICMP, src, dst, id, now ?? this.clock.now()) ? 'pass' : 'policy';
      }
      if (type === ICMP_UNREACHABLE || type === ICMP_TIME_EXCEEDED || type === ICMP_PARAMETER_PROBLEM) {
        // The quote: the offending packet's IP header (+ 8 bytes); its source must be ours.
        if (plen < 8 + 20) return 'malformed';
        const q = p + 8;
        const quotedSrc = (b[q + 12] << 24) | (b[q + 13] << 16) | (b[q + 14] << 8) | b[q + 15];
        return this.isLocal(quotedSrc) || ports.allowsOther() ? 'pass' : 'policy';
      }
      return ports.allowsIcmp() ? 'pass' : 'policy';
    }
    return ports.allowsOther() ? 'pass' : 'policy';
  }

  /**
   * Record the outbound IPv4 packet `buf[off, off+len)` (TUN → peer) if its replies will need
   * it: UDP flows and ICMP echo requests sent from one of our addresses. Everything else
   * returns after a byte or two; call it on every outbound packet. Never throws. `now` as for
   * `inbound`.
   */
  noteOutbound(b: Uint8Array, off: number, len: number, now?: number): void {
    if (!(len >= 20) || !(off >= 0) || off + len > b.length) return;
    const proto = b[off + 9];
    if (proto !== IP_PROTO_UDP && proto !== IP_PROTO_ICMP) return; // TCP: replies pass without state
    const vihl = b[off];
    const hl = (vihl & 0x0f) << 2;
    const total = (b[off + 2] << 8) | b[off + 3];
    if (vihl >> 4 !== 4 || hl < 20 || total > len || total < hl + 8) return;
    if ((((b[off + 6] << 8) | b[off + 7]) & 0x1fff) !== 0) return; // later fragment: no ports
    const p = off + hl;
    let ports: number;
    if (proto === IP_PROTO_UDP) {
      ports = (b[p + 2] << 24) | (b[p + 3] << 16) | (b[p] << 8) | b[p + 1]; // as the reply will carry them
    } else {
      if (b[p] !== ICMP_ECHO_REQUEST) return;
      ports = (b[p + 4] << 8) | b[p + 5];
    }
    const src = (b[off + 12] << 24) | (b[off + 13] << 16) | (b[off + 14] << 8) | b[off + 15];
    if (!this.isLocal(src)) return; // its reply would be dropped as not-our-address anyway
    const dst = (b[off + 16] << 24) | (b[off + 17] << 16) | (b[off + 18] << 8) | b[off + 19];
    const t = now ?? this.clock.now();
    if (proto === this.lastProto && dst === this.lastRemote && src === this.lastLocal && ports === this.lastPorts &&
      t - this.lastNoted < NOTE_REFRESH_MS) return;
    this.table.insert(proto, dst, src, ports, t);
    this.lastProto = proto;
    this.lastRemote = dst;
    this.lastLocal = src;
    this.lastPorts = ports;
    this.lastNoted = t;
  }

  private isLocal(addr: number): boolean {
    const l = this.locals;
    for (let i = 0; i < l.length; i++) if (l[i] === addr) return true;
    return false;
  }
}
