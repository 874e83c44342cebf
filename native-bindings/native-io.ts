/**
 * What a TUN device and a UDP socket share on the JS side of the addon: the native handle,
 * the stats counters, the transmit queue (slab copies or in-place references, flushed in one
 * native call), receive start, and close. The subclasses own their receive batch and their
 * per-packet queueing (`write` / `send`).
 */
import { InvalidOptionError } from './errors';
import type { NativeBinding } from './load';

/** txExtOffsets value: the entry is in its tx slot (the addon's EXT_NONE); else an offset into `txExt`. */
export const IN_SLAB = 0xffffffff;

export abstract class NativeIo<Batch> {
  readonly batchSize: number;
  readonly slotSize: number;
  protected readonly native: NativeBinding;
  protected readonly handle: Buffer;
  protected readonly counters: Float64Array;
  protected readonly txSlab: Buffer;
  protected readonly txLengths: Uint32Array;
  /** Per tx entry: offset in `txExt` to send in place from, or IN_SLAB (copied into the slot). */
  protected readonly txExtOffsets: Uint32Array;
  protected txExt: Uint8Array | undefined;
  protected txCount = 0;
  /** Drops the kernel never saw (closed, oversize); added to the native drop counter. */
  protected jsDrops = 0;
  protected handler: ((batch: Batch) => void) | undefined;
  protected started = false;
  protected closed = false;

  protected constructor(native: NativeBinding, batchSize: number, slotSize: number) {
    this.native = native;
    this.batchSize = batchSize;
    this.slotSize = slotSize;
    this.handle = Buffer.alloc(native.sizeof_isthmus_io_t);
    this.counters = new Float64Array(native.STAT_COUNT);
    this.txSlab = Buffer.alloc(batchSize * slotSize);
    this.txLengths = new Uint32Array(batchSize);
    this.txExtOffsets = new Uint32Array(batchSize).fill(IN_SLAB);
  }

  /** Register the one receive handler and start polling the fd. */
  onReceive(handler: (batch: Batch) => void): void {
    this.handler = handler;
    if (!this.started && !this.closed) {
      this.started = true;
      this.native.ioStart(this.handle);
    }
  }

  /** Hand everything queued to the kernel in one native call. */
  flush(): void {
    if (this.txCount === 0 || this.closed) return;
    const n = this.txCount;
    this.txCount = 0;
    const ext = this.txExt;
    this.txExt = undefined;
    this.native.ioFlush(this.handle, n, ext ?? null, ext ? this.txExtOffsets : null);
  }

  /** Close the fd (a TUN interface goes away with it). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.jsDrops += this.txCount;
    this.txCount = 0;
    this.txExt = undefined;
    this.native.ioClose(this.handle);
  }
}

export function intOption(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  }
  return v;
}
