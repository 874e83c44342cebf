/**
 * The inside path: plaintext IP packets from the TUN, sealed and sent to their peers.
 * One path for everything the engine sends under a session: a TUN batch, the packets that
 * waited for a handshake, and keepalives (those two as small batches of their own).
 *
 * Stages, in the order the code below runs them:
 *   1. read      readInsidePackets: one TUN batch, packet by packet
 *   2. check     IPv4 and 20 <= len <= maxLen (the slot's tailroom must hold padding and
 *                tag); IPv6 and anything else are counted drops
 *   3. route     destination → peer (longest prefix of the peers' AllowedIPs); no peer:
 *                ICMP host unreachable back into the TUN. A routed packet is noted by the
 *                flow filter (flow-filter.ts noteOutbound: UDP flows and echo requests, so
 *                their replies pass inbound; TCP returns after one byte), with the batch's `now`
 *   4. nonce     queueForPeer: the peer's current keypair gives the next counter; without a
 *                usable keypair the packet is staged and a handshake starts
 *   5. header    the transport header goes into the headroom in front of the packet and the
 *                padding behind it is zeroed; the packet joins the seal batch
 *   6. seal      sealQueued: ONE BatchAead call seals every queued packet in place
 *   7. send      each message to its peer's endpoint, in place (read at the agent's next
 *                flush, before the TUN reuses the slab); counters and timers
 *
 * Staged packets and keepalives enter at stage 4 (sendStaged, sendKeepalive).
 * Nothing here throws on a packet: every drop is counted by reason.
 */
import { paddedLength, writeTransportHeader, buildIcmpUnreachable, ICMP_UNREACHABLE_MAX_SIZE, UnreachableCode, AEAD_TAG_SIZE, MSG_TRANSPORT_HEADER_SIZE } from '../protocol';
import type { Clock, PacketBatch } from '../common';
import { CryptoBatch, type BatchAead } from './batch-crypto';
import type { DropCounters } from './drop-reason';
import type { FlowFilter } from './flow-filter';
import type { InsideWriter, OutsideSender } from './endpoint';
import type { HandshakeHandler } from './handshake-handler';
import type { Peer } from './peer';
import type { PeerSet } from './peer-set';

/** Headroom the engine needs in front of an inside packet: transport header + relay frame header. */
export const DEVICE_HEADROOM = MSG_TRANSPORT_HEADER_SIZE + 8;
/** Room the engine needs behind an inside packet: padding to 16 and the AEAD tag. */
export const DEVICE_TAILROOM = 32;

/** Entries per BatchAead call (a TUN batch is at most 128, staged packets too). */
const SEAL_BATCH = 256;

export interface InsideComponents {
  clock: Clock;
  peers: PeerSet;
  drops: DropCounters;
  handshakes: HandshakeHandler;
  aead: BatchAead;
  /** Told of every routed packet, so replies to the flows we open pass inbound. */
  filter: FlowFilter;
  /** Where sealed messages go. */
  outside: OutsideSender;
  /** Where ICMP errors go. */
  inside: InsideWriter;
}

export class InsidePath {
  private readonly c: InsideComponents;
  private readonly sealBatch = new CryptoBatch(SEAL_BATCH);
  /** ICMP errors are built here, then written (copied) to the TUN. */
  private readonly icmpScratch = Buffer.alloc(ICMP_UNREACHABLE_MAX_SIZE);

  constructor(c: InsideComponents) {
    this.c = c;
  }

