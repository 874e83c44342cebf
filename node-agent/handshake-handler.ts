/**
 * WireGuard handshake messages (types 1–3) for the engine: creating and answering
 * initiations, consuming responses and cookie replies, and rotating keypairs exactly as
 * wireguard-go does (initiator: new keypair becomes current at once; responder: it waits in
 * `next` until the initiator's first transport message confirms it).
 *
 * An incoming initiation or response passes these checks, cheapest first, and only then
 * costs X25519 (wireguard-go device/receive.go RoutineHandshake):
 *   1. mac1       BLAKE2s keyed by our public key             else 'bad-mac1'
 *   2. under load (> 512 handshake messages in the current second, and 1 s after):
 *                 mac2 must carry the cookie of the source;     else a cookie reply (XChaCha,
 *                 no DH) and 'cookie-required'. A spoofed source never sees its cookie.
 *   3. rate       a token bucket per source (protocol/ratelimiter.ts, 20/s, burst 5), always
 *                 on                                            else 'handshake-ratelimited'
 *   4. X25519     consumeInitiation / consumeResponse (then replay, per-peer flood)
 * "Source" is what the network lets a sender choose least: for a relayed message the
 * sender's overlay address (the relay authenticated it), for a direct one its IPv4 address
 * (not the port: a sender picks ports freely).
 */
import { randomBytes } from 'node:crypto';
import { RateLimiter, type RateLimiterOptions, createInitiation, consumeInitiation, createResponse, consumeResponse, type LocalIdentity, CookieChecker, Keypair, tai64nIsAfter, MSG_INITIATION_SIZE, MSG_RESPONSE_SIZE, MSG_COOKIE_REPLY_SIZE } from '../protocol';
import type { Clock, Logger } from '../common';
import { Endpoint, EndpointKind, type OutsideSender } from './endpoint';
import type { IndexTable } from './index-table';
import type { AgentDropReason } from './drop-reason';
import type { Peer } from './peer';
import type { PeerSet } from './peer-set';

/** wireguard-go: at most this many initiations per second from one peer are honoured. */
const INITIATIONS_PER_SECOND = 50;
/** Handshake messages per second above which we ask for cookies (mac2). */
const UNDER_LOAD_HANDSHAKES_PER_SECOND = 512;
/** Stay "under load" this long after the rate drops (wireguard-go UnderLoadAfterTime). */
const UNDER_LOAD_AFTER_MS = 1000;

export interface HandshakeComponents {
  clock: Clock;
  logger: Logger;
  outside: OutsideSender;
  peers: PeerSet;
  indices: IndexTable;
  local: LocalIdentity;
  drop(reason: AgentDropReason): void;
  sendStaged(peer: Peer): void;
  sendKeepalive(peer: Peer): void;
  /** The per-source limit of handshake messages before X25519; `false` switches it off
   *  (only for the bench's comparison). @default RateLimiter's (20/s, burst 5, 8192 sources) */
  handshakeRateLimit?: RateLimiterOptions | false;
}

/** Relayed sources are keyed above 2^32, so an overlay address never shares a bucket with
 *  the same number as a direct IPv4 source. */
const RELAY_SOURCE_BASE = 2 ** 32;

export class HandshakeHandler {
  private readonly cookieChecker: CookieChecker;
  private windowStart = 0;
  private windowCount = 0;
  private underLoadUntil = -Infinity;
  private readonly srcBytes = Buffer.alloc(6);
  private readonly limiter: RateLimiter | undefined;

  constructor(private readonly c: HandshakeComponents) {
    this.cookieChecker = new CookieChecker(c.local.publicKey, c.clock);
    this.limiter = c.handshakeRateLimit === false ? undefined : new RateLimiter(c.clock, c.handshakeRateLimit);
  }

  /** Sources holding a rate-limit bucket now (metrics). */
  get rateLimitSources(): number {
    return this.limiter?.size ?? 0;
  }

