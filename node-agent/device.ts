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
 * Batched (with a native BatchAead, see batch-crypto.ts): receiveInsideBatch does steps 1-2
 * for a whole TUN batch in JS (route, counter, header, padding) and seals every packet in
 * ONE native call before sending; between beginOutsideBatch/endOutsideBatch, transport
 * messages are collected (index, expiry, counter range) and opened in ONE native call, then
 * the replay window moves only for the packets whose tag verified, in arrival order, and
 * steps 4-5 run per packet as above. Handshake messages flush what was collected first, so
 * the order of effects is the per-packet order.
 *
 * Nothing here throws on network input: every drop is counted by reason.
 */
import { TransportDrop, paddedLength, parseTransportHeader, writeTransportHeader, type Keypair } from '../protocol/transport';
import { REJECT_AFTER_MESSAGES_NUM } from '../protocol/replay';
import type { PacketBatch } from '../common/packet-io';
import { CryptoBatch, type BatchAead } from './batch-crypto';

import { buildIcmpUnreachable, ICMP_UNREACHABLE_MAX_SIZE, UnreachableCode } from '../protocol/icmp';
import { AEAD_TAG_SIZE, MSG_INITIATION, MSG_RESPONSE, MSG_COOKIE_REPLY, MSG_TRANSPORT, MSG_TRANSPORT_HEADER_SIZE } from '../protocol/constants';
import type { Clock } from '../common/clock';
import type { Logger } from '../common/logger';
import { Endpoint, EndpointKind, type OutsideSender, type InsideWriter } from './endpoint';
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

/** Optional zero-copy variants: the bytes are used in place at the sink's next flush, so the
 *  engine passes them only for packets in the batch being processed (the agent flushes
 *  before the batch's memory is reused). */
export interface InPlaceOutsideSender extends OutsideSender {
  sendInPlace?(ep: Endpoint, buf: Buffer, off: number, len: number): void;
}
export interface InPlaceInsideWriter extends InsideWriter {
  writeInPlace?(buf: Buffer, off: number, len: number): void;
}

export interface DeviceComponents {
  clock: Clock;
  logger: Logger;
  outside: InPlaceOutsideSender;
  inside: InPlaceInsideWriter;
  peers: PeerSet;
  local: LocalIdentity;
  timerConfig: TimerConfig;
  /** Native batched ChaCha20-Poly1305; without it every packet goes through node:crypto. */
  aead?: BatchAead;
}

/** Entries per native AEAD call (a TUN or UDP batch is at most 128). */
const CRYPTO_BATCH = 256;

export class Device {
  readonly drops: DropCounters = newDropCounters();
  readonly indices = new IndexTable();
  readonly handshakes: HandshakeHandler;
  private readonly peers: PeerSet;
  private readonly clock: Clock;
  private readonly outside: InPlaceOutsideSender;
  private readonly inside: InPlaceInsideWriter;
  /** Parsed transport header, reused for every packet. */
  private readonly transportHeader = { receiver: 0, counter: 0 };
  /** ICMP errors are built here, then written to the TUN. */
  private readonly icmpScratch = Buffer.alloc(ICMP_UNREACHABLE_MAX_SIZE);

  private readonly aead: BatchAead | undefined;
  private readonly sealBatch = new CryptoBatch(CRYPTO_BATCH);
  private readonly openBatch = new CryptoBatch(CRYPTO_BATCH);
  private openData: Buffer | undefined;
  private batchingOutside = false;

