/**
 * Frames waiting for a member's tags (policy-gate.ts): a DATA frame for a remote member, or a
 * MESH_DATA frame from one, whose tags this relay is still looking up (one Redis round trip).
 * Dropping them would cost the first WireGuard handshake to a peer on another relay its 5 s
 * retry, so they are copied and run through the relay again once the tags are known, when the
 * policy decides them like any other frame. Bounded per member, in total and in time; only
 * this (rare) path allocates.
 */

/** Where a held frame came in: the member port (as DATA) or the mesh port (as MESH_DATA). */
export const HeldPort = { MEMBER: 0, MESH: 1 } as const;
export type HeldPort = (typeof HeldPort)[keyof typeof HeldPort];

export interface HeldFrame {
  port: HeldPort;
  buf: Buffer;
  addr: number;
  udpPort: number;
}

export interface PolicyHeldOptions {
  /** @default 16 */
  perMember?: number;
  /** @default 1024 */
  total?: number;
  /** @default 2000 */
  ttlMs?: number;
}

export class PolicyHeld {
  private readonly q = new Map<number, { until: number; frames: HeldFrame[] }>();
  private count = 0;
  private readonly perMember: number;
  private readonly max: number;
  private readonly ttlMs: number;

  constructor(o: PolicyHeldOptions = {}) {
    this.perMember = o.perMember ?? 16;
    this.max = o.total ?? 1024;
    this.ttlMs = o.ttlMs ?? 2000;
  }

  get size(): number {
    return this.count;
  }

  /** Copy `buf[off..off+len]`, waiting for `vip`'s tags; false when full (drop it). */
  hold(vip: number, port: HeldPort, buf: Uint8Array, off: number, len: number, addr: number, udpPort: number, now: number): boolean {
    if (this.count >= this.max) return false;
    let e = this.q.get(vip);
    if (!e) {
      e = { until: now + this.ttlMs, frames: [] };
      this.q.set(vip, e);
    }
    if (e.frames.length >= this.perMember) return false;
    e.frames.push({ port, buf: Buffer.from(buf.subarray(off, off + len)), addr, udpPort });
    this.count++;
    return true;
  }

  /** Remove and return the frames waiting for `vip`. */
  take(vip: number): HeldFrame[] {
    const e = this.q.get(vip);
    if (!e) return [];
    this.q.delete(vip);
    this.count -= e.frames.length;
    return e.frames;
  }

  /** Remove frames that waited too long (or all); returns how many. */
  expire(now: number, all = false): number {
    let n = 0;
    for (const [vip, e] of this.q) {
      if (!all && e.until > now) continue;
      this.q.delete(vip);
      this.count -= e.frames.length;
      n += e.frames.length;
    }
    return n;
  }
}
