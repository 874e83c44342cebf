/**
 * An in-memory UDP network (after wireguard-go's conn/bindtest ChannelBind): sockets bound
 * to (ip, port) exchange datagrams in process, each socket a DatagramSocket.
 *
 *   socket.send / sendInPlace ─► queue ─► flush() ─► route (down hosts, drop hook, VIP
 *   balancer) ─► setImmediate (or the delay hook's timer) ─► one DatagramBatch per
 *   destination per flush ─► the destination's handler
 *
 * Delivery is always asynchronous, as from a real socket: a handler never runs inside the
 * sender's flush(). The batch contract is honoured strictly: datagrams sit in the receiving
 * socket's slab at unaligned offsets between poison bytes, the slab is reused for the next batch
 * and poisoned when the handler returns, so a view kept past the handler call reads garbage.
 * `send` copies at once; `sendInPlace` keeps the caller's view and copies it at flush(), so
 * an engine that reuses the memory early sends the wrong bytes. `violations` counts in-place
 * sends into this socket's batches still unflushed when the batch ended, and in-place sends
 * flushed after the batch their bytes live in (here or on a memory TUN) ended: slab-guard.ts.
 *
 * Switches for tests: `setHostDown(ip)` (a dead host: nothing reaches it, nothing leaves it),
 * `dropIf` and `delayMs` hooks, a `tap`, and `addBalancer`, the stand-in for the VIP's load balancer
 * (DNAT to a live backend per new flow, flows pinned like conntrack entries, replies
 * source-NATed back to the VIP).
 */
import type { DatagramBatch, DatagramSocket } from '../../common/packet-io';
import { IDEAL_BATCH_SIZE } from '../../common/packet-io';
import { formatAddr, parseAddr } from '../../common/ipv4';
import { POISON } from './memory-tun';
import { guardSlab, release, retireBatch, stamp } from './slab-guard';

/** One datagram on the wire. Addresses are IPv4 host-order uint32. */
export interface Datagram {
  srcIp: number;
  srcPort: number;
  dstIp: number;
  dstPort: number;
  bytes: Buffer;
}

export const NET_DROP_REASONS = [
  'host-down', // the sender or the receiver is down
  'no-socket', // nothing bound at the destination (or it closed before delivery)
  'no-backend', // sent to a balancer VIP with no live backend
  'hook', // the test's dropIf said so
] as const;
export type NetDropReason = (typeof NET_DROP_REASONS)[number];

export interface MemoryNetworkOptions {
  /** Datagrams per delivered batch. @default IDEAL_BATCH_SIZE */
  batchSize?: number;
}

interface Balancer {
  vip: number;
  port: number;
  backends: { ip: number; port: number }[];
  next: number;
}

const tuple = (ip: number, port: number): string => `${ip >>> 0}:${port}`;

export class MemoryNetwork {
  /** Drop a datagram when this returns true (after the down-host check, before the balancer). */
  dropIf: ((d: Datagram) => boolean) | undefined;
  /** Deliver a datagram after this many ms instead of on the next turn (0: no delay). */
  delayMs: ((d: Datagram) => number) | undefined;
  /** Sees every datagram that survived routing (after NAT), when it is sent. */
  tap: ((d: Datagram) => void) | undefined;
  readonly stats = {
    sent: 0,
    delivered: 0,
    dropped: Object.fromEntries(NET_DROP_REASONS.map((r) => [r, 0])) as Record<NetDropReason, number>,
  };
  readonly batchSize: number;
  private readonly sockets = new Map<string, MemoryDatagramSocket>();
  private readonly everBound: MemoryDatagramSocket[] = [];
  private readonly down = new Set<number>();
  private readonly nextPort = new Map<number, number>();
  private readonly balancers = new Map<string, Balancer>();
  /** client tuple + VIP tuple → backend tuple (conntrack) */
  private readonly flows = new Map<string, { ip: number; port: number }>();
  /** backend tuple + client tuple → the VIP to answer from */
  private readonly reverse = new Map<string, { ip: number; port: number }>();
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(o: MemoryNetworkOptions = {}) {
    this.batchSize = o.batchSize ?? IDEAL_BATCH_SIZE;
  }

  /** Bind a socket at `ip:port` (port 0: an unused ephemeral port). Throws EADDRINUSE. */
  bind(ip: string, port = 0): MemoryDatagramSocket {
    const addr = parseAddr(ip);
    if (port === 0) port = this.ephemeralPort(addr);
    const k = tuple(addr, port);
    if (this.sockets.has(k) || this.balancers.has(k)) {
      throw Object.assign(new Error(`bind ${ip}:${port}: address in use`), { code: 'EADDRINUSE' });
    }
    const s = new MemoryDatagramSocket(this, addr, port);
    this.sockets.set(k, s);
    this.everBound.push(s);
    return s;
  }

