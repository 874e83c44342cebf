/**
 * Local session indices → who they belong to (wireguard-go indextable.go). Every handshake
 * and keypair we create gets a random 32-bit index that peers echo back as "receiver".
 */
import { randomBytes } from 'node:crypto';
import type { Keypair } from '../protocol';
import type { Peer } from './peer';

export interface IndexEntry {
  peer: Peer;
  /** Set once the handshake under this index completed. */
  keypair: Keypair | undefined;
}

export class IndexTable {
  private readonly entries = new Map<number, IndexEntry>();
  /** Each peer's indices, so forgetting a peer costs O(its indices), not a scan of the table. */
  private readonly byPeer = new Map<Peer, Set<number>>();
  private readonly rng = Buffer.alloc(4);

  /** A fresh, unused index for `peer`. */
  allocate(peer: Peer): number {
    for (;;) {
      randomBytes(4).copy(this.rng);
      const index = this.rng.readUInt32LE(0);
      if (!this.entries.has(index)) {
        this.entries.set(index, { peer, keypair: undefined });
        let own = this.byPeer.get(peer);
        if (!own) this.byPeer.set(peer, (own = new Set()));
        own.add(index);
        return index;
      }
    }
  }

  get(index: number): IndexEntry | undefined {
    return this.entries.get(index);
  }

  setKeypair(index: number, keypair: Keypair): void {
    const e = this.entries.get(index);
    if (e) e.keypair = keypair;
  }

  delete(index: number): void {
    const e = this.entries.get(index);
    if (!e) return;
    this.entries.delete(index);
    const own = this.byPeer.get(e.peer);
    if (own) {
      own.delete(index);
      if (own.size === 0) this.byPeer.delete(e.peer);
    }
  }

  deletePeer(peer: Peer): void {
    const own = this.byPeer.get(peer);
    if (!own) return;
    for (const index of own) this.entries.delete(index);
    this.byPeer.delete(peer);
  }

  /** How many indices `peer` holds (tests: a trimmed peer holds none). */
  countOf(peer: Peer): number {
    return this.byPeer.get(peer)?.size ?? 0;
  }

  get size(): number {
    return this.entries.size;
  }
}
