/**
 * The session engine of one member: WireGuard's data and handshake path, without I/O.
 * This file holds what both directions share — peers, the index table, the handshake
 * handler, drop counters, the batched AEAD — and the timers; the two directions are
 *
 *   inside.ts   TUN → check → route → nonce → header → seal (in place) → send
 *   outside.ts  UDP → dispatch → handshake | transport → open (in place) → replay →
 *               cryptokey routing → inbound filter → TUN
 *
 * and the stateful inbound filter (flow-filter.ts) they share: inside notes the flows we
 * open, outside lets new flows in on the sending peer's `inbound` ports only, and replies.
 *
 * Both take whole batches (a batch of one is still a batch) and seal or open each batch
 * with ONE BatchAead call (batch-crypto.ts: the native addon's, or node:crypto's).
 * Synchronous and driven by an injected clock: tests need no sleeps. Nothing here throws
 * on network input: every drop is counted by reason.
 */
import type { Clock, Logger, DatagramBatch, PacketBatch } from '../common';
import type { LocalIdentity, RateLimiterOptions, TimerConfig } from '../protocol';
import { nodeCryptoAead, type BatchAead } from './batch-crypto';
import { newDropCounters, type AgentDropReason, type DropCounters } from './drop-reason';
import type { EndpointKind, InsideWriter, OutsideSender } from './endpoint';
import { HandshakeHandler } from './handshake-handler';
import { IndexTable } from './index-table';
import { FlowFilter } from './flow-filter';
import { InsidePath } from './inside';
import { OutsidePath, type ProbeSink } from './outside';
import type { Peer } from './peer';
import type { PeerSet } from './peer-set';

export { DEVICE_HEADROOM, DEVICE_TAILROOM } from './inside';

export interface DeviceComponents {
  clock: Clock;
  logger: Logger;
  /** Where sealed and handshake messages go (the agent adds relay framing). */
  outside: OutsideSender;
  /** Where opened packets and ICMP errors go (the TUN). */
  inside: InsideWriter;
  peers: PeerSet;
  local: LocalIdentity;
  timerConfig: TimerConfig;
  /** Batched ChaCha20-Poly1305. @default nodeCryptoAead (one node:crypto call per packet) */
  aead?: BatchAead;
  /** The member's own IPv4 addresses (host order): inbound packets to anything else are dropped. */
  localAddresses: readonly number[];
  /** Per-source limit of handshake messages before X25519 (handshake-handler.ts); `false`
   *  only for the bench's comparison. @default 20/s, burst 5 */
  handshakeRateLimit?: RateLimiterOptions | false;
  /** Where decrypted `isthmus ping` probes go (the agent's Prober). @default ignored */
  probes?: ProbeSink;
}

export class Device {
  readonly drops: DropCounters = newDropCounters();
  readonly indices = new IndexTable();
  readonly handshakes: HandshakeHandler;
  /** The inbound flow filter and its reply table. Its drops are counted in `drops` (status, metrics); its own tally is internal. */
  readonly filter: FlowFilter;
  private readonly peers: PeerSet;
  private readonly clock: Clock;
  private readonly inside: InsidePath;
  private readonly outside: OutsidePath;

  constructor(c: DeviceComponents) {
    this.peers = c.peers;
    this.clock = c.clock;
    this.handshakes = new HandshakeHandler({
      ...c,
      indices: this.indices,
      drop: (r) => this.drop(r),
      sendStaged: (p) => this.inside.sendStaged(p),
      sendKeepalive: (p) => this.inside.sendKeepalive(p),
    });
    this.filter = new FlowFilter(c.clock, { localAddresses: c.localAddresses });
    const shared = {
      clock: c.clock, peers: c.peers, drops: this.drops, handshakes: this.handshakes, aead: c.aead ?? nodeCryptoAead, filter: this.filter,
    };
    this.inside = new InsidePath({ ...shared, outside: c.outside, inside: c.inside });
    this.outside = new OutsidePath({ ...shared, indices: this.indices, inside: c.inside, probes: c.probes ?? { receive: () => {} } });
  }

  drop(reason: AgentDropReason): void {
    this.drops[reason]++;
  }

  /** A TUN batch (inside.ts): packets with DEVICE_HEADROOM in front, at most `maxLen` (the
   *  TUN's MTU) long with DEVICE_TAILROOM behind. */
  readInsidePackets(b: PacketBatch, maxLen: number): void {
    this.inside.readInsidePackets(b, maxLen);
  }

  /** A batch of WireGuard messages from the underlay (outside.ts): from UDP sources when
   *  `kind` is Direct, from overlay addresses (`addrs`) through the relay when Relay. */
  readOutsidePackets(b: DatagramBatch, kind: EndpointKind): void {
    this.outside.readOutsidePackets(b, kind);
  }

  /** Run the due timers of every peer with session state (called a few times a second by the
   *  agent), then drop the session state of those with nothing in flight (peer.ts): idle
   *  directory peers cost nothing here. */
  tick(): void {
    const now = this.clock.now();
    for (const peer of this.peers.live()) {
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
            this.inside.sendKeepalive(peer);
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
    this.peers.trimIdle(now, (p) => this.indices.countOf(p) === 0);
  }

  /** Start a handshake now for every peer with packets waiting for one (only live peers stage). */
  retryPendingHandshakes(): void {
    for (const peer of this.peers.live()) if (peer.staged.length > 0) this.handshakes.initiate(peer, true);
  }

  /** Release the indices of a peer that left the peer set. */
  forgetPeer(peer: Peer): void {
    this.indices.deletePeer(peer);
  }
}
