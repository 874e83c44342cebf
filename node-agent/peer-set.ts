/**
 * The member's peers, changeable at runtime (static config today, the coordinator's
 * pushed peer map tomorrow): by public key, and by address for routing (longest prefix of
 * AllowedIPs, which is also the inbound source check: cryptokey routing).
 */
import { AllowedIps, createPeerCrypto, type LocalIdentity, CookieGenerator, TimerStateMachine, type TimerConfig, keyFromBase64 } from '../protocol';
import type { Clock, Prefix } from '../common';
import { PortSet } from '../policy';
import { EndpointKind, type Endpoint } from './endpoint';
import { Peer } from './peer';

export interface PeerSpec {
  publicKey: string;
  allowedIps: Prefix[];
  endpoint?: Endpoint;
  presharedKey?: string;
  persistentKeepaliveSec?: number;
  /** What the peer may open towards us (inbound-ports.ts compiles it). @default PortSet.ALL */
  inbound?: PortSet;
}

export class PeerSet {
  readonly routes = new AllowedIps<Peer>();
  private readonly byKey = new Map<string, Peer>();

  constructor(
    private readonly local: LocalIdentity,
    private readonly clock: Clock,
    private readonly timerConfig: TimerConfig,
    /** Called when a peer goes away, so its indices can be released. */
    private readonly onRemove: (peer: Peer) => void = () => {},
  ) {}

  get(publicKeyBase64: string): Peer | undefined {
    return this.byKey.get(publicKeyBase64);
  }

  /** Lookup by raw public key (handshake initiations name the sender this way). */
  getByKey(publicKey: Uint8Array): Peer | undefined {
    return this.byKey.get(Buffer.from(publicKey).toString('base64'));
  }

  /** The peer whose direct endpoint has this IPv4 address (few direct peers: a scan is fine). */
  byDirectSource(ip: number): Peer | undefined {
    for (const p of this.byKey.values()) if (p.endpoint && p.endpoint.kind === EndpointKind.Direct && p.endpoint.ip === ip) return p;
    return undefined;
  }

  all(): IterableIterator<Peer> {
    return this.byKey.values();
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Add a peer or update one in place (keeping its sessions when its key is unchanged). */
  upsert(spec: PeerSpec): Peer {
    let peer = this.byKey.get(spec.publicKey);
    if (!peer) {
      const pub = keyFromBase64(spec.publicKey);
      const psk = spec.presharedKey ? keyFromBase64(spec.presharedKey) : undefined;
      const crypto = createPeerCrypto(this.local, pub, psk);
      const timers = new TimerStateMachine(this.timerConfig, { clock: this.clock, persistentKeepaliveMs: (spec.persistentKeepaliveSec ?? 0) * 1000 });
      peer = new Peer(pub, spec.publicKey, crypto, new CookieGenerator(pub, this.clock), timers, spec.allowedIps, spec.endpoint);
      this.byKey.set(spec.publicKey, peer);
    } else {
      this.unroute(peer);
      peer.allowedIps = spec.allowedIps;
      if (spec.endpoint) peer.endpoint = spec.endpoint;
      peer.timers.persistentKeepaliveMs = (spec.persistentKeepaliveSec ?? 0) * 1000;
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
    this.unroute(peer);
    this.onRemove(peer);
    return true;
  }
}
