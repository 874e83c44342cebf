/**
 * The session engine of one member: WireGuard's data and handshake path, without I/O.
 *
 * Outbound ("inside", TUN → peer):
 *   1. route: destination address → peer (longest prefix of the peers' AllowedIPs)
 *   2. seal in place with the peer's current keypair: the transport header goes into the
 *      headroom in front of the packet, ciphertext over the plaintext
 *   3. hand the message to the OutsideSender, or stage it and start a handshake
 *
 * Inbound ("outside", UDP → TUN):
 *   1. dispatch on the WireGuard message type
 *   2. handshake messages: see handshake-handler.ts
 *   3. transport: receiver index → keypair, open in place, replay check
 *   4. cryptokey routing: the inner source must be an address the sending peer owns
 *   5. write to the InsideWriter
 *
 * Nothing here throws on network input: every drop is counted by reason.
 */
import { TransportDrop, parseTransportHeader } from '../protocol/transport';

import { buildIcmpUnreachable, ICMP_UNREACHABLE_MAX_SIZE, UnreachableCode } from '../protocol/icmp';
import { MSG_INITIATION, MSG_RESPONSE, MSG_COOKIE_REPLY, MSG_TRANSPORT, MSG_TRANSPORT_HEADER_SIZE } from '../protocol/constants';
import type { Clock } from '../common/clock';
import type { Logger } from '../common/logger';
import { Endpoint, type EndpointKind, type OutsideSender, type InsideWriter } from './endpoint';
import { IndexTable } from './index-table';
import { newDropCounters, type AgentDropReason, type DropCounters } from './drop-reason';
import { HandshakeHandler } from './handshake-handler';
import type { Peer } from './peer';
import type { PeerSet } from './peer-set';
import type { LocalIdentity } from '../protocol/handshake';
import type { TimerConfig } from '../protocol/timers';

/** Headroom the engine needs in front of an inside packet: transport header + relay frame header. */
export const DEVICE_HEADROOM = MSG_TRANSPORT_HEADER_SIZE + 8;
/** Room the engine needs behind an inside packet: padding to 16 and the AEAD tag. */
export const DEVICE_TAILROOM = 32;

export interface DeviceComponents {
  clock: Clock;
  logger: Logger;
  outside: OutsideSender;
  inside: InsideWriter;
  peers: PeerSet;
  local: LocalIdentity;
  timerConfig: TimerConfig;
}

export class Device {
  readonly drops: DropCounters = newDropCounters();
  readonly indices = new IndexTable();
  readonly handshakes: HandshakeHandler;
  private readonly peers: PeerSet;
  private readonly clock: Clock;
  private readonly outside: OutsideSender;
  private readonly inside: InsideWriter;
  /** Parsed transport header, reused for every packet. */
  private readonly transportHeader = { receiver: 0, counter: 0 };
  /** ICMP errors are built here, then written to the TUN. */
  private readonly icmpScratch = Buffer.alloc(ICMP_UNREACHABLE_MAX_SIZE);

  constructor(c: DeviceComponents) {
    this.peers = c.peers;
    this.clock = c.clock;
    this.outside = c.outside;
    this.inside = c.inside;
    this.handshakes = new HandshakeHandler({
      ...c,
      indices: this.indices,
      drop: (r) => this.drop(r),
      sendStaged: (p) => this.sendStaged(p),
      sendKeepalive: (p) => this.sendKeepalive(p),
    });
  }

  drop(reason: AgentDropReason): void {
    this.drops[reason]++;
  }

  /** One plaintext IP packet from the TUN at `buf[off..off+len)`, with DEVICE_HEADROOM
   *  free bytes before and DEVICE_TAILROOM after. */
  receiveInside(buf: Buffer, off: number, len: number): void {
    if (len < 20) return this.drop('inside-malformed');
    const version = buf[off] >> 4;
    if (version !== 4) return this.drop(version === 6 ? 'inside-ipv6' : 'inside-malformed');
    const dst = buf.readUInt32BE(off + 16);
    const peer = this.peers.routes.lookup(dst);
    if (!peer) return this.unreachable(buf, off, len);
    this.sendToPeer(peer, buf, off, len);
  }

  /** The kernel routed this packet to us (overlay prefix or a routed original prefix) but
   *  no member owns its destination: answer "host unreachable" at once instead of letting
   *  the sender hang. The error comes from the unreachable address itself: Linux drops a
   *  packet arriving with one of its own addresses as source (martian), so ours won't do. */
  private unreachable(buf: Buffer, off: number, len: number): void {
    this.drop('no-route');
    const dst = buf.readUInt32BE(off + 16);
    const n = buildIcmpUnreachable(buf, off, len, UnreachableCode.HOST, dst, this.icmpScratch, 0);
    if (n > 0) this.inside.write(this.icmpScratch, 0, n);
  }

