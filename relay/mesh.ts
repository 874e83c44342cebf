/**
 * The relay mesh: N relays behind one VIP act as one service. A member's DATA for a
 * destination that is bound to ANOTHER relay (its "home") goes there in exactly one hop:
 *
 *   member A ─► relay 1 (no local session for B) ─MESH_DATA─► relay 2 (B's home) ─► member B
 *
 * Pieces:
 *   - routes: dst vip → home relay, from a MeshRouteSource (Redis: `P:session:<vip>`.relayId
 *     then `P:relay:<id>` mesh address), cached `routeTtlMs`, negative results `negativeTtlMs`,
 *     and invalidated at once by session-up/down events (pub/sub). The cache is a bounded LRU
 *     (`routeCacheSize`); every lookup a member's frame starts is charged to that member's
 *     budget and a relay-wide one (`lookupsPerMemberPerSecond`, `lookupsPerSecond`, at most
 *     `maxLookups` in flight), so DATA to random vips costs bounded memory and Redis work;
 *     past the budget the frame is dropped ('mesh-lookup-limited'). While a route is being
 *     looked up (or its home handshaken), up to 16 frames for it are held and sent
 *     when the route is usable (the rest are dropped as 'mesh-route-pending'); the lookup is
 *     one Redis round trip.
 *   - trust: relays prove the shared mesh key with a HELLO / HELLO_ACK exchange (MAC,
 *     timestamp window, single-use nonce; mesh-frame.ts), which also yields a per-direction
 *     MESH_DATA key. Every MESH_DATA frame carries a counter and a SipHash-2-4 tag over its
 *     header (type, full counter, dst and src vip; the WireGuard payload is authenticated end
 *     to end by the members): a frame is delivered only if it comes from an address that proved the key,
 *     its tag verifies under that sender's key and its counter is new (replay window). So
 *     nobody on the mesh network can forge a source vip (which the policy check and the
 *     members' cryptokey routing rely on) or replay frames. An untrusted sender, or one whose
 *     tags fail, gets MESH_REAUTH (rate-limited), itself MACed with the mesh key like a HELLO
 *     (the two relays share no data key then); a forged or replayed one is dropped
 *     ('mesh-bad-reauth') and costs no handshake.
 *   - access policy: the home relay checks MESH_DATA again (policy-gate.ts), the sender's
 *     tags looked up like any remote member's; a frame from a sender whose tags are being
 *     looked up is held and run through `rerun` when they are known.
 *   - one hop only: a home relay delivers MESH_DATA to its own members or drops it; it never
 *     forwards again, so there are no loops.
 *
 * Hot path: never throws; one copy into a scratch buffer on the sending side (the extra header
 * bytes), none on the receiving side (the header is rewritten in place); one SipHash-2-4 of
 * 17 bytes per frame on each side (relay/siphash.ts, no allocation; bench/mesh-mac.ts).
 */
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { type Clock, type Logger, type DatagramBatch, type DatagramSocket, formatAddr, EventType, type SessionEventType } from '../common';
import { FrameType, RELAY_HEADER_LEN, readU32, MSG_TRANSPORT_MIN_SIZE } from '../protocol';
import {
  MESH_COUNTER_REKEY, MESH_DATA_HEADER_LEN, MESH_FRAME_MIN_LEN, MESH_NONCE_LEN, MESH_OFFSET_DST, MESH_OFFSET_SRC, MeshFrameType, decodeMeshHello,
  decodeMeshReauth, deriveMeshDataKey, encodeMeshHello, encodeMeshReauth, expandMeshCounter, openMeshData, readMeshCounter, sealMeshData, writeMeshDataHeader,
} from './mesh-frame';
import { HeldFrames } from './mesh-held';
import { MeshTrust } from './mesh-trust';
import { HeldPort } from './policy-held';
import { POLICY_OFF, type PolicyGate } from './policy-gate';
import { WorkLimiter } from './rate-limit';
import type { SessionTable } from './session-table';
import type { RelayStats } from './stats';

