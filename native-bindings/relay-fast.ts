/**
 * The relay's local forwarding fast path in the addon (src/relay_fast.c): a C mirror of the
 * relay's sessions and policy verdicts, consulted on every received batch BEFORE JS. DATA from
 * a bound member to a member bound on this socket, whose classes the policy connects, is
 * rewritten and sent from C; everything else reaches the socket's receive handler unchanged
 * and in order (a batch forwarded entirely in C does not call JS at all).
 *
 * The caller (relay/fast-path.ts) keeps the mirror exact: every bind, unbind, class change,
 * verdict and policy change goes through here. C never decides anything JS has not told it.
 *
 * Owned by its NativeUdpSocket: created once per socket, freed when the socket closes; calls
 * after close do nothing.
 */
import type { NativeBinding } from './load';

/** Policy modes, as the relay's PolicyGate: no policy (forward all), in force, not loaded yet (leave to JS). */
export const FAST_POLICY_OFF = 0;
export const FAST_POLICY_ON = 1;
export const FAST_POLICY_LOADING = 2;
/** Verdict cells, as the PolicyGate's matrix. */
export const FAST_UNKNOWN = 0;
export const FAST_ALLOW = 1;
export const FAST_DENY = 2;

/** Counter slots (src/relay_fast.h RF_STAT_*). */
const FORWARDED = 0;
const BYTES = 1;
const POLICY_DROPS = 2;
const PASSED = 3;
const JS_SKIPPED = 4;

export interface RelayFastOptions {
  /** The relay DATA frame type byte (protocol FrameType.DATA). */
  dataType: number;
  /** Smallest WireGuard message a DATA frame may carry (protocol MSG_TRANSPORT_MIN_SIZE). */
  minPayload: number;
}

export interface RelayFastStats {
  /** DATA frames forwarded in C, and their bytes (relay header included) */
  forwarded: number;
  bytes: number;
  /** DATA frames refused in C: the policy does not connect the pair */
  policyDrops: number;
  /** frames handed to JS */
  passed: number;
  /** receive batches forwarded entirely in C (no JS call) */
  batchesInC: number;
}

export class RelayFastTable {
  private readonly seen = new Uint32Array(1024);
  private on = false;

  /** @internal NativeUdpSocket.relayFastPath() makes it. */
  constructor(private readonly native: NativeBinding, private readonly handle: Buffer,
    private readonly counters: Float64Array, private readonly isClosed: () => boolean) {}

  /** Forward in C (true) or hand every frame to JS (false). Starts off. */
  enable(on: boolean): void {
    if (this.isClosed()) return;
    this.on = on;
    this.native.rfEnable(this.handle, on);
  }

  get enabled(): boolean {
    return this.on && !this.isClosed();
  }

  /** Bind `vip` to (addr, port) with policy class `cls` (-1: unknown); replaces the vip's old
   *  tuple and the tuple's old vip, as SessionTable.bind. Same tuple again: the class only. */
  set(vip: number, addr: number, port: number, cls: number): void {
    if (this.isClosed()) return;
    this.native.rfSet(this.handle, vip >>> 0, addr >>> 0, port, cls);
  }

  delete(vip: number): boolean {
    if (this.isClosed()) return false;
    return this.native.rfDelete(this.handle, vip >>> 0);
  }

  clear(): void {
    if (!this.isClosed()) this.native.rfClear(this.handle);
  }

  get size(): number {
    return this.isClosed() ? 0 : this.native.rfSize(this.handle);
  }

  /** A new policy or mode (FAST_POLICY_*): every verdict is unknown again. */
  policy(mode: number): void {
    if (!this.isClosed()) this.native.rfPolicy(this.handle, mode);
  }

  /** One verdict cell (FAST_*) for frames from class `a` to class `b`. */
  verdict(a: number, b: number, v: number): void {
    if (!this.isClosed()) this.native.rfVerdict(this.handle, a, b, v);
  }

  /** Calls `fn` with each vip that sent a frame handled in C since the last call. */
  drainSeen(fn: (vip: number) => void): void {
    if (this.isClosed()) return;
    for (;;) {
      const n = this.native.rfDrainSeen(this.handle, this.seen);
      for (let i = 0; i < n; i++) fn(this.seen[i]!);
      if (n < this.seen.length) return;
    }
  }

  get stats(): RelayFastStats {
    const c = this.counters;
    return { forwarded: c[FORWARDED]!, bytes: c[BYTES]!, policyDrops: c[POLICY_DROPS]!, passed: c[PASSED]!, batchesInC: c[JS_SKIPPED]! };
  }
}