  /**
   * Stages 1-7 for one batch of plaintext IP packets: packet i at
   * `data[offsets[i], +lengths[i])` with DEVICE_HEADROOM free bytes in front and
   * `maxLen - lengths[i] + DEVICE_TAILROOM` behind (a TUN slot). `maxLen` is the TUN's MTU.
   */
  readInsidePackets(b: PacketBatch, maxLen: number): void {
    const data = b.data;
    const drops = this.c.drops;
    const routes = this.c.peers.routes;
    const filter = this.c.filter;
    const now = this.c.clock.now();
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i];
      const len = b.lengths[i];
      // 2. check
      if (len < 20 || len > maxLen) {
        drops['inside-malformed']++;
        continue;
      }
      const version = data[off] >> 4;
      if (version !== 4) {
        drops[version === 6 ? 'inside-ipv6' : 'inside-malformed']++;
        continue;
      }
      // 3. route
      const peer = routes.lookup(data.readUInt32BE(off + 16));
      if (!peer) {
        this.unreachable(data, off, len);
        continue;
      }
      filter.noteOutbound(data, off, len, now);
      this.queueForPeer(peer, data, off, len, now);
    }
    this.sealQueued();
  }

  /** The kernel routed this packet to us (overlay prefix or a routed original prefix) but
   *  no member owns its destination: answer "host unreachable" at once instead of letting
   *  the sender hang. The error comes from the unreachable address itself: Linux drops a
   *  packet arriving with one of its own addresses as source (martian), so ours won't do. */
  private unreachable(buf: Buffer, off: number, len: number): void {
    this.c.drops['no-route']++;
    const dst = buf.readUInt32BE(off + 16);
    const n = buildIcmpUnreachable(buf, off, len, UnreachableCode.HOST, dst, this.icmpScratch, 0);
    if (n > 0) this.c.inside.write(this.icmpScratch, 0, n);
  }

  /**
   * Stages 4-5 for one packet of `peer` at `data[off, +len)` (headroom in front, tailroom
   * behind); `len` 0 is a keepalive. Call sealQueued() after the last one. A keepalive
   * without an endpoint or a usable session is neither counted nor staged.
   */
  private queueForPeer(peer: Peer, data: Buffer, off: number, len: number, now: number): void {
    if (!peer.endpoint) {
      if (len > 0) this.c.drops['no-endpoint']++;
      return;
    }
    // 4. nonce
    const kp = peer.current;
    const counter = kp && peer.timers.canSendWith(kp, now) ? kp.reserveSendCounter() : -1;
    if (counter < 0) {
      if (len === 0) return;
      if (!peer.stage(data, off, len)) this.c.drops['staged-overflow']++;
      this.c.handshakes.initiate(peer, false);
      return;
    }
    // 5. header; every entry of a seal batch lives in one buffer.
    const sb = this.sealBatch;
    if (sb.count > 0 && (sb.full() || sb.data !== data)) this.sealQueued();
    const padded = paddedLength(len);
    data.fill(0, off + len, off + padded);
    writeTransportHeader(data, off - MSG_TRANSPORT_HEADER_SIZE, kp!.remoteIndex, counter);
    const e = sb.add(data, kp!, kp!.sendKey, peer, off, padded, counter);
    sb.msgOffsets[e] = off - MSG_TRANSPORT_HEADER_SIZE;
    sb.msgLengths[e] = MSG_TRANSPORT_HEADER_SIZE + padded + AEAD_TAG_SIZE;
  }

  /** Stages 6-7: seal everything queued in one call, then send each message. */
  private sealQueued(): void {
    const sb = this.sealBatch;
    if (sb.count === 0) return;
    // 6. seal
    this.c.aead.sealBatch(sb, sb.keys, sb.keyIndex, sb.counters, sb.ok);
    // 7. send
    const data = sb.data;
    const now = this.c.clock.now();
    const hs = this.c.handshakes;
    for (let i = 0; i < sb.count; i++) {
      const peer = sb.peers[i]!;
      const ep = peer.endpoint;
      // Bounds were checked when queued; a failure here is a crypto library fault: never send it.
      if (sb.ok[i] !== 1 || !ep) {
        this.c.drops['inside-malformed']++;
        continue;
      }
      const n = sb.msgLengths[i];
      this.c.outside.sendInPlace(ep, data, sb.msgOffsets[i], n);
      peer.timers.anyAuthenticatedPacketSent(now);
      peer.timers.anyAuthenticatedPacketTraversal(now);
      hs.keepKeyFreshSending(peer, now); // keepalives too, as in wireguard-go
      if (sb.lengths[i] === 0) continue; // keepalive
      peer.stats.txBytes += n;
      peer.stats.txPackets++;
      peer.timers.dataSent(now);
    }
    sb.reset();
  }

  /** Send the packets that waited for a session (after a handshake completed), as one
   *  batch. Staged copies have no headroom: they get one buffer with a slot each. */
  sendStaged(peer: Peer): void {
    const staged = peer.staged;
    if (staged.length === 0) return;
    let size = 0;
    for (const p of staged) size += DEVICE_HEADROOM + paddedLength(p.length) + DEVICE_TAILROOM;
    // Fresh memory, never reused: safe to send in place until the agent's flush.
    const buf = Buffer.allocUnsafe(size);
    const packets = staged.splice(0);
    const now = this.c.clock.now();
    let off = DEVICE_HEADROOM;
    for (const p of packets) {
      p.copy(buf, off);
      this.queueForPeer(peer, buf, off, p.length, now);
      off += paddedLength(p.length) + DEVICE_TAILROOM + DEVICE_HEADROOM;
    }
    this.sealQueued();
  }

  /** Send an empty transport message (keepalive) if a session exists. */
  sendKeepalive(peer: Peer): void {
    const buf = Buffer.allocUnsafe(DEVICE_HEADROOM + DEVICE_TAILROOM);
    this.queueForPeer(peer, buf, DEVICE_HEADROOM, 0, this.c.clock.now());
    this.sealQueued();
  }
}