/** Where a member lives when it is not here. */
export interface MeshHome {
  relayId: string;
  /** mesh address, IPv4 host-order */
  addr: number;
  port: number;
}

export interface MeshSessionEvent {
  type: SessionEventType;
  vip: number;
  relayId: string;
  /** The relay's mesh address, when the event carries it (saves a lookup; follows restarts). */
  mesh?: { addr: number; port: number };
}

/** Route lookups and invalidation events (RedisMeshRegistry in production, a Map in tests). */
export interface MeshRouteSource {
  /** The home relay of `vip` if it is another relay; undefined if none (or this relay). */
  lookupHome(vip: number, selfId: string): Promise<MeshHome | undefined>;
  /** Called for every session event; also with undefined after a reconnect (events may be lost). */
  onEvent(listener: (e: MeshSessionEvent | undefined) => void): void;
}

/** SENT: on its way; HELD: kept until the route is usable; PENDING: route not usable, frame
 *  dropped (hold queue full); NONE: no other relay has this member; LIMITED: the route is not
 *  cached and the sender (or the relay) is over its route lookup budget, frame dropped. */
export const MeshForwardResult = { SENT: 0, PENDING: 1, NONE: 2, HELD: 3, LIMITED: 4 } as const;
export type MeshForwardResult = (typeof MeshForwardResult)[keyof typeof MeshForwardResult];

export interface MeshInit {
  relayId: string;
  /** 32-byte MAC key (deriveMeshKey of the shared secret). Never logged. */
  key: Uint8Array;
  /** @default 30_000 */
  routeTtlMs?: number;
  /** @default 1000 */
  negativeTtlMs?: number;
  /** Routes cached (positive and negative), least recently used evicted first. @default 65_536 */
  routeCacheSize?: number;
  /** Route lookups (Redis round trips) started per second for one sending member; burst 2×. @default 50 */
  lookupsPerMemberPerSecond?: number;
  /** Route lookups started per second by the whole relay (and its burst). @default 2000 */
  lookupsPerSecond?: number;
  /** Route lookups in flight at once. @default 256 */
  maxLookups?: number;
  /** Minimum interval between HELLOs to one peer, ms. @default 250 */
  helloRetryMs?: number;
  /** Accepted |clock difference| between relays for HELLO timestamps, ms. @default 30_000 */
  maxSkewMs?: number;
  /** Re-HELLO every peer this often (refreshes its trust after it restarted). @default 10_000 */
  refreshMs?: number;
}

export interface MeshComponents {
  logger: Logger;
  clock: Clock;
  /** The mesh UDP socket (not the member socket). */
  socket: DatagramSocket;
  routes: MeshRouteSource;
}

/** What the relay lends the mesh to deliver to its own members. */
export interface MeshLocal {
  sessions: SessionTable;
  memberSocket: DatagramSocket;
  stats: RelayStats;
  /** The relay's access policy, checked again on MESH_DATA. */
  policy?: PolicyGate;
}

interface Peer {
  id: string;
  addr: number;
  port: number;
  ready: boolean;
  lastHelloAt: number;
  nonce: Uint8Array;
  /** MESH_DATA key towards this peer, from our last HELLO it ACKed; undefined until then. */
  txKey: Uint8Array | undefined;
  txCounter: number;
  /** Authentic MESH_REAUTHs from it that made us HELLO again. */
  reauths: number;
}