  private ephemeralPort(addr: number): number {
    let p = this.nextPort.get(addr) ?? 40000;
    while (this.sockets.has(tuple(addr, p))) p = p >= 65535 ? 40000 : p + 1;
    this.nextPort.set(addr, p >= 65535 ? 40000 : p + 1);
    return p;
  }

  /** A down host neither receives nor sends; datagrams already on their way to it vanish. */
  setHostDown(ip: string, down = true): void {
    const a = parseAddr(ip);
    if (down) this.down.add(a);
    else this.down.delete(a);
  }

  isHostDown(ip: string | number): boolean {
    return this.down.has(typeof ip === 'number' ? ip >>> 0 : parseAddr(ip));
  }

  /**
   * A VIP in front of `backends` (the nftables DNAT stand-in): a new flow (source tuple) goes
   * to the next live backend round-robin, so placement is deterministic in the order flows
   * start; an existing flow stays pinned even after its backend died, as a conntrack entry
   * does, which is why a member fails over by changing its source port.
   */
  addBalancer(vip: { ip: string; port: number }, backends: { ip: string; port: number }[]): void {
    const b: Balancer = { vip: parseAddr(vip.ip), port: vip.port, backends: backends.map((x) => ({ ip: parseAddr(x.ip), port: x.port })), next: 0 };
    this.balancers.set(tuple(b.vip, b.port), b);
  }

  /** Batch-contract violations over every socket ever bound here. */
  get violations(): number {
    return this.everBound.reduce((n, s) => n + s.violations, 0);
  }

  /** Resolves when nothing is in flight (every scheduled delivery has run). */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** @internal A socket's flush: route every queued datagram, deliver asynchronously. */
  transmit(datagrams: Datagram[]): void {
    /** destination tuple → its datagrams of this flush, in order */
    const now = new Map<string, Datagram[]>();
    for (const d of datagrams) {
      this.stats.sent++;
      if (this.down.has(d.srcIp) || this.down.has(d.dstIp)) {
        this.drop('host-down');
        continue;
      }
      if (this.dropIf?.(d)) {
        this.drop('hook');
        continue;
      }
      if (!this.nat(d)) continue;
      this.tap?.(d);
      const k = tuple(d.dstIp, d.dstPort);
      const delay = this.delayMs?.(d) ?? 0;
      if (delay > 0) {
        this.schedule(() => this.deliver(k, [d]), delay);
        continue;
      }
      let list = now.get(k);
      if (!list) now.set(k, (list = []));
      list.push(d);
    }
    if (now.size === 0) return;
    this.schedule(() => {
      for (const [k, list] of now) this.deliver(k, list);
    }, 0);
  }

  /** Balancer DNAT for datagrams to a VIP, SNAT for a backend's replies. False: dropped. */
  private nat(d: Datagram): boolean {
    const b = this.balancers.get(tuple(d.dstIp, d.dstPort));
    if (b) {
      const fk = `${tuple(d.srcIp, d.srcPort)}>${tuple(b.vip, b.port)}`;
      let be = this.flows.get(fk);
      if (!be) {
        const live = b.backends.filter((x) => !this.down.has(x.ip) && this.sockets.has(tuple(x.ip, x.port)));
        if (live.length === 0) {
          this.drop('no-backend');
          return false;
        }
        be = live[b.next++ % live.length];
        this.flows.set(fk, be);
        this.reverse.set(`${tuple(be.ip, be.port)}>${tuple(d.srcIp, d.srcPort)}`, { ip: b.vip, port: b.port });
      }
      d.dstIp = be.ip;
      d.dstPort = be.port;
      return true;
    }
    const vip = this.reverse.get(`${tuple(d.srcIp, d.srcPort)}>${tuple(d.dstIp, d.dstPort)}`);
    if (vip) {
      d.srcIp = vip.ip;
      d.srcPort = vip.port;
    }
    return true;
  }

  /** The backend a flow from `client` to a VIP is pinned to, if any ("ip:port"). */
  backendOf(client: { ip: string; port: number }, vip: { ip: string; port: number }): string | undefined {
    const be = this.flows.get(`${tuple(parseAddr(client.ip), client.port)}>${tuple(parseAddr(vip.ip), vip.port)}`);
    return be ? `${formatAddr(be.ip)}:${be.port}` : undefined;
  }

