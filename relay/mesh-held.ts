/**
 * Frames held for destinations whose route is being looked up or whose home relay is being
 * handshaken (after WireGuard's staged packets). The first packet after a failover is often a
 * TCP retransmission; dropping it would double the flow's stall. Bounded per destination, in
 * total and in time; copies are stored already framed as MESH_DATA (sealed when sent).
 */
import { RELAY_HEADER_LEN } from '../protocol';
import { MESH_DATA_HEADER_LEN, writeMeshDataHeader } from './mesh-frame';

export interface HeldFramesOptions {
  /** @default 16 */
  perDestination?: number;
  /** @default 1024 */
  total?: number;
  /** @default 2000 */
  ttlMs?: number;
}

/** Where held frames for a destination go: a peer, `null` = drop them, `undefined` = keep waiting. */
export type HeldTarget<T> = T | null | undefined;

export class HeldFrames {
  private readonly q = new Map<number, { until: number; frames: Buffer[] }>();
  private count = 0;
  private readonly perDst: number;
  private readonly max: number;
  private readonly ttlMs: number;

  constructor(o: HeldFramesOptions = {}) {
    this.perDst = o.perDestination ?? 16;
    this.max = o.total ?? 1024;
    this.ttlMs = o.ttlMs ?? 2000;
  }

  get size(): number {
    return this.count;
  }

  has(dstVip: number): boolean {
    return this.q.has(dstVip);
  }

  /** Copy a member DATA frame (`buf[off..off+len]`) as MESH_DATA; false when full. */
  hold(buf: Uint8Array, off: number, len: number, srcVip: number, dstVip: number, now: number): boolean {
    if (this.count >= this.max) return false;
    let e = this.q.get(dstVip);
    if (!e) {
      e = { until: now + this.ttlMs, frames: [] };
      this.q.set(dstVip, e);
    }
    if (e.frames.length >= this.perDst) return false;
    const f = Buffer.allocUnsafe(MESH_DATA_HEADER_LEN + len - RELAY_HEADER_LEN);
    writeMeshDataHeader(f, 0, dstVip, srcVip);
    f.set(buf.subarray(off + RELAY_HEADER_LEN, off + len), MESH_DATA_HEADER_LEN);
    e.frames.push(f);
    this.count++;
    return true;
  }

  /** Hand every destination's frames to `send` once `target` names a peer; drop expired ones. Returns frames sent. */
  drain<T>(now: number, target: (dstVip: number) => HeldTarget<T>, send: (f: Buffer, to: T) => void): number {
    let sent = 0;
    for (const [vip, e] of this.q) {
      const to = e.until <= now ? null : target(vip);
      if (to === undefined) continue;
      this.q.delete(vip);
      this.count -= e.frames.length;
      if (to === null) continue;
      for (const f of e.frames) send(f, to);
      sent += e.frames.length;
    }
    return sent;
  }
}
