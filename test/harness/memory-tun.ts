/**
 * An in-memory TunDevice (after wireguard-go's tun/tuntest ChannelTUN): tests `inject`
 * packets as if the kernel routed them into the TUN, and read what the engine wrote.
 *
 *   inject(pkts) ─► one PacketBatch in this device's slab ─► the handler (synchronously)
 *   write / writeInPlace ─► pending ─► flush() ─► written() / next()
 *
 * The batch contract is honoured strictly, so engine bugs show up here rather than on a
 * real TUN: every packet has exactly `headroom` free bytes in front and `tailroom` behind
 * (the rest of the slab is poison), the slab is reused for the next batch, and after the
 * handler returns the whole slab is overwritten with poison: a view kept past the handler
 * call reads garbage. `write` copies at once; `writeInPlace` keeps the caller's view and
 * copies it only at `flush()`, so an engine that reuses that memory before flushing sends
 * the wrong bytes. `violations` counts in-place writes into this TUN's batches that were
 * still unflushed when the batch ended, and in-place writes flushed after the batch their
 * bytes live in (here or on a memory socket) ended: slab-guard.ts.
 */
import type { PacketBatch, TunDevice } from '../../common/packet-io';
import { IDEAL_BATCH_SIZE } from '../../common/packet-io';
import { guardSlab, release, retireBatch, stamp } from './slab-guard';

/** Fill byte for memory that no caller may read (not a plausible IPv4 first byte). */
export const POISON = 0xee;

export interface MemoryTunOptions {
  /** @default 'mtun0' */
  name?: string;
  /** @default 1420 */
  mtu: number;
  /** Free bytes in front of every injected packet. */
  headroom: number;
  /** Free bytes behind every injected packet. @default 0 */
  tailroom?: number;
  /** Packets per batch; `inject` splits longer lists. @default IDEAL_BATCH_SIZE */
  batchSize?: number;
}

interface Pending {
  /** The bytes: a private copy (write) or the caller's view (writeInPlace). */
  view: Uint8Array;
  inPlace: boolean;
  /** slab-guard generation of the view's memory (in place only) */
  stamp: number;
}

export class MemoryTun implements TunDevice {
  readonly name: string;
  readonly mtu: number;
  readonly headroom: number;
  readonly tailroom: number;
  /** Calls to flush(), and batch-contract violations (see the file comment). */
  flushes = 0;
  violations = 0;
  closed = false;
  private handler: ((b: PacketBatch) => void) | undefined;
  private readonly batchSize: number;
  private readonly slotSize: number;
  private readonly slab: Buffer;
  private readonly batch: PacketBatch;
  private delivering = false;
  private pending: Pending[] = [];
  private readonly out: Buffer[] = [];
  private cursor = 0;
  private waiters: (() => void)[] = [];

  constructor(o: MemoryTunOptions) {
    this.name = o.name ?? 'mtun0';
    this.mtu = o.mtu;
    this.headroom = o.headroom;
    this.tailroom = o.tailroom ?? 0;
    this.batchSize = o.batchSize ?? IDEAL_BATCH_SIZE;
    // A poison gap between slots, so writes past the tailroom are visible too.
    this.slotSize = this.headroom + this.mtu + this.tailroom + 16;
    this.slab = Buffer.alloc(this.slotSize * this.batchSize, POISON);
    guardSlab(this.slab);
    this.batch = { count: 0, data: this.slab, offsets: new Uint32Array(this.batchSize), lengths: new Uint32Array(this.batchSize) };
  }

  onReceive(handler: (batch: PacketBatch) => void): void {
    this.handler = handler;
  }

  /**
   * The kernel routes `packets` into the TUN: delivered to the handler now, as batches of at
   * most `batchSize`. Throws on a packet longer than the MTU, with no handler, after close,
   * or when called from inside the handler (a real TUN never re-enters).
   */
  inject(packets: Uint8Array | Uint8Array[]): void {
    const list = Array.isArray(packets) ? packets : [packets];
    if (this.closed) throw new Error(`${this.name}: inject after close`);
    if (!this.handler) throw new Error(`${this.name}: inject before onReceive`);
    if (this.delivering) throw new Error(`${this.name}: inject from inside the receive handler`);
    for (const p of list) if (p.length > this.mtu) throw new RangeError(`${this.name}: ${p.length}-byte packet exceeds MTU ${this.mtu}`);
    for (let start = 0; start < list.length; start += this.batchSize) {
      this.deliver(list.slice(start, start + this.batchSize));
    }
  }

  private deliver(packets: Uint8Array[]): void {
    const b = this.batch;
    b.count = packets.length;
    packets.forEach((p, i) => {
      // Headroom and tailroom are the engine's to write into; they hold poison, not zeros.
      const off = i * this.slotSize + this.headroom;
      this.slab.set(p, off);
      b.offsets[i] = off;
      b.lengths[i] = p.length;
    });
    this.delivering = true;
    try {
      this.handler!(b);
    } finally {
      this.delivering = false;
      this.endBatch();
    }
  }

  /** The batch's memory goes back to the "kernel": poisoned, and views into it are stale. */
  private endBatch(): void {
    this.violations += retireBatch(this.slab);
    this.slab.fill(POISON);
  }

  write(buf: Uint8Array, offset: number, length: number): void {
    if (this.closed) return;
    this.pending.push({ view: Uint8Array.prototype.slice.call(buf, offset, offset + length), inPlace: false, stamp: -1 });
  }

  /** The bytes are read at the next flush(); the caller must not reuse them before. */
  writeInPlace(buf: Uint8Array, offset: number, length: number): void {
    if (this.closed) return;
    this.pending.push({ view: buf.subarray(offset, offset + length), inPlace: true, stamp: stamp(buf) });
  }

  flush(): void {
    if (this.closed) return;
    this.flushes++;
    if (this.pending.length === 0) return;
    for (const p of this.pending) {
      if (p.inPlace && !release(p.view, p.stamp)) this.violations++;
      this.out.push(Buffer.from(p.view)); // a copy: the in-place bytes are read now, at flush
    }
    this.pending = [];
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  close(): void {
    this.closed = true;
    for (const p of this.pending) if (p.inPlace) release(p.view, p.stamp);
    this.pending = [];
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Every packet flushed to the "kernel" so far, oldest first (copies). */
  written(): Buffer[] {
    return this.out.slice();
  }

  /** Drop what was written so far; `next()` continues with the first packet written after. */
  clearWritten(): void {
    this.out.length = 0;
    this.cursor = 0;
  }

  /**
   * The next flushed packet not yet returned by next() (optionally the next one matching
   * `match`; packets skipped on the way are consumed). Rejects after `timeoutMs`.
   */
  async next(opts: { timeoutMs?: number; match?: (p: Buffer) => boolean } = {}): Promise<Buffer> {
    const deadline = Date.now() + (opts.timeoutMs ?? 3000);
    for (;;) {
      while (this.cursor < this.out.length) {
        const p = this.out[this.cursor++];
        if (!opts.match || opts.match(p)) return p;
      }
      if (this.closed) throw new Error(`${this.name}: closed while waiting for a packet`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no packet written within ${opts.timeoutMs ?? 3000} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiters = this.waiters.filter((f) => f !== done);
          resolve();
        }, left);
        const done = (): void => {
          clearTimeout(t);
          resolve();
        };
        this.waiters.push(done);
      });
    }
  }
}