interface Route {
  peer: Peer | undefined;
  until: number;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export class Mesh {
  private readonly o: Required<MeshInit>;
  private readonly log: Logger;
  private readonly wallNow: () => number;
  private local: MeshLocal | undefined;
  private readonly peers = new Map<string, Peer>();
  /** dst vip → home (or a negative entry): bounded LRU, so DATA to random vips cannot grow it. */
  private readonly routes: LRUCache<number, Route>;
  /** Route lookups per sending member and in all: a bound member cannot buy unbounded Redis work. */
  private readonly lookupBudget: WorkLimiter;
  private lookupCount = 0;
  private readonly pending = new Set<number>();
  /** Bumped on every invalidation; a lookup that started before one is not cached. */
  private epoch = 0;
  /** A route lookup failed and none has succeeded since (logged once per streak). */
  private lookupsFailing = false;
  private readonly trust: MeshTrust;
  private readonly held = new HeldFrames();
  private readonly scratch = Buffer.alloc(MESH_DATA_HEADER_LEN + 65536);
  private timer: NodeJS.Timeout | undefined;
  private closed = true;
  private dirty = false;

  constructor(init: MeshInit, private readonly c: MeshComponents) {
    this.o = {
      routeTtlMs: 30_000, negativeTtlMs: 1000, helloRetryMs: 250, maxSkewMs: 30_000, refreshMs: 10_000, routeCacheSize: 65_536,
      lookupsPerMemberPerSecond: 50, lookupsPerSecond: 2000, maxLookups: 256, ...stripUndefined(init), relayId: init.relayId, key: init.key,
    };
    if (init.key.length !== 32) throw new RangeError('mesh key must be 32 bytes');
    this.routes = new LRUCache<number, Route>({ max: this.o.routeCacheSize });
    this.lookupBudget = new WorkLimiter(c.clock.now(), {
      perKeyPerSecond: this.o.lookupsPerMemberPerSecond, perKeyBurst: 2 * this.o.lookupsPerMemberPerSecond,
      globalPerSecond: this.o.lookupsPerSecond, globalBurst: this.o.lookupsPerSecond,
    });
    this.trust = new MeshTrust(2 * this.o.maxSkewMs);
    this.log = c.logger.child({ relay: init.relayId, part: 'mesh' });
    // HELLO timestamps compare wall clocks across relays (monotonic clocks are per host).
    this.wallNow = () => c.clock.wallMs();
    c.routes.onEvent((e) => this.onSessionEvent(e));
  }

  get meshAddress(): { ip: string; port: number } {
    return this.c.socket.localAddress;
  }

  /** Called once by the relay it belongs to. */
  attach(local: MeshLocal): void {
    this.local = local;
  }

  start(): void {
    if (!this.closed) return;
    this.closed = false;
    this.c.socket.onReceive((b) => this.onMeshBatch(b));
    this.timer = setInterval(() => this.tick(), Math.min(this.o.refreshMs, 1000));
    this.timer.unref();
    const a = this.c.socket.localAddress;
    this.log.info({ meshAddr: `${a.ip}:${a.port}` }, 'mesh started');
  }

  stop(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Known peers and whether each has completed the handshake (status, tests). */
  peerStates(): { id: string; addr: string; ready: boolean; reauths: number }[] {
    return [...this.peers.values()].map((p) => ({ id: p.id, addr: `${formatAddr(p.addr)}:${p.port}`, ready: p.ready, reauths: p.reauths }));
  }

  /** The cached home relay id of a vip, if any (tests, status). */
  cachedHome(vip: number): string | undefined {
    return this.routes.peek(vip >>> 0)?.peer?.id;
  }

  /** Route cache and lookup counters (tests, status). */
  routeStats(): { cached: number; lookups: number; inflight: number; held: number } {
    return { cached: this.routes.size, lookups: this.lookupCount, inflight: this.pending.size, held: this.held.size };
  }

  /**
   * Before the access policy check of a frame for a remote destination (whose tags may need a
   * lookup of their own): NONE when the destination is known to be nowhere (a fresh negative
   * entry: no tags lookup is worth it), LIMITED when its route is unknown and the sender is over
   * its lookup budget, SENT ("go on") otherwise, with the route lookup started.
   */
  precheck(srcVip: number, dstVip: number, now: number): MeshForwardResult {
    const r = this.routes.get(dstVip);
    if (r !== undefined) return r.peer === undefined && r.until > now ? MeshForwardResult.NONE : MeshForwardResult.SENT;
    if (this.pending.has(dstVip)) return MeshForwardResult.SENT;
    return this.budgetedLookup(srcVip, dstVip, now) ? MeshForwardResult.SENT : MeshForwardResult.LIMITED;
  }

  /** Start a lookup for `dstVip` on `srcVip`'s budget; false when over budget (or too many in flight). */
  private budgetedLookup(srcVip: number, dstVip: number, now: number): boolean {
    if (this.pending.has(dstVip)) return true;
    if (this.pending.size >= this.o.maxLookups || !this.lookupBudget.take(srcVip, now)) return false;
    this.lookup(dstVip);
    return true;
  }

  /**
   * Forward a member DATA frame (`buf[off..off+len]`, 8-byte member header then the
   * WireGuard message) from `srcVip` to `dstVip`, which has no session here. Hot path.
   */
  forward(buf: Uint8Array, off: number, len: number, srcVip: number, dstVip: number, now: number): MeshForwardResult {
    const r = this.routes.get(dstVip);
    if (r === undefined || r.until <= now) {
      // Every lookup a member's frame starts is on its budget (an expired negative entry too).
      const started = this.budgetedLookup(srcVip, dstVip, now);
      if (r === undefined) return started ? this.hold(buf, off, len, srcVip, dstVip, now) : MeshForwardResult.LIMITED;
      // Serve a stale route while it is revalidated; events keep routes fresh anyway.
    }
    const peer = r.peer;
    if (!peer) return MeshForwardResult.NONE;
    if (peer.ready && peer.txCounter >= MESH_COUNTER_REKEY) {
      // A fresh key long before the counter could lose precision (never in practice: the 10 s refresh re-keys).
      peer.ready = false;
      peer.lastHelloAt = -Infinity;
    }
    if (!peer.ready) {
      this.sendHello(peer, now, MeshFrameType.HELLO);
      return this.hold(buf, off, len, srcVip, dstVip, now);
    }
    const frameLen = MESH_DATA_HEADER_LEN + len - RELAY_HEADER_LEN;
    const s = this.scratch;
    writeMeshDataHeader(s, 0, dstVip, srcVip);
    s.set(buf.subarray(off + RELAY_HEADER_LEN, off + len), MESH_DATA_HEADER_LEN);
    this.seal(peer, s, frameLen);
    this.c.socket.send(s, 0, frameLen, peer.addr, peer.port);
    this.dirty = true;
    if (this.local) this.local.stats.meshSent++;
    return MeshForwardResult.SENT;
  }

  /** Counter and tag for a MESH_DATA frame to a ready peer (one SipHash-2-4 over its header). */
  private seal(peer: Peer, f: Uint8Array, len: number): void {
    sealMeshData(f, 0, len, peer.txKey!, peer.txCounter++);
  }

  /** Keep a copy of the frame until the route is usable: HELD, or PENDING (dropped) when full. */
  private hold(buf: Uint8Array, off: number, len: number, srcVip: number, dstVip: number, now: number): MeshForwardResult {
    return this.held.hold(buf, off, len, srcVip, dstVip, now) ? MeshForwardResult.HELD : MeshForwardResult.PENDING;
  }

  /** After a lookup, handshake or event: send held frames whose route is now usable. */
  private drainHeld(now: number): void {
    if (this.held.size === 0) return;
    const n = this.held.drain(now, (vip) => {
      const r = this.routes.peek(vip);
      if (!r) return undefined;
      if (!r.peer) return null;
      return r.peer.ready ? r.peer : undefined;
    }, (f, peer) => {
      this.seal(peer, f, f.length);
      this.c.socket.send(f, 0, f.length, peer.addr, peer.port);
    });
    if (n > 0) {
      if (this.local) this.local.stats.meshSent += n;
      this.c.socket.flush();
    }
  }

  /** Send what forward() queued; the relay calls this once per member batch. */
  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.c.socket.flush();
  }

  private lookup(vip: number): void {
    if (this.pending.has(vip) || this.closed) return;
    this.pending.add(vip);
    this.lookupCount++;
    const epoch = this.epoch;
    this.c.routes.lookupHome(vip, this.o.relayId).then((home) => {
      this.pending.delete(vip);
      if (this.lookupsFailing) this.log.info('mesh route lookups answer again');
      this.lookupsFailing = false;
      if (this.closed) return;
      if (epoch !== this.epoch) {
        // An event raced the lookup: its answer may be stale; ask again if frames wait.
        if (this.held.has(vip)) this.lookup(vip);
        return;
      }
      const now = this.c.clock.now();
      if (!home) {
        this.routes.set(vip, { peer: undefined, until: now + this.o.negativeTtlMs });
        this.drainHeld(now);
        return;
      }
      const peer = this.upsertPeer(home);
      this.routes.set(vip, { peer, until: now + this.o.routeTtlMs });
      if (!peer.ready) {
        this.sendHello(peer, now, MeshFrameType.HELLO);
        this.c.socket.flush();
      }
      this.drainHeld(now);
    }, (err: Error) => {
      this.pending.delete(vip);
      // Once per failure streak (Redis down: every frame to a stale route retries the lookup).
      if (!this.lookupsFailing) this.log.warn({ err: err.message, vip: formatAddr(vip) }, 'mesh route lookup failed');
      this.lookupsFailing = true;
    });
  }

  private upsertPeer(h: MeshHome): Peer {
    let p = this.peers.get(h.relayId);
    if (!p) {
      p = {
        id: h.relayId, addr: h.addr >>> 0, port: h.port, ready: false, lastHelloAt: -Infinity, nonce: new Uint8Array(MESH_NONCE_LEN),
        txKey: undefined, txCounter: 0, reauths: 0,
      };
      this.peers.set(h.relayId, p);
    } else if (p.addr !== h.addr >>> 0 || p.port !== h.port) {
      p.addr = h.addr >>> 0;
      p.port = h.port;
      p.ready = false;
      p.txKey = undefined;
      p.lastHelloAt = -Infinity;
    }
    return p;
  }

  /** Session events from the other relays (and our own, echoed by pub/sub). */
  onSessionEvent(e: MeshSessionEvent | undefined): void {
    this.epoch++;
    if (!e) {
      // Events may have been missed (the subscription was re-made after a Redis restart or
      // failover): every route must be checked again, but until its lookup answers, the route
      // we had is the best guess — dropping it would hold every frame on a Redis round trip
      // just as Redis comes back. Positive routes turn stale (served while revalidated, as when
      // they time out); negative ones go.
      const negative: number[] = [];
      for (const [vip, r] of this.routes.entries()) {
        if (r.peer) r.until = 0;
        else negative.push(vip);
      }
      for (const vip of negative) this.routes.delete(vip);
      return;
    }
    const vip = e.vip >>> 0;
    if (e.type === EventType.SessionUp && e.relayId !== this.o.relayId) {
      const now = this.c.clock.now();
      const peer = e.mesh ? this.upsertPeer({ relayId: e.relayId, ...e.mesh }) : this.peers.get(e.relayId);
      if (peer) {
        this.routes.set(vip, { peer, until: now + this.o.routeTtlMs });
        if (peer.ready) {
          this.drainHeld(now);
        } else if (this.held.has(vip)) {
          this.sendHello(peer, now, MeshFrameType.HELLO);
          this.flush();
        }
      } else {
        this.routes.delete(vip);
        if (this.held.has(vip)) this.lookup(vip);
      }
      // The member moved away: a stale local binding would shadow the route until it expired.
      const s = this.local?.sessions.byOverlay(vip);
      if (s) {
        this.local!.sessions.remove(s);
        this.log.info({ vip: formatAddr(vip), to: e.relayId }, 'member moved to another relay; local session dropped');
      }
    } else {
      this.routes.delete(vip);
      if (this.held.has(vip)) this.lookup(vip);
    }
  }

  private sendHello(peer: Peer, now: number, type: typeof MeshFrameType.HELLO): void {
    if (now - peer.lastHelloAt < this.o.helloRetryMs) return;
    peer.lastHelloAt = now;
    peer.nonce = randomBytes(MESH_NONCE_LEN);
    const f = encodeMeshHello({ type, timestampMs: this.wallNow(), nonce: peer.nonce, echo: new Uint8Array(MESH_NONCE_LEN), relayId: this.o.relayId }, this.o.key);
    this.c.socket.send(f, 0, f.length, peer.addr, peer.port);
    this.dirty = true;
  }

  /** Housekeeping: prune nonces, refresh peer trust. */
  tick(): void {
    this.trust.tick(this.wallNow());
    const now = this.c.clock.now();
    for (const p of this.peers.values()) {
      if (p.ready && now - p.lastHelloAt >= this.o.refreshMs) {
        p.lastHelloAt = -Infinity;
        this.sendHello(p, now, MeshFrameType.HELLO);
      }
    }
    this.drainHeld(now);
    this.flush();
  }

  private readonly onMeshBatch = (b: DatagramBatch): void => {
    if (this.closed || !this.local) return;
    const now = this.c.clock.now();
    for (let i = 0; i < b.count; i++) this.meshFrame(b.data, b.offsets[i], b.lengths[i], b.addrs[i], b.ports[i], now);
    this.local.memberSocket.flush();
    this.dirty = false;
    this.c.socket.flush();
  };

  /** A held MESH_DATA frame (policy-held.ts) through the mesh port's path again, sent at once. */
  rerun(buf: Buffer, addr: number, port: number): void {
    if (this.closed || !this.local) return;
    // Its tag and counter were checked the first time (checking again would call it a replay).
    this.meshFrame(buf, 0, buf.length, addr, port, this.c.clock.now(), true);
    this.local.memberSocket.flush();
    this.flush();
  }

  private meshFrame(buf: Buffer, off: number, len: number, addr: number, port: number, now: number, verified = false): void {
    const l = this.local!;
    if (len < MESH_FRAME_MIN_LEN) return l.stats.drop('too-short');
    const type = buf[off];
    if (type === MeshFrameType.DATA) {
      const sender = this.trust.sender(addr, port);
      if (!sender) {
        l.stats.drop('mesh-untrusted');
        // At most one MESH_REAUTH per source per tick: never an amplifier.
        if (this.trust.mayReauth(addr, port)) this.sendReauth(addr, port);
        return;
      }
      if (len < MESH_DATA_HEADER_LEN + MSG_TRANSPORT_MIN_SIZE) return l.stats.drop('too-short');
      if (!verified) {
        // The tag first (under the sender's newest key, then its previous one), then the counter.
        const low = readMeshCounter(buf, off);
        let rx = sender.current;
        let n = expandMeshCounter(low, rx.window.highest);
        if (!openMeshData(buf, off, len, rx.key, n)) {
          const prev = sender.previous;
          if (prev !== undefined) n = expandMeshCounter(low, prev.window.highest);
          if (prev === undefined || !openMeshData(buf, off, len, prev.key, n)) {
            l.stats.drop('mesh-bad-mac');
            // A sender that lost our key (we restarted and it re-keyed elsewhere) handshakes again.
            if (this.trust.mayReauth(addr, port)) this.sendReauth(addr, port);
            return;
          }
          rx = prev;
        }
        if (!rx.window.accept(n)) return l.stats.drop('mesh-replayed');
      }
      const dst = l.sessions.byOverlay(readU32(buf, off + MESH_OFFSET_DST));
      if (!dst) return l.stats.drop('mesh-unknown-destination');
      const gate = l.policy;
      if (gate !== undefined && gate.mode !== POLICY_OFF) {
        const srcVip = readU32(buf, off + MESH_OFFSET_SRC);
        const c = gate.remoteClass(srcVip);
        if (c < 0) return gate.hold(srcVip, HeldPort.MESH, buf, off, len, addr, port, now);
        if (!gate.admit(c, dst.policyClass, srcVip, dst.vip, now)) return;
      }
      // bytes 4.. become a member DATA frame: [0x10 0 0 0][src vip][WireGuard message]
      const m = off + MESH_OFFSET_DST;
      buf[m] = FrameType.DATA;
      buf[m + 1] = 0;
      buf[m + 2] = 0;
      buf[m + 3] = 0;
      l.memberSocket.send(buf, m, len - MESH_OFFSET_DST, dst.addr, dst.port);
      l.stats.meshDelivered++;
      l.stats.framesForwarded++;
      l.stats.bytesForwarded += len - MESH_OFFSET_DST;
      return;
    }
    if (type === MeshFrameType.HELLO || type === MeshFrameType.HELLO_ACK) return this.onHello(buf, off, len, addr, port, now);
    if (type === MeshFrameType.REAUTH) return this.onReauth(buf, off, len, addr, port, now);
    l.stats.drop('unknown-type');
  }

  /** "HELLO again, please" (rate-limited by the caller), MACed with the mesh key (mesh-frame.ts). */
  private sendReauth(addr: number, port: number): void {
    const f = encodeMeshReauth({ timestampMs: this.wallNow(), nonce: randomBytes(MESH_NONCE_LEN), relayId: this.o.relayId }, this.o.key);
    this.c.socket.send(f, 0, f.length, addr, port);
  }

  /**
   * A peer relay asks for a new HELLO. Only an authentic, fresh, unused REAUTH from the relay
   * it names, at that relay's mesh address, counts: anything else would let whoever can send
   * to the mesh port make this relay drop its trusted state and re-handshake at will.
   */
  private onReauth(buf: Buffer, off: number, len: number, addr: number, port: number, now: number): void {
    const l = this.local!;
    const r = decodeMeshReauth(buf, off, len, this.o.key);
    if (!r || Math.abs(this.wallNow() - r.timestampMs) > this.o.maxSkewMs || r.relayId === this.o.relayId) return l.stats.drop('mesh-bad-reauth');
    const p = this.peers.get(r.relayId);
    if (!p || p.addr !== addr >>> 0 || p.port !== port) return l.stats.drop('mesh-bad-reauth');
    if (!this.trust.firstUse(r.nonce, r.timestampMs)) return l.stats.drop('mesh-bad-reauth');
    p.reauths++;
    p.ready = false;
    p.lastHelloAt = -Infinity;
    this.sendHello(p, now, MeshFrameType.HELLO);
  }

  private onHello(buf: Buffer, off: number, len: number, addr: number, port: number, now: number): void {
    const l = this.local!;
    const h = decodeMeshHello(buf, off, len, this.o.key);
    const wall = this.wallNow();
    if (!h || Math.abs(wall - h.timestampMs) > this.o.maxSkewMs || h.relayId === this.o.relayId) return l.stats.drop('mesh-bad-hello');
    if (!this.trust.firstUse(h.nonce, h.timestampMs)) return l.stats.drop('mesh-bad-hello');
    if (h.type === MeshFrameType.HELLO_ACK) {
      const p = this.peers.get(h.relayId);
      if (!p || !Buffer.from(p.nonce).equals(Buffer.from(h.echo))) return l.stats.drop('mesh-bad-hello');
      // Our HELLO's nonce and its ACK's: the key our MESH_DATA to this peer is sealed with.
      p.txKey = deriveMeshDataKey(this.o.key, p.nonce, h.nonce, this.o.relayId, h.relayId);
      p.txCounter = 0;
      if (!p.ready) this.log.info({ peer: h.relayId, meshAddr: `${formatAddr(addr)}:${port}` }, 'mesh peer ready');
      p.ready = true;
      this.drainHeld(now);
      return;
    }
    const ackNonce = randomBytes(MESH_NONCE_LEN);
    this.trust.trust(addr, port, h.relayId, deriveMeshDataKey(this.o.key, h.nonce, ackNonce, h.relayId, this.o.relayId));
    const ack = encodeMeshHello({ type: MeshFrameType.HELLO_ACK, timestampMs: wall, nonce: ackNonce, echo: h.nonce, relayId: this.o.relayId }, this.o.key);
    this.c.socket.send(ack, 0, ack.length, addr, port);
  }
}
