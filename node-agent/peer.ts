/**
 * One WireGuard peer of this member: its keys, the prefixes it owns, where to reach it,
 * its session keypairs (previous/current/next, rotated as in wireguard-go's
 * noise-protocol.go) and the packets waiting for a session.
 */
import type { Keypair, TimerStateMachine, PeerCrypto, InitiatorState, CookieGenerator } from '../protocol';
import type { Prefix } from '../common';
import type { Endpoint } from './endpoint';
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

export class Peer {
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
  readonly stats: PeerStats = { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0, handshakes: 0, lastHandshakeWallMs: 0 };

  constructor(
    readonly publicKey: Uint8Array,
    readonly publicKeyBase64: string,
    readonly crypto: PeerCrypto,
    readonly cookies: CookieGenerator,
    readonly timers: TimerStateMachine,
    public allowedIps: Prefix[],
    public endpoint: Endpoint | undefined,
  ) {}

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
