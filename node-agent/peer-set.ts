/**
 * The member's peers, changeable at runtime (static config, or the coordinator's pushed peer
 * map): by public key, and by address for routing (longest prefix of AllowedIPs, which is
 * also the inbound source check: cryptokey routing).
 *
 * O(change), not O(peers): an upsert or removal touches only that peer's own routes; a peer
 * is a directory record until it is used (peer.ts), and `live()` lists only the peers with
 * session state, so the timer tick and `trimIdle` cost O(live peers). Direct endpoints are
 * indexed by IP (peer.ts tells the set when one changes), so finding the sender of a packet
 * under an unknown session index is O(1) too.
 */
import { AllowedIps, createPeerCrypto, type PeerCrypto, type LocalIdentity, CookieGenerator, TimerStateMachine, type TimerConfig, keyFromBase64, isLowOrderPoint, HandshakeKeyError } from '../protocol';
import type { Clock, Prefix } from '../common';
import { PortSet } from '../policy';
import { EndpointKind, type Endpoint } from './endpoint';
import { Peer, type PeerSession, type PeerSessionFactory } from './peer';

export interface PeerSpec {
  publicKey: string;
  allowedIps: Prefix[];
  endpoint?: Endpoint;
  presharedKey?: string;
  persistentKeepaliveSec?: number;
  /** What the peer may open towards us (inbound-ports.ts compiles it). @default PortSet.ALL */
  inbound?: PortSet;
}

/** Idle live peers keep their session state this long (a minute: long enough that a failing
 *  handshake does not remake the crypto per attempt, short against the 540 s before it). */
export const IDLE_TRIM_MS = 60_000;

export class PeerSet implements PeerSessionFactory {
  readonly routes = new AllowedIps<Peer>();
  private readonly byKey = new Map<string, Peer>();
  /** Peers holding session state (made on first use, dropped by trimIdle). */
  private readonly liveSet = new Set<Peer>();
  /** Peers by the IPv4 address of their direct endpoint (several may share one, behind a NAT). */
  private readonly byDirectIp = new Map<number, Peer[]>();
  /** The address each peer is indexed under in byDirectIp. */
  private readonly indexedIp = new Map<Peer, number>();
  /** Session states made so far (tests and metrics: lazy peers come and go). */
  materialised = 0;

  constructor(
    private readonly local: LocalIdentity,
    private readonly clock: Clock,
    private readonly timerConfig: TimerConfig,
    /** Called when a peer goes away, so its indices can be released. */
    private readonly onRemove: (peer: Peer) => void = () => {},
    /** How long a live peer stays idle before its session state is dropped. @default IDLE_TRIM_MS */
    readonly idleTrimMs: number = IDLE_TRIM_MS,
  ) {}

  get(publicKeyBase64: string): Peer | undefined {
    return this.byKey.get(publicKeyBase64);
  }

  /** Lookup by raw public key (handshake initiations name the sender this way). */
  getByKey(publicKey: Uint8Array): Peer | undefined {
    return this.byKey.get(Buffer.from(publicKey).toString('base64'));
  }

  /** A peer whose direct endpoint has this IPv4 address (the first indexed, when several share it); O(1). */
  byDirectSource(ip: number): Peer | undefined {
    return this.byDirectIp.get(ip)?.[0];
  }

  /** peer.ts: `peer`'s endpoint changed; move it in the direct-IP index. */
  endpointChanged(peer: Peer): void {
    const e = peer.endpoint;
    const ip = e && e.kind === EndpointKind.Direct && this.byKey.get(peer.publicKeyBase64) === peer ? e.ip : undefined;
    const old = this.indexedIp.get(peer);
    if (old === ip) return;
    if (old !== undefined) this.unindex(peer, old);
    if (ip === undefined) return;
    this.indexedIp.set(peer, ip);
    const list = this.byDirectIp.get(ip);
    if (list) list.push(peer);
    else this.byDirectIp.set(ip, [peer]);
  }

  private unindex(peer: Peer, ip: number): void {
    this.indexedIp.delete(peer);
    const list = this.byDirectIp.get(ip);
    if (!list) return;
    const i = list.indexOf(peer);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byDirectIp.delete(ip);
  }

  all(): IterableIterator<Peer> {
    return this.byKey.values();
  }

  get size(): number {
    return this.byKey.size;
  }

