/**
 * The outside path: WireGuard messages from the underlay, opened and written to the TUN.
 * One path for a batch of any size (a batch of one is still a batch).
 *
 * Stages, in the order the code below runs them:
 *   1. read       readOutsidePackets: one batch of bare WireGuard messages (relay framing
 *                 already removed) from one kind of source, message by message
 *   2. dispatch   on the message type (type byte + 3 zero bytes); anything else is counted
 *   3. handshake  initiation, response, cookie reply → the HandshakeHandler (mac1, under
 *                 load a cookie, a per-source rate limit, and only then X25519); transport
 *                 messages queued before it are opened first, so effects keep arrival order
 *   4. transport  queueTransport: receiver index → keypair (unknown: maybe start a
 *                 handshake), expiry, counter limit; the message joins the open batch
 *   5. open       openQueued: ONE BatchAead call opens every queued message in place
 *   6. replay     in arrival order, the replay window moves ONLY for messages whose tag
 *                 verified
 *   7. authentic  roaming (the endpoint follows the sender), key confirmation, timers,
 *                 rekey; a keepalive stops here
 *   8. cryptokey routing: the inner packet must be IPv4 and its source an address the
 *                 sending peer owns
 *   8b. probes    an `isthmus ping` probe (protocol/probe.ts, IP protocol 253 and its magic) goes to the
 *                 prober (ping.ts), which answers it; it never reaches the filter or the TUN
 *   9. filter     flow-filter.ts: the destination must be one of our own addresses, and a
 *                 packet that opens a flow needs the peer's `inbound` ports (Peer.inbound);
 *                 replies to flows we opened pass. The batch's `now`, no clock read per packet
 *  10. write      to the TUN, in place (read at the agent's next flush, before the socket
 *                 reuses the slab)
 *
 * Nothing here throws on network input: every drop is counted by reason.
 */
import { isProbePacket, parseTransportHeader, TransportDrop, type Keypair, REJECT_AFTER_MESSAGES_NUM, AEAD_TAG_SIZE, MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE, MSG_TRANSPORT, MSG_TRANSPORT_HEADER_SIZE } from '../protocol';
import type { Clock, DatagramBatch } from '../common';
import { CryptoBatch, type BatchAead } from './batch-crypto';
import type { DropCounters } from './drop-reason';
import type { FlowFilter } from './flow-filter';
import { EndpointKind, type InsideWriter } from './endpoint';
import type { HandshakeHandler } from './handshake-handler';
import type { IndexTable } from './index-table';
import type { Peer } from './peer';
import type { PeerSet } from './peer-set';

/** Entries per BatchAead call (a UDP batch is at most 128). */
const OPEN_BATCH = 256;

export interface OutsideComponents {
  clock: Clock;
  peers: PeerSet;
  drops: DropCounters;
  indices: IndexTable;
  handshakes: HandshakeHandler;
  aead: BatchAead;
  /** The inbound flow filter (stage 9). */
  filter: FlowFilter;
  /** Where opened packets go. */
  inside: InsideWriter;
  /** Where `isthmus ping` probes go (stage 8b). */
  probes: ProbeSink;
}

/** Receives decrypted probes whose source the sending peer owns (node-agent/ping.ts). */
export interface ProbeSink {
  receive(peer: Peer, buf: Buffer, off: number, len: number): void;
}

export class OutsidePath {
  private readonly c: OutsideComponents;
  private readonly openBatch = new CryptoBatch(OPEN_BATCH);
  /** Parsed transport header, reused for every message. */
  private readonly header = { receiver: 0, counter: 0 };

  constructor(c: OutsideComponents) {
    this.c = c;
  }