  constructor(c: DeviceComponents) {
    this.aead = c.aead;
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

  /**
   * A whole TUN batch. Per packet in JS: route, take the keypair's next counter, write the
   * header into the headroom and zero the padding; then ONE native seal of every packet in
   * place, then the sends. `maxLen` is the largest packet whose padding and tag fit the
   * slot's tailroom (the TUN's MTU); longer ones are dropped. Without a native AEAD this is
   * receiveInside per packet.
   */
  receiveInsideBatch(b: PacketBatch, maxLen: number): void {
    const aead = this.aead;
    const data = b.data;
    if (!aead) {
      for (let i = 0; i < b.count; i++) this.receiveInside(data, b.offsets[i], b.lengths[i]);
      return;
    }
    const sb = this.sealBatch;
    const now = this.clock.now();
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i];
      const len = b.lengths[i];
      if (len < 20 || len > maxLen) {
        this.drop('inside-malformed');
        continue;
      }
      const version = data[off] >> 4;
      if (version !== 4) {
        this.drop(version === 6 ? 'inside-ipv6' : 'inside-malformed');
        continue;
      }
      const peer = this.peers.routes.lookup(data.readUInt32BE(off + 16));
      if (!peer) {
        this.unreachable(data, off, len);
        continue;
      }
      if (!peer.endpoint) {
        this.drop('no-endpoint');
        continue;
      }
      const kp = peer.current;
      const counter = kp && peer.timers.canSendWith(kp, now) ? kp.reserveSendCounter() : -1;
      if (counter < 0) {
        if (!peer.stage(data, off, len)) this.drop('staged-overflow');
        this.handshakes.initiate(peer, false);
        continue;
      }
      if (sb.full()) this.runSeal(aead, data, now);
      const padded = paddedLength(len);
      data.fill(0, off + len, off + padded);
      writeTransportHeader(data, off - MSG_TRANSPORT_HEADER_SIZE, kp!.remoteIndex, counter);
      const e = sb.add(data, kp!, kp!.sendKey, peer, off, padded, counter);
      sb.msgOffsets[e] = off - MSG_TRANSPORT_HEADER_SIZE;
      sb.msgLengths[e] = MSG_TRANSPORT_HEADER_SIZE + padded + AEAD_TAG_SIZE;
    }
    if (sb.count > 0) this.runSeal(aead, data, now);
  }

  private runSeal(aead: BatchAead, data: Buffer, now: number): void {
    const sb = this.sealBatch;
    aead.sealBatch(sb, sb.keys, sb.keyIndex, sb.counters, sb.ok);
    for (let i = 0; i < sb.count; i++) {
      const peer = sb.peers[i]!;
      // Bounds were checked above; a failure here would be an OpenSSL fault: never send it.
      if (sb.ok[i] !== 1 || !peer.endpoint) {
        this.drop('inside-malformed');
        continue;
      }
      const n = sb.msgLengths[i];
      if (this.outside.sendInPlace) this.outside.sendInPlace(peer.endpoint, data, sb.msgOffsets[i], n);
      else this.outside.send(peer.endpoint, data, sb.msgOffsets[i], n);
      peer.stats.txBytes += n;
      peer.stats.txPackets++;
      peer.timers.dataSent(now);
      peer.timers.anyAuthenticatedPacketSent(now);
      peer.timers.anyAuthenticatedPacketTraversal(now);
      this.handshakes.keepKeyFreshSending(peer, now);
    }
    sb.reset();
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
    if (!kp || !peer.timers.canSendWith(kp, now)) {
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
    this.handshakes.keepKeyFreshSending(peer, now);
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
    if (!peer.endpoint || !kp || !peer.timers.canSendWith(kp, this.clock.now())) return;
    const b = Buffer.allocUnsafe(DEVICE_HEADROOM + DEVICE_TAILROOM);
    const n = kp.seal(b, DEVICE_HEADROOM, 0, b, DEVICE_HEADROOM - MSG_TRANSPORT_HEADER_SIZE);
    if (n < 0) return;
    this.outside.send(peer.endpoint, b, DEVICE_HEADROOM - MSG_TRANSPORT_HEADER_SIZE, n);
    const now = this.clock.now();
    peer.timers.anyAuthenticatedPacketSent(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    this.handshakes.keepKeyFreshSending(peer, now);
  }

  /** One datagram payload from the outside (a bare WireGuard message; relay framing
   *  already removed), with where it came from. */
  receiveOutside(buf: Buffer, off: number, len: number, kind: EndpointKind, ip: number, port: number, vip: number): void {
    if (len < 4 || buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) return this.drop('outside-malformed');
    if (buf[off] === MSG_TRANSPORT) {
      return this.batchingOutside ? this.collectTransport(buf, off, len, kind, ip, port, vip) : this.receiveTransport(buf, off, len, kind, ip, port, vip);
    }
    // A handshake message may change keypairs: what was collected before it goes first.
    if (this.openBatch.count > 0) this.runOpen();
    switch (buf[off]) {
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

  /** Data under a session we do not have: we restarted, or dropped it. If the sender is a
   *  peer we know (the relay vouches for the source vip; or its direct endpoint), start a
   *  handshake now instead of letting it wait ~15 s for its own timers to notice.
   *  initiate() sends at most one initiation per REKEY_TIMEOUT per peer. */
  private unknownIndex(kind: EndpointKind, ip: number, vip: number): void {
    this.drop('unknown-index');
    const peer = kind === EndpointKind.Relay ? this.peers.routes.lookup(vip) : this.peers.byDirectSource(ip);
    if (peer) this.handshakes.initiate(peer, false);
  }

  private receiveTransport(buf: Buffer, off: number, len: number, kind: EndpointKind, ip: number, port: number, vip: number): void {
    if (!parseTransportHeader(buf, off, len, this.transportHeader)) return this.drop('outside-malformed');
    const entry = this.indices.get(this.transportHeader.receiver);
    if (!entry || !entry.keypair) return this.unknownIndex(kind, ip, vip);
    const { peer, keypair } = entry;
    const now = this.clock.now();
    if (!peer.timers.canReceiveWith(keypair, now)) return this.drop('keypair-expired');
    const n = keypair.open(buf, off, len, buf, off + MSG_TRANSPORT_HEADER_SIZE);
    if (n < 0) return this.drop(n === TransportDrop.replay ? 'transport-replay' : 'transport-auth');
    this.authenticated(peer, keypair, buf, off, len, n, kind, ip, port, vip, now);
  }

  /** Collect datagrams into one native open: call receiveOutside for each, then endOutsideBatch(). */
  beginOutsideBatch(): void {
    this.batchingOutside = this.aead !== undefined;
  }

  endOutsideBatch(): void {
    if (this.openBatch.count > 0) this.runOpen();
    this.batchingOutside = false;
  }

  /** Everything receiveTransport checks before decrypting, then queue for the native open. */
  private collectTransport(buf: Buffer, off: number, len: number, kind: EndpointKind, ip: number, port: number, vip: number): void {
    const h = this.transportHeader;
    if (!parseTransportHeader(buf, off, len, h)) return this.drop('outside-malformed');
    const entry = this.indices.get(h.receiver);
    if (!entry || !entry.keypair) return this.unknownIndex(kind, ip, vip);
    const { peer, keypair } = entry;
    if (!peer.timers.canReceiveWith(keypair, this.clock.now())) return this.drop('keypair-expired');
    // Never accepted after authentication either (and not exact as a JS number above 2^53).
    if (h.counter >= REJECT_AFTER_MESSAGES_NUM) return this.drop('transport-auth');
    const ob = this.openBatch;
    if (ob.count > 0 && (ob.full() || this.openData !== buf)) this.runOpen();
    this.openData = buf;
    // The AEAD covers ciphertext||tag after the 16-byte header; plaintext lands in place.
    const e = ob.add(buf, keypair, keypair.recvKey, peer, off + MSG_TRANSPORT_HEADER_SIZE, len - MSG_TRANSPORT_HEADER_SIZE, h.counter);
    ob.msgOffsets[e] = off;
    ob.msgLengths[e] = len;
    ob.kinds[e] = kind;
    ob.ips[e] = ip;
    ob.ports[e] = port;
    ob.vips[e] = vip;
  }

  /** One native open of everything collected; then, in arrival order, the replay window
   *  (ONLY for packets whose tag verified) and the per-packet checks and delivery. */
  private runOpen(): void {
    const ob = this.openBatch;
    const buf = this.openData!;
    this.aead!.openBatch(ob, ob.keys, ob.keyIndex, ob.counters, ob.ok);
    const now = this.clock.now();
    for (let i = 0; i < ob.count; i++) {
      if (ob.ok[i] !== 1) {
        this.drop('transport-auth');
        continue;
      }
      const kp = ob.keypairs[i]!;
      const r = kp.acceptCounter(ob.counterNums[i]);
      if (r < 0) {
        this.drop(r === TransportDrop.replay ? 'transport-replay' : 'transport-auth');
        continue;
      }
      const len = ob.msgLengths[i];
      this.authenticated(ob.peers[i]!, kp, buf, ob.msgOffsets[i], len, len - MSG_TRANSPORT_HEADER_SIZE - AEAD_TAG_SIZE,
        ob.kinds[i] as EndpointKind, ob.ips[i], ob.ports[i], ob.vips[i], now);
    }
    ob.reset();
    this.openData = undefined;
  }

  /** After a transport message under `keypair` authenticated (plaintext of `n` bytes, padding
   *  included, at off + 16): roaming, key confirmation, timers, then cryptokey routing. */
  private authenticated(peer: Peer, keypair: Keypair, buf: Buffer, off: number, len: number, n: number,
    kind: EndpointKind, ip: number, port: number, vip: number, now: number): void {
    const plainOff = off + MSG_TRANSPORT_HEADER_SIZE;
    // Authenticated: the peer is where this came from (roaming), and a confirmed "next" keypair becomes current.
    if (!peer.endpoint) peer.endpoint = new Endpoint(kind, ip, port, vip);
    else if (!peer.endpoint.equals(kind, ip, port, vip)) peer.endpoint.assign(kind, ip, port, vip);
    if (keypair === peer.next) this.handshakes.confirmNext(peer);
    peer.timers.anyAuthenticatedPacketReceived(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.stats.rxBytes += len;
    peer.stats.rxPackets++;
    this.handshakes.keepKeyFreshReceiving(peer, now);
    if (n === 0) return; // keepalive

    peer.timers.dataReceived(now);
    if (n < 20 || buf[plainOff] >> 4 !== 4) return this.drop('inner-malformed');
    const totalLen = buf.readUInt16BE(plainOff + 2);
    if (totalLen < 20 || totalLen > n) return this.drop('inner-malformed');
    const src = buf.readUInt32BE(plainOff + 12);
    if (this.peers.routes.lookup(src) !== peer) return this.drop('source-not-allowed');
    // `buf` is the datagram batch being processed: in place is safe until the agent's flush.
    if (this.inside.writeInPlace) this.inside.writeInPlace(buf, plainOff, totalLen);
    else this.inside.write(buf, plainOff, totalLen);
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
