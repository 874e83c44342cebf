/**
 * Which source addresses proved the mesh key, which HELLO nonces were seen (single use), and
 * a once-per-tick limit on MESH_REAUTH replies. Pure bookkeeping, bounded maps.
 */
import { tupleKey } from './session-table';

const MAX_TRUSTED = 4096;
const MAX_NONCES = 65_536;
const MAX_REAUTH_PER_TICK = 1024;

export class MeshTrust {
  /** tupleKey(addr, port) → relay id */
  private readonly trusted = new Map<number, string>();
  private readonly nonces = new Map<string, number>();
  private readonly reauthed = new Set<number>();

  constructor(private readonly nonceWindowMs: number) {}

  isTrusted(addr: number, port: number): boolean {
    return this.trusted.has(tupleKey(addr, port));
  }

  trust(addr: number, port: number, relayId: string): void {
    if (this.trusted.size >= MAX_TRUSTED) this.trusted.clear();
    this.trusted.set(tupleKey(addr, port), relayId);
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