  /**
   * Send a handshake initiation if the peer's timers allow it (protocol/timers.ts
   * requestInitiation: a new handshake resets the attempts and is rate limited to one per
   * REKEY_TIMEOUT; retries come from the timers' 'send-initiation').
   */
  initiate(peer: Peer, isRetry: boolean): void {
    const now = this.c.clock.now();
    if (!peer.timers.requestInitiation(isRetry, now) || !peer.endpoint) return;
    if (peer.initiation) this.c.indices.delete(peer.initiation.localIndex);
    const localIndex = this.c.indices.allocate(peer);
    const { message, state } = createInitiation(this.c.local, peer.crypto, localIndex, this.c.clock.wallMs(), randomBytes);
    peer.cookies.addMacs(message);
    peer.initiation = { state, localIndex };
    this.send(peer.endpoint, message);
    peer.timers.handshakeInitiated(now);
    peer.timers.anyAuthenticatedPacketSent(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
  }

  /** After sending on a peer (wireguard-go keepKeyFreshSending): rekey if its timers say so. */
  keepKeyFreshSending(peer: Peer, now: number): void {
    const kp = peer.current;
    if (kp && peer.timers.rekeyOnSend(kp, now)) this.initiate(peer, false);
  }

  /** After an authenticated receive (wireguard-go keepKeyFreshReceiving): rekey if its timers say so. */
  keepKeyFreshReceiving(peer: Peer, now: number): void {
    const kp = peer.current;
    if (kp && peer.timers.rekeyOnReceive(kp, now)) this.initiate(peer, false);
  }

  private send(ep: Endpoint, message: Buffer): void {
    // Handshake messages are rare: give them headroom for a relay header by copying.
    const b = Buffer.allocUnsafe(8 + message.length);
    message.copy(b, 8);
    this.c.outside.send(ep, b, 8, message.length);
  }

  private sourceBytes(kind: EndpointKind, ip: number, port: number, vip: number): Buffer {
    if (kind === EndpointKind.Relay) {
      this.srcBytes.writeUInt32BE(vip, 0);
      this.srcBytes.writeUInt16BE(0, 4);
    } else {
      this.srcBytes.writeUInt32BE(ip, 0);
      this.srcBytes.writeUInt16BE(port, 4);
    }
    return this.srcBytes;
  }

  /** Count handshake messages; under load we demand a valid mac2 (cookie) first. */
  private underLoad(now: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    if (++this.windowCount > UNDER_LOAD_HANDSHAKES_PER_SECOND) this.underLoadUntil = now + UNDER_LOAD_AFTER_MS;
    return now < this.underLoadUntil;
  }

  /** Checks 1-3 of the file comment: mac1; under load mac2 (else a cookie reply); the
   *  source's rate. True if the message may cost X25519. */
  private admit(msg: Buffer, kind: EndpointKind, ip: number, port: number, vip: number): boolean {
    if (!this.cookieChecker.checkMac1(msg)) {
      this.c.drop('bad-mac1');
      return false;
    }
    if (this.underLoad(this.c.clock.now())) {
      const src = this.sourceBytes(kind, ip, port, vip);
      if (!this.cookieChecker.checkMac2(msg, src)) {
        const senderIndex = msg.readUInt32LE(4);
        const reply = this.cookieChecker.createReply(msg, senderIndex, src, randomBytes);
        this.send(new Endpoint(kind, ip, port, vip), reply);
        this.c.drop('cookie-required');
        return false;
      }
    }
    if (this.limiter && !this.limiter.allow(kind === EndpointKind.Relay ? RELAY_SOURCE_BASE + vip : ip)) {
      this.c.drop('handshake-ratelimited');
      return false;
    }
    return true;
  }

  receiveInitiation(buf: Buffer, off: number, len: number, kind: EndpointKind, ip: number, port: number, vip: number): void {
    if (len !== MSG_INITIATION_SIZE) return this.c.drop('outside-malformed');
    const msg = buf.subarray(off, off + len);
    if (!this.admit(msg, kind, ip, port, vip)) return;
    const r = consumeInitiation(this.c.local, msg, (pub) => this.c.peers.getByKey(pub)?.crypto);
    if (!r.ok) return this.c.drop('handshake-failed');
    const peer = this.c.peers.getByKey(r.peer.publicKey);
    if (!peer) return this.c.drop('handshake-failed');
    const now = this.c.clock.now();
    if (peer.lastInitiationTimestamp && !tai64nIsAfter(r.timestamp, peer.lastInitiationTimestamp)) return this.c.drop('handshake-replay');
    if (now - peer.lastInitiationConsumedAt < 1000 / INITIATIONS_PER_SECOND) return this.c.drop('handshake-flood');
    peer.lastInitiationTimestamp = r.timestamp;
    peer.lastInitiationConsumedAt = now;

    const localIndex = this.c.indices.allocate(peer);
    const { message, keys } = createResponse(this.c.local, r.state, localIndex, randomBytes);
    const kp = new Keypair({ ...keys, createdMs: now });
    this.c.indices.setKeypair(localIndex, kp);
    // Responder: the new keypair waits in `next` until the initiator uses it.
    if (peer.next) this.c.indices.delete(peer.next.localIndex);
    if (peer.previous) this.c.indices.delete(peer.previous.localIndex);
    peer.next = kp;
    peer.previous = undefined;
    this.setEndpoint(peer, kind, ip, port, vip);
    peer.cookies.addMacs(message);
    this.send(peer.endpoint!, message);
    peer.stats.handshakes++;
    peer.stats.lastHandshakeWallMs = this.c.clock.wallMs();
    peer.timers.sessionDerived(now);
    peer.timers.anyAuthenticatedPacketSent(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    this.c.logger.debug({ peer: peer.publicKeyBase64.slice(0, 8) }, 'answered handshake initiation');
  }

  receiveResponse(buf: Buffer, off: number, len: number, kind: EndpointKind, ip: number, port: number, vip: number): void {
    if (len !== MSG_RESPONSE_SIZE) return this.c.drop('outside-malformed');
    const msg = buf.subarray(off, off + len);
    if (!this.admit(msg, kind, ip, port, vip)) return;
    const receiver = msg.readUInt32LE(8);
    const entry = this.c.indices.get(receiver);
    const peer = entry?.peer;
    if (!peer || !peer.initiation || peer.initiation.localIndex !== receiver) return this.c.drop('unknown-index');
    const r = consumeResponse(this.c.local, msg, () => ({ peer: peer.crypto, state: peer.initiation!.state }));
    if (!r.ok) return this.c.drop('handshake-failed');
    const now = this.c.clock.now();
    const kp = new Keypair({ ...r.keys, createdMs: now });
    this.c.indices.setKeypair(receiver, kp);
    peer.initiation = undefined;
    // Initiator: the new keypair is current at once.
    if (peer.next) {
      if (peer.previous) this.c.indices.delete(peer.previous.localIndex);
      if (peer.current) this.c.indices.delete(peer.current.localIndex);
      peer.previous = peer.next;
      peer.next = undefined;
    } else {
      if (peer.previous) this.c.indices.delete(peer.previous.localIndex);
      peer.previous = peer.current;
    }
    peer.current = kp;
    this.setEndpoint(peer, kind, ip, port, vip);
    peer.stats.handshakes++;
    peer.stats.lastHandshakeWallMs = this.c.clock.wallMs();
    peer.timers.sessionDerived(now);
    peer.timers.handshakeComplete(now);
    peer.timers.anyAuthenticatedPacketReceived(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    this.c.logger.debug({ peer: peer.publicKeyBase64.slice(0, 8) }, 'handshake complete (initiator)');
    // The responder needs a transport message to confirm the session: staged data, or a keepalive.
    if (peer.staged.length > 0) this.c.sendStaged(peer);
    else this.c.sendKeepalive(peer);
  }

  receiveCookieReply(buf: Buffer, off: number, len: number): void {
    if (len !== MSG_COOKIE_REPLY_SIZE) return this.c.drop('outside-malformed');
    const msg = buf.subarray(off, off + len);
    const entry = this.c.indices.get(msg.readUInt32LE(4));
    if (!entry) return this.c.drop('unknown-index');
    if (!entry.peer.cookies.consumeReply(msg)) this.c.drop('handshake-failed');
  }

  /** The initiator used our `next` keypair: it becomes current (wireguard-go ReceivedWithKeypair). */
  confirmNext(peer: Peer): void {
    if (!peer.next) return;
    if (peer.previous) this.c.indices.delete(peer.previous.localIndex);
    peer.previous = peer.current;
    peer.current = peer.next;
    peer.next = undefined;
    peer.timers.handshakeComplete(this.c.clock.now());
    if (peer.staged.length > 0) this.c.sendStaged(peer);
  }

  private setEndpoint(peer: Peer, kind: EndpointKind, ip: number, port: number, vip: number): void {
    peer.setEndpoint(kind, ip, port, vip);
  }

  /** Forget all sessions of a peer (REJECT_AFTER_TIME × 3 without a new handshake). */
  zeroKeys(peer: Peer): void {
    for (const kp of peer.keypairs()) this.c.indices.delete(kp.localIndex);
    if (peer.initiation) this.c.indices.delete(peer.initiation.localIndex);
    peer.current = peer.previous = peer.next = undefined;
    peer.initiation = undefined;
  }
}