  private sendToPeer(peer: Peer, buf: Buffer, off: number, len: number): void {
    if (!peer.endpoint) return this.drop('no-endpoint');
    const now = this.clock.now();
    const kp = peer.current;
    if (!kp || !this.handshakes.usableForSending(kp, now)) {
      if (!peer.stage(buf, off, len)) this.drop('staged-overflow');
      this.handshakes.initiate(peer, false);
      return;
    }
    const n = kp.seal(buf, off, len, buf, off - MSG_TRANSPORT_HEADER_SIZE);
    if (n < 0) {
      if (!peer.stage(buf, off, len)) this.drop('staged-overflow');
      this.handshakes.initiate(peer, false);
      return;
    }
    this.outside.send(peer.endpoint, buf, off - MSG_TRANSPORT_HEADER_SIZE, n);
    peer.stats.txBytes += n;
    peer.stats.txPackets++;
    peer.timers.dataSent(now);
    peer.timers.anyAuthenticatedPacketSent(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    if (this.handshakes.shouldRekeyAfterSend(kp, now)) this.handshakes.initiate(peer, false);
  }

  /** Flush packets that waited for a session (after a handshake completes). */
  sendStaged(peer: Peer): void {
    if (peer.staged.length === 0) return;
    const packets = peer.staged.splice(0);
    for (const p of packets) {
      // Staged copies have no headroom: give them some.
      const b = Buffer.allocUnsafe(DEVICE_HEADROOM + p.length + DEVICE_TAILROOM);
      p.copy(b, DEVICE_HEADROOM);
      this.sendToPeer(peer, b, DEVICE_HEADROOM, p.length);
    }
  }

  /** Send an empty transport message (keepalive) if a session exists. */
  sendKeepalive(peer: Peer): void {
    const kp = peer.current;
    if (!peer.endpoint || !kp || !this.handshakes.usableForSending(kp, this.clock.now())) return;
    const b = Buffer.allocUnsafe(DEVICE_HEADROOM + DEVICE_TAILROOM);
    const n = kp.seal(b, DEVICE_HEADROOM, 0, b, DEVICE_HEADROOM - MSG_TRANSPORT_HEADER_SIZE);
    if (n < 0) return;
    this.outside.send(peer.endpoint, b, DEVICE_HEADROOM - MSG_TRANSPORT_HEADER_SIZE, n);
    const now = this.clock.now();
    peer.timers.anyAuthenticatedPacketSent(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
  }

  /** One datagram payload from the outside (a bare WireGuard message; relay framing
   *  already removed), with where it came from. */
  receiveOutside(buf: Buffer, off: number, len: number, kind: EndpointKind, ip: number, port: number, vip: number): void {
    if (len < 4 || buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) return this.drop('outside-malformed');
    switch (buf[off]) {
      case MSG_TRANSPORT:
        return this.receiveTransport(buf, off, len, kind, ip, port, vip);
      case MSG_INITIATION:
        return this.handshakes.receiveInitiation(buf, off, len, kind, ip, port, vip);
      case MSG_RESPONSE:
        return this.handshakes.receiveResponse(buf, off, len, kind, ip, port, vip);
      case MSG_COOKIE_REPLY:
        return this.handshakes.receiveCookieReply(buf, off, len);
      default:
        return this.drop('outside-malformed');
    }
  }

  private receiveTransport(buf: Buffer, off: number, len: number, kind: EndpointKind, ip: number, port: number, vip: number): void {
    if (!parseTransportHeader(buf, off, len, this.transportHeader)) return this.drop('outside-malformed');
    const entry = this.indices.get(this.transportHeader.receiver);
    if (!entry || !entry.keypair) return this.drop('unknown-index');
    const { peer, keypair } = entry;
    const now = this.clock.now();
    if (this.handshakes.isExpired(keypair, now)) return this.drop('keypair-expired');
    const plainOff = off + MSG_TRANSPORT_HEADER_SIZE;
    const n = keypair.open(buf, off, len, buf, plainOff);
    if (n < 0) return this.drop(n === TransportDrop.replay ? 'transport-replay' : 'transport-auth');

    // Authenticated: the peer is where this came from (roaming), and a confirmed "next" keypair becomes current.
    if (!peer.endpoint) peer.endpoint = new Endpoint(kind, ip, port, vip);
    else if (!peer.endpoint.equals(kind, ip, port, vip)) peer.endpoint.assign(kind, ip, port, vip);
    if (keypair === peer.next) this.handshakes.confirmNext(peer);
    peer.timers.anyAuthenticatedPacketReceived(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.stats.rxBytes += len;
    peer.stats.rxPackets++;
    if (this.handshakes.shouldRekeyAfterReceive(keypair, now)) this.handshakes.initiate(peer, false);
    if (n === 0) return; // keepalive

    peer.timers.dataReceived(now);
    if (n < 20 || buf[plainOff] >> 4 !== 4) return this.drop('inner-malformed');
    const totalLen = buf.readUInt16BE(plainOff + 2);
    if (totalLen < 20 || totalLen > n) return this.drop('inner-malformed');
    const src = buf.readUInt32BE(plainOff + 12);
    if (this.peers.routes.lookup(src) !== peer) return this.drop('source-not-allowed');
    this.inside.write(buf, plainOff, totalLen);
  }

  /** Run every peer's due timers (called a few times a second by the agent). */
  tick(): void {
    const now = this.clock.now();
    for (const peer of this.peers.all()) {
      for (const action of peer.timers.poll(now)) {
        switch (action) {
          case 'send-initiation':
            this.handshakes.initiate(peer, true);
            break;
          case 'new-handshake':
            this.handshakes.initiate(peer, false);
            break;
          case 'send-keepalive':
          case 'persistent-keepalive':
            this.sendKeepalive(peer);
            break;
          case 'zero-keys':
            this.handshakes.zeroKeys(peer);
            break;
          case 'give-up':
            // No handshake after REKEY_ATTEMPT_TIME: what waited for it is dropped.
            peer.staged.length = 0;
            break;
        }
      }
    }
  }

  /** Start a handshake now for every peer with packets waiting for one. */
  retryPendingHandshakes(): void {
    for (const peer of this.peers.all()) if (peer.staged.length > 0) this.handshakes.initiate(peer, true);
  }

  /** Release the indices of a peer that left the peer set. */
  forgetPeer(peer: Peer): void {
    this.indices.deletePeer(peer);
  }
}
