/**
 * Which source addresses proved the mesh key and the MESH_DATA keys they send with (the
 * current and the previous handshake's: frames sealed before the sender saw our newest ACK
 * still verify), which HELLO nonces were seen (single use), and a once-per-tick limit on
 * MESH_REAUTH replies. Pure bookkeeping, bounded maps.
 */
import { ReplayWindow } from './mesh-frame';
import { tupleKey } from './session-table';

export interface RxKey {
  key: Uint8Array;
  window: ReplayWindow;
}

/** A trusted sender: its relay id and the keys its MESH_DATA may be sealed with. */
export interface TrustedSender {
  relayId: string;
  current: RxKey;
  previous: RxKey | undefined;
}

const MAX_TRUSTED = 4096;
const MAX_NONCES = 65_536;
const MAX_REAUTH_PER_TICK = 1024;

export class MeshTrust {
  /** tupleKey(addr, port) → sender */
  private readonly trusted = new Map<number, TrustedSender>();
  private readonly nonces = new Map<string, number>();
  private readonly reauthed = new Set<number>();

  constructor(private readonly nonceWindowMs: number) {}

  /** The sender at this address if it proved the mesh key. */
  sender(addr: number, port: number): TrustedSender | undefined {
    return this.trusted.get(tupleKey(addr, port));
  }

  /** After a HELLO from `addr:port` was answered: `key` is what its MESH_DATA is sealed with from now on. */
  trust(addr: number, port: number, relayId: string, key: Uint8Array): void {
    const k = tupleKey(addr, port);
    const old = this.trusted.get(k);
    const current = { key, window: new ReplayWindow() };
    if (old && old.relayId === relayId) {
      old.previous = old.current;
      old.current = current;
      return;
    }
    if (this.trusted.size >= MAX_TRUSTED) this.trusted.clear();
    this.trusted.set(k, { relayId, current, previous: undefined });
  }

  /** Record a HELLO nonce; false if it was seen before (a replay). */
  firstUse(nonce: Uint8Array, wallMs: number): boolean {
    const id = Buffer.from(nonce).toString('hex');
    if (this.nonces.has(id)) return false;
    if (this.nonces.size >= MAX_NONCES) this.nonces.clear();
    this.nonces.set(id, wallMs);
    return true;
  }

  /** True at most once per address per tick (and for a bounded number of addresses). */
  mayReauth(addr: number, port: number): boolean {
    const k = tupleKey(addr, port);
    if (this.reauthed.has(k) || this.reauthed.size >= MAX_REAUTH_PER_TICK) return false;
    this.reauthed.add(k);
    return true;
  }

  tick(wallMs: number): void {
    for (const [n, t] of this.nonces) if (wallMs - t > this.nonceWindowMs) this.nonces.delete(n);
    this.reauthed.clear();
  }
}