  /**
   * Stages 1-10 for one batch of WireGuard messages, message i at
   * `data[offsets[i], +lengths[i])`. Sources: `kind` Direct: `addrs[i]`/`ports[i]` are the
   * sender's IPv4 and UDP port; Relay: `addrs[i]` is the sender's overlay address (the
   * relay vouches for it) and `ports` are not read. Plaintext is left in `data`; the caller
   * flushes the TUN before reusing it.
   */
  readOutsidePackets(b: DatagramBatch, kind: EndpointKind): void {
    const data = b.data;
    const now = this.c.clock.now(); // one clock read per batch
    const hs = this.c.handshakes;
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i];
      const len = b.lengths[i];
      // 2. dispatch
      if (len < 4 || data[off + 1] !== 0 || data[off + 2] !== 0 || data[off + 3] !== 0) {
        this.c.drops['outside-malformed']++;
        continue;
      }
      const type = data[off];
      if (type === MSG_TRANSPORT) {
        this.queueTransport(b, i, kind, now);
        continue;
      }
      // 3. handshake: it may change keypairs, so what was queued before it goes first.
      this.openQueued(b, kind);
      const direct = kind === EndpointKind.Direct;
      const ip = direct ? b.addrs[i] : 0;
      const port = direct ? b.ports[i] : 0;
      const vip = direct ? 0 : b.addrs[i];
      switch (type) {
        case MSG_INITIATION:
          hs.receiveInitiation(data, off, len, kind, ip, port, vip);
          break;
        case MSG_RESPONSE:
          hs.receiveResponse(data, off, len, kind, ip, port, vip);
          break;
        case MSG_COOKIE_REPLY:
          hs.receiveCookieReply(data, off, len);
          break;
        default:
          this.c.drops['outside-malformed']++;
      }
    }
    this.openQueued(b, kind);
  }

  /** Stage 4 for message i of `b`: everything checked before decrypting, then queued. */
  private queueTransport(b: DatagramBatch, i: number, kind: EndpointKind, now: number): void {
    const off = b.offsets[i];
    const len = b.lengths[i];
    const h = this.header;
    if (!parseTransportHeader(b.data, off, len, h)) {
      this.c.drops['outside-malformed']++;
      return;
    }
    const entry = this.c.indices.get(h.receiver);
    if (!entry || !entry.keypair) return this.unknownIndex(kind, b.addrs[i]);
    const { peer, keypair } = entry;
    if (!peer.timers.canReceiveWith(keypair, now)) {
      this.c.drops['keypair-expired']++;
      return;
    }
    // Never accepted after authentication either (and not exact as a JS number above 2^53).
    if (h.counter >= REJECT_AFTER_MESSAGES_NUM) {
      this.c.drops['transport-auth']++;
      return;
    }
    const ob = this.openBatch;
    if (ob.full()) this.openQueued(b, kind);
    // The AEAD covers ciphertext||tag after the 16-byte header; plaintext lands in place.
    const e = ob.add(b.data, keypair, keypair.recvKey, peer, off + MSG_TRANSPORT_HEADER_SIZE, len - MSG_TRANSPORT_HEADER_SIZE, h.counter);
    ob.msgOffsets[e] = off;
    ob.msgLengths[e] = len;
    ob.sources[e] = i;
  }

  /** Data under a session we do not have: we restarted, or dropped it. If the sender is a
   *  peer we know (the relay vouches for the source vip; or its direct endpoint), start a
   *  handshake now instead of letting it wait ~15 s for its own timers to notice.
   *  initiate() sends at most one initiation per REKEY_TIMEOUT per peer. */
  private unknownIndex(kind: EndpointKind, addr: number): void {
    this.c.drops['unknown-index']++;
    const peer = kind === EndpointKind.Relay ? this.c.peers.routes.lookup(addr) : this.c.peers.byDirectSource(addr);
    if (peer) this.c.handshakes.initiate(peer, false);
  }

  /** Stages 5-6 (then 7-10 per message): one open of everything queued from `b`. */
  private openQueued(b: DatagramBatch, kind: EndpointKind): void {
    const ob = this.openBatch;
    if (ob.count === 0) return;
    // 5. open
    this.c.aead.openBatch(ob, ob.keys, ob.keyIndex, ob.counters, ob.ok);
    const now = this.c.clock.now();
    const drops = this.c.drops;
    for (let i = 0; i < ob.count; i++) {
      if (ob.ok[i] !== 1) {
        drops['transport-auth']++;
        continue;
      }
      // 6. replay
      const kp = ob.keypairs[i]!;
      const r = kp.acceptCounter(ob.counterNums[i]);
      if (r < 0) {
        drops[r === TransportDrop.replay ? 'transport-replay' : 'transport-auth']++;
        continue;
      }
      const len = ob.msgLengths[i];
      const src = ob.sources[i];
      this.authenticated(ob.peers[i]!, kp, b.data, ob.msgOffsets[i], len, len - MSG_TRANSPORT_HEADER_SIZE - AEAD_TAG_SIZE,
        kind, b.addrs[src], b.ports[src], now);
    }
    ob.reset();
  }

  /** Stages 7-10 after a transport message under `keypair` authenticated (plaintext of `n`
   *  bytes, padding included, at off + 16), from `addr`/`port` as in readOutsidePackets. */
  private authenticated(peer: Peer, keypair: Keypair, buf: Buffer, off: number, len: number, n: number,
    kind: EndpointKind, addr: number, port: number, now: number): void {
    // 7. authentic: the peer is where this came from (roaming), and a confirmed "next" keypair becomes current.
    const direct = kind === EndpointKind.Direct;
    const ip = direct ? addr : 0;
    const p = direct ? port : 0;
    const vip = direct ? 0 : addr;
    peer.setEndpoint(kind, ip, p, vip);
    const hs = this.c.handshakes;
    if (keypair === peer.next) hs.confirmNext(peer);
    peer.timers.anyAuthenticatedPacketReceived(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.stats.rxBytes += len;
    peer.stats.rxPackets++;
    hs.keepKeyFreshReceiving(peer, now);
    if (n === 0) return; // keepalive

    // 8. cryptokey routing
    peer.timers.dataReceived(now);
    const plainOff = off + MSG_TRANSPORT_HEADER_SIZE;
    if (n < 20 || buf[plainOff] >> 4 !== 4) {
      this.c.drops['inner-malformed']++;
      return;
    }
    const totalLen = buf.readUInt16BE(plainOff + 2);
    if (totalLen < 20 || totalLen > n) {
      this.c.drops['inner-malformed']++;
      return;
    }
    if (this.c.peers.routes.lookup(buf.readUInt32BE(plainOff + 12)) !== peer) {
      this.c.drops['source-not-allowed']++;
      return;
    }
    // 8b. probes
    if (isProbePacket(buf, plainOff, totalLen)) {
      this.c.probes.receive(peer, buf, plainOff, totalLen);
      return;
    }
    // 9. filter
    const verdict = this.c.filter.inbound(buf, plainOff, totalLen, peer.inbound, now);
    if (verdict !== 'pass') {
      this.c.drops[verdict === 'malformed' ? 'inner-malformed' : verdict]++;
      return;
    }
    // 10. write
    this.c.inside.writeInPlace(buf, plainOff, totalLen);
  }
}