  /** On arrival, to whatever is bound at the address then (a restarted process gets it). */
  private deliver(k: string, list: Datagram[]): void {
    const dst = this.sockets.get(k);
    const reason = this.down.has(list[0].dstIp) ? 'host-down' : !dst ? 'no-socket' : undefined;
    if (reason) {
      for (let i = 0; i < list.length; i++) this.drop(reason);
      return;
    }
    for (let i = 0; i < list.length; i += this.batchSize) {
      const part = list.slice(i, i + this.batchSize);
      this.stats.delivered += part.length;
      dst!.receive(part);
    }
  }

  private schedule(f: () => void, delayMs: number): void {
    this.inFlight++;
    const run = (): void => {
      try {
        f();
      } finally {
        if (--this.inFlight === 0) {
          const w = this.idleWaiters;
          this.idleWaiters = [];
          for (const r of w) r();
        }
      }
    };
    if (delayMs > 0) setTimeout(run, delayMs);
    else setImmediate(run);
  }

  private drop(r: NetDropReason): void {
    this.stats.dropped[r]++;
  }

  /** @internal */
  unbind(s: MemoryDatagramSocket): void {
    const k = tuple(s.addr, s.port);
    if (this.sockets.get(k) === s) this.sockets.delete(k);
  }
}

interface Queued {
  bytes: Uint8Array;
  inPlace: boolean;
  /** slab-guard generation of the bytes' memory (in place only) */
  stamp: number;
  addr: number;
  port: number;
}

/** Bytes between datagrams in the receive slab (poison), so off-by-some reads show. */
const SLOT_GAP = 13;

export class MemoryDatagramSocket implements DatagramSocket {
  readonly localAddress: { ip: string; port: number };
  /** Datagrams flushed, received, and batch-contract violations (see the file comment). */
  sent = 0;
  received = 0;
  violations = 0;
  closed = false;
  private handler: ((b: DatagramBatch) => void) | undefined;
  private queue: Queued[] = [];
  private slab = Buffer.alloc(0);
  private readonly batch: DatagramBatch;

  constructor(private readonly net: MemoryNetwork, readonly addr: number, readonly port: number) {
    this.localAddress = { ip: formatAddr(addr), port };
    const n = net.batchSize;
    this.batch = {
      count: 0, data: this.slab, offsets: new Uint32Array(n), lengths: new Uint32Array(n),
      addrs: new Uint32Array(n), ports: new Uint32Array(n),
    };
  }

  onReceive(handler: (batch: DatagramBatch) => void): void {
    this.handler = handler;
  }

  send(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void {
    if (this.closed) return;
    this.queue.push({ bytes: Uint8Array.prototype.slice.call(buf, offset, offset + length), inPlace: false, stamp: -1, addr: addr >>> 0, port });
  }

  /** The bytes are read at the next flush(); the caller must not reuse them before. */
  sendInPlace(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void {
    if (this.closed) return;
    this.queue.push({ bytes: buf.subarray(offset, offset + length), inPlace: true, stamp: stamp(buf), addr: addr >>> 0, port });
  }

  flush(): void {
    if (this.closed || this.queue.length === 0) return;
    const q = this.queue;
    this.queue = [];
    this.sent += q.length;
    for (const e of q) if (e.inPlace && !release(e.bytes, e.stamp)) this.violations++;
    // Buffer.from copies: in-place bytes are read now, at flush, not earlier.
    this.net.transmit(q.map((e) => ({ srcIp: this.addr, srcPort: this.port, dstIp: e.addr, dstPort: e.port, bytes: Buffer.from(e.bytes) })));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const e of this.queue) if (e.inPlace) release(e.bytes, e.stamp);
    this.queue = [];
    this.net.unbind(this);
  }

  /** @internal One batch from the network: into the slab, to the handler, then poison. */
  receive(list: Datagram[]): void {
    if (this.closed || !this.handler) return;
    let size = SLOT_GAP;
    for (const d of list) size += d.bytes.length + SLOT_GAP;
    if (this.slab.length < size) {
      this.slab = Buffer.alloc(Math.max(size, 2 * this.slab.length), POISON);
      guardSlab(this.slab);
    }
    const b = this.batch;
    b.data = this.slab;
    b.count = list.length;
    let off = SLOT_GAP;
    list.forEach((d, i) => {
      this.slab.set(d.bytes, off);
      b.offsets[i] = off;
      b.lengths[i] = d.bytes.length;
      b.addrs[i] = d.srcIp;
      b.ports[i] = d.srcPort;
      off += d.bytes.length + SLOT_GAP;
    });
    this.received += list.length;
    try {
      this.handler(b);
    } finally {
      this.violations += retireBatch(this.slab);
      this.slab.fill(POISON, 0, off);
    }
  }
}
