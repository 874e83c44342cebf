/**
 * The relay's session table: member overlay address (vip) ↔ UDP source (ip, port), both
 * ways. Pure: time comes in as arguments. One relay socket, so the relay side of the
 * 4-tuple is fixed and (ip, port) of the member identifies the 4-tuple.
 *
 * Invariants: each vip has at most one tuple and each tuple at most one vip. Binding a vip
 * from a new tuple (member reconnected, NAT rebinding) removes the old tuple; binding a
 * tuple already used by another vip removes that other session.
 *
 * Memory: a relay holds one Session per member for as long as the member stays (100k idle
 * members on a relay cluster), so a session is one small object of fixed shape: the key as a
 * 32-char one-byte string (not a Uint8Array: those cost an ArrayBuffer, a backing store and its
 * bookkeeping, ~300 bytes, for 32 bytes of key), tags shared between sessions (policy-gate.ts
 * interns them), no per-session timers or closures. bench:scale reports the heap per session.
 */

export interface Session {
  readonly vip: number;
  readonly addr: number;
  readonly port: number;
  /** the member's static public key, as authenticated */
  readonly publicKey: Uint8Array;
  /** monotonic ms of bind */
  readonly since: number;
  /** monotonic ms of the last frame from this member */
  lastSeen: number;
  /** the member's tags (policy-gate.ts; [] without a PolicySource), loaded at AUTH, refreshed on node-changed */
  tags: readonly string[];
  /** tag class under the current policy (CompiledPolicy.classId); -1 until the gate classified it */
  policyClass: number;
}

class SessionRecord implements Session {
  lastSeen: number;
  policyClass = -1;
  /** the 32 key bytes as a latin1 string */
  private readonly key: string;

  constructor(readonly vip: number, readonly addr: number, readonly port: number, publicKey: Uint8Array,
    readonly since: number, public tags: readonly string[]) {
    this.key = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('latin1');
    this.lastSeen = since;
  }

  /** A fresh copy of the member's key (status output; nothing on the hot path reads it). */
  get publicKey(): Uint8Array {
    return new Uint8Array(Buffer.from(this.key, 'latin1'));
  }
}

/** (ip, port) packed into one safe integer: ip * 65536 + port < 2^48. */
export function tupleKey(addr: number, port: number): number {
  return (addr >>> 0) * 65536 + (port & 0xffff);
}

export interface BindResult {
  session: Session;
  /** sessions removed by this bind (the vip's old tuple, or another vip on this tuple) */
  replaced: Session[];
}

/** Told about every change of the table (the relay's C fast path mirrors it: fast-path.ts). */
export interface SessionTableMirror {
  bound(s: Session): void;
  unbound(s: Session): void;
  cleared(): void;
}

export class SessionTable {
  private readonly byVip = new Map<number, Session>();
  private readonly byTuple = new Map<number, Session>();
  private mirror: SessionTableMirror | undefined;

  /** Keep `m` exact from now on (set while the table is empty). */
  setMirror(m: SessionTableMirror | undefined): void {
    this.mirror = m;
  }

  get size(): number {
    return this.byVip.size;
  }

  bind(vip: number, addr: number, port: number, publicKey: Uint8Array, now: number, tags: readonly string[] = []): BindResult {
    const replaced: Session[] = [];
    const old = this.byVip.get(vip);
    if (old) {
      this.remove(old);
      replaced.push(old);
    }
    const other = this.byTuple.get(tupleKey(addr, port));
    if (other) {
      this.remove(other);
      replaced.push(other);
    }
    const session: Session = new SessionRecord(vip >>> 0, addr >>> 0, port, publicKey, now, tags);
    this.byVip.set(session.vip, session);
    this.byTuple.set(tupleKey(addr, port), session);
    this.mirror?.bound(session);
    return { session, replaced };
  }

  byAddress(addr: number, port: number): Session | undefined {
    return this.byTuple.get(tupleKey(addr, port));
  }

  byOverlay(vip: number): Session | undefined {
    return this.byVip.get(vip >>> 0);
  }

  /** Remove a session if it is still the current one for its vip. */
  remove(s: Session): boolean {
    if (this.byVip.get(s.vip) !== s) return false;
    this.byVip.delete(s.vip);
    const k = tupleKey(s.addr, s.port);
    if (this.byTuple.get(k) === s) this.byTuple.delete(k);
    this.mirror?.unbound(s);
    return true;
  }

  unbindVip(vip: number): Session | undefined {
    const s = this.byVip.get(vip >>> 0);
    if (s) this.remove(s);
    return s;
  }

  /** Remove every session not seen for `idleMs` or more; returns them. */
  expire(now: number, idleMs: number): Session[] {
    const gone: Session[] = [];
    for (const s of this.byVip.values()) {
      if (now - s.lastSeen >= idleMs) gone.push(s);
    }
    for (const s of gone) this.remove(s);
    return gone;
  }

  sessions(): IterableIterator<Session> {
    return this.byVip.values();
  }

  clear(): void {
    this.byVip.clear();
    this.byTuple.clear();
    this.mirror?.cleared();
  }
}