  /** The peers holding session state now: what the timers must look at. */
  live(): IterableIterator<Peer> {
    return this.liveSet.values();
  }

  get liveCount(): number {
    return this.liveSet.size;
  }

  /** peer.ts calls this on a peer's first use: its crypto (one X25519), cookies and timers. */
  materialise(peer: Peer): PeerSession {
    const crypto = this.crypto(peer);
    const timers = new TimerStateMachine(this.timerConfig, { clock: this.clock, persistentKeepaliveMs: peer.persistentKeepaliveMs });
    this.materialised++;
    if (this.byKey.get(peer.publicKeyBase64) === peer) this.liveSet.add(peer);
    return { crypto, cookies: new CookieGenerator(peer.publicKey, this.clock), timers };
  }

  crypto(peer: Peer): PeerCrypto {
    return createPeerCrypto(this.local, peer.publicKey, peer.presharedKey);
  }

  /**
   * Drop the session state of every live peer that has had nothing in flight (peer.ts idle)
   * for `idleTrimMs` and that `mayTrim` allows (the device: no session index left); returns
   * how many. A peer that had a session is idle only after its keys were zeroed
   * (REJECT_AFTER_TIME × 3 after the last handshake), so it goes 540 s + idleTrimMs after it
   * last talked. The grace keeps a peer whose handshake just failed (a replay, a flood) from
   * costing a new DH per message.
   */
  trimIdle(now: number, mayTrim: (p: Peer) => boolean = () => true): number {
    let n = 0;
    for (const p of this.liveSet) {
      if (!p.idle || !mayTrim(p)) {
        p.idleSinceMs = NaN;
        continue;
      }
      if (Number.isNaN(p.idleSinceMs)) p.idleSinceMs = now;
      if (now - p.idleSinceMs >= this.idleTrimMs && p.trim()) {
        this.liveSet.delete(p);
        n++;
      }
    }
    return n;
  }

  /** Add a peer or update one in place (keeping its sessions when its key is unchanged). */
  upsert(spec: PeerSpec): Peer {
    let peer = this.byKey.get(spec.publicKey);
    const psk = spec.presharedKey ? keyFromBase64(spec.presharedKey) : undefined;
    const keepaliveMs = (spec.persistentKeepaliveSec ?? 0) * 1000;
    if (!peer) {
      const pub = keyFromBase64(spec.publicKey);
      // Its DH is made on first use: refuse now what could never handshake (createPeerCrypto's check).
      if (isLowOrderPoint(pub)) throw new HandshakeKeyError('peer public key is a low-order point (static-static DH is zero)');
      peer = new Peer(spec.publicKey, this, spec.allowedIps, spec.endpoint, psk, keepaliveMs);
      this.byKey.set(spec.publicKey, peer);
      this.endpointChanged(peer);
    } else {
      this.unroute(peer);
      peer.allowedIps = spec.allowedIps;
      if (spec.endpoint) peer.endpoint = spec.endpoint;
      if (!sameKey(peer.presharedKey, psk)) {
        // The handshake crypto folds the PSK in: new handshakes use the new one (sessions keep theirs).
        peer.presharedKey = psk;
        peer.refreshCrypto();
      }
      peer.persistentKeepaliveMs = keepaliveMs;
      if (peer.live) peer.timers.persistentKeepaliveMs = keepaliveMs;
    }
    peer.inbound = spec.inbound ?? PortSet.ALL;
    for (const c of spec.allowedIps) this.routes.insert(c.addr, c.bits, peer);
    return peer;
  }

  /** Drop the peer's routes by its own prefixes (O(its prefixes), not a scan of the table);
   *  a prefix another peer holds now stays that peer's. */
  private unroute(peer: Peer): void {
    for (const c of peer.allowedIps) if (this.routes.get(c.addr, c.bits) === peer) this.routes.remove(c.addr, c.bits);
  }

  remove(publicKeyBase64: string): boolean {
    const peer = this.byKey.get(publicKeyBase64);
    if (!peer) return false;
    this.byKey.delete(publicKeyBase64);
    this.liveSet.delete(peer);
    const ip = this.indexedIp.get(peer);
    if (ip !== undefined) this.unindex(peer, ip);
    this.unroute(peer);
    this.onRemove(peer);
    return true;
  }
}

function sameKey(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (!a || !b) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
