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
  private readonly rng = Buffer.alloc(4);

  /** A fresh, unused index for `peer`. */
  allocate(peer: Peer): number {
    for (;;) {
      randomBytes(4).copy(this.rng);
      const index = this.rng.readUInt32LE(0);
      if (!this.entries.has(index)) {
        this.entries.set(index, { peer, keypair: undefined });
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
    this.entries.delete(index);
  }

  deletePeer(peer: Peer): void {
    for (const [index, e] of this.entries) if (e.peer === peer) this.entries.delete(index);
  }

  get size(): number {
    return this.entries.size;
  }
}
