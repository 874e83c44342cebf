/**
 * One WireGuard peer of this member: its keys, the prefixes it owns, where to reach it,
 * its session keypairs (previous/current/next, rotated as in wireguard-go's
 * noise-protocol.go) and the packets waiting for a session.
 *
 * Lazy: until the first packet to or from it a peer is a directory record (key, prefixes,
 * endpoint, inbound ports, counters). Its session state (`PeerSession`: the precomputed
 * static-static DH and mac keys, the cookie generator, the timers) is made on first use of
 * `crypto`, `cookies` or `timers` (an outbound packet routed to it, a handshake message from
 * its key) and dropped by `trim()` once nothing is in flight (peer-set.ts trimIdle). What
 * guards against replays survives a trim: the newest initiation timestamp accepted from it
 * and when, stay on the record (a replayed old initiation is still refused).
 */
import { keyFromBase64, type Keypair, type TimerStateMachine, type PeerCrypto, type InitiatorState, type CookieGenerator } from '../protocol';
import type { Prefix } from '../common';
import { Endpoint, type EndpointKind } from './endpoint';
import { PortSet } from '../policy';

/** Packets held while a handshake is under way (wireguard-go's QueueStagedSize). Oldest dropped first. */
export const MAX_STAGED_PACKETS = 128;

export interface PeerStats {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  handshakes: number;
  /** Wall-clock ms of the last completed handshake, 0 if none. */
  lastHandshakeWallMs: number;
}

/** What a peer holds only while it talks. */
export interface PeerSession {
  readonly crypto: PeerCrypto;
  readonly cookies: CookieGenerator;
  readonly timers: TimerStateMachine;
}

/** Makes a peer's session state (and notes the peer as live): the peer set. */
export interface PeerSessionFactory {
  materialise(peer: Peer): PeerSession;
  /** Its handshake crypto alone (after its preshared key changed). */
  crypto(peer: Peer): PeerCrypto;
  /** Its endpoint changed (the peer set keeps its index of direct endpoints by IP). */
  endpointChanged?(peer: Peer): void;
}

export class Peer {
  private session: PeerSession | undefined;
  /** clock.now() when the trim pass first saw it idle (NaN: not idle at the last pass). */
  idleSinceMs = NaN;

  current: Keypair | undefined;
  previous: Keypair | undefined;
  next: Keypair | undefined;

  /** Our side of a handshake we initiated and still wait a response for. */
  initiation: { state: InitiatorState; localIndex: number } | undefined;
  /** TAI64N of the newest initiation we accepted from this peer (replay protection). */
  lastInitiationTimestamp: Uint8Array | undefined;
  /** When we last accepted an initiation, for wireguard-go's flood rule. */
  lastInitiationConsumedAt = -Infinity;

  /**
   * What this peer may open towards us (compiled from its peer-map entry's `inbound`), read by
   * the inbound flow filter for every packet it sends. Replaced, never mutated, when its
   * entry changes. @default PortSet.ALL (no policy)
   */
  inbound: PortSet = PortSet.ALL;

  readonly staged: Buffer[] = [];
  private ep: Endpoint | undefined;
  readonly stats: PeerStats = { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0, handshakes: 0, lastHandshakeWallMs: 0 };

  constructor(
    /** The peer's static public key, base64: its only copy (a controller holds 100k idle peers). */
    readonly publicKeyBase64: string,
    private readonly factory: PeerSessionFactory,
    public allowedIps: Prefix[],
    endpoint: Endpoint | undefined,
    /** Configured preshared key (WireGuard PresharedKey), if any. */
    public presharedKey: Uint8Array | undefined = undefined,
    /** 0 disables (WireGuard PersistentKeepalive, in ms). */
    public persistentKeepaliveMs = 0,
  ) {
    this.ep = endpoint;
  }

  /**
   * Where its messages go. Change it only through this setter or `setEndpoint` (never
   * `endpoint.assign` from outside): the peer set indexes direct endpoints by IP.
   */
  get endpoint(): Endpoint | undefined {
    return this.ep;
  }

  set endpoint(e: Endpoint | undefined) {
    this.ep = e;
    this.factory.endpointChanged?.(this);
  }

  /** Follow the last authenticated packet (roaming): in place, no allocation once it has one. */
  setEndpoint(kind: EndpointKind, ip: number, port: number, vip: number): void {
    const e = this.ep;
    if (!e) this.ep = new Endpoint(kind, ip, port, vip);
    else if (e.equals(kind, ip, port, vip)) return;
    else e.assign(kind, ip, port, vip);
    this.factory.endpointChanged?.(this);
  }

  /**
   * The peer's static public key, decoded when asked (a fresh copy): only making its session
   * state (crypto, cookies) reads it, so an idle peer does not keep a Uint8Array and its
   * ArrayBuffer (~300 bytes of heap for 32 bytes of key).
   */
  get publicKey(): Uint8Array {
    return keyFromBase64(this.publicKeyBase64);
  }

  /** The peer's handshake crypto (static-static DH precomputed); made on first use. */
  get crypto(): PeerCrypto {
    return (this.session ?? this.materialise()).crypto;
  }

  /** mac1/mac2 for messages we send it; made on first use. */
  get cookies(): CookieGenerator {
    return (this.session ?? this.materialise()).cookies;
  }

  /** Its WireGuard timers; made on first use. */
  get timers(): TimerStateMachine {
    return (this.session ?? this.materialise()).timers;
  }

  /** True while it holds session state (crypto, cookies, timers). */
  get live(): boolean {
    return this.session !== undefined;
  }

  private materialise(): PeerSession {
    const s = this.factory.materialise(this);
    this.session = s;
    return s;
  }

  /**
   * Nothing in flight: no keypair, no pending initiation, no staged packet, no timer armed
   * (the timers' zero-keys fires REJECT_AFTER_TIME × 3 after the last session was derived, and
   * a persistent keepalive keeps itself armed).
   */
  get idle(): boolean {
    const s = this.session;
    return !this.current && !this.previous && !this.next && !this.initiation && this.staged.length === 0
      && (s === undefined || s.timers.nextDeadline() === undefined);
  }

  /** Its preshared key changed: new handshakes use crypto made with the new one. */
  refreshCrypto(): void {
    if (this.session) this.session = { ...this.session, crypto: this.factory.crypto(this) };
  }

  /** Drop the session state of an idle peer (true when dropped); the next use makes it again. */
  trim(): boolean {
    if (!this.session || !this.idle) return false;
    this.session.timers.stop();
    this.session = undefined;
    this.idleSinceMs = NaN;
    return true;
  }

  /** Queue a copy of a plaintext packet until a session exists; drops the oldest when full. */
  stage(buf: Buffer, off: number, len: number): boolean {
    let dropped = false;
    if (this.staged.length >= MAX_STAGED_PACKETS) {
      this.staged.shift();
      dropped = true;
    }
    this.staged.push(Buffer.from(buf.subarray(off, off + len)));
    return !dropped;
  }

  /** Every keypair this peer holds, for index-table cleanup. */
  keypairs(): Keypair[] {
    return [this.previous, this.current, this.next].filter((k): k is Keypair => k !== undefined);
  }
}
