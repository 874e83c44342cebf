/**
 * TunDevice over the native addon: one uv_poll on the TUN fd, reads drained in C into a
 * JS-owned slab, one JS call per batch; writes copied into a tx slab and written by one
 * native call per flush().
 *
 * Slab slot layout (rx and tx use the same slot size):
 *
 *   | headroom (default 64) | packet (<= mtu) | tailroom (>= 32, for an AEAD tag) |
 *   ^ i * slotSize          ^ offsets[i]
 */
import { IDEAL_BATCH_SIZE, type PacketBatch, type TunDevice, tryParsePrefix, type Prefix } from '../common';
import { InvalidOptionError, NativeIoError } from './errors';
import { loadNative } from './load';
import { IN_SLAB, intOption, NativeIo } from './native-io';

export interface TunOptions {
  /** Interface name or kernel pattern (`isth%d`). @default kernel-chosen `tunN` */
  name?: string;
  /** @default 1420 (WireGuard's default over IPv4/IPv6 underlays) */
  mtu?: number;
  /** IPv4 address with prefix length, `a.b.c.d/len`. @default none (device left unaddressed) */
  address?: string;
  /** Free bytes in front of every received packet. @default 64 */
  headroom?: number;
  /** Packets per read batch and per tx slab. @default 128 */
  batchSize?: number;
  /**
   * TUN offloads (IFF_VNET_HDR, TSO4 + checksum): the kernel hands over TCP super-packets
   * of up to 64 KB, split in the addon into segments <= mtu (the batch still holds only
   * ordinary packets); written runs of one TCP flow are coalesced into super-packets.
   * Falls back to a plain device when the kernel refuses; `ISTHMUS_NO_TUN_OFFLOAD=1` in the
   * environment turns it off too. See `offload`. @default true
   */
  offload?: boolean;
}

export const DEFAULT_TUN_OPTIONS = {
  mtu: 1420,
  headroom: 64,
  batchSize: IDEAL_BATCH_SIZE,
} as const;

/** Bytes kept free after each packet in a slot (room for a 16-byte Poly1305 tag, rounded). */
export const TUN_TAILROOM = 32;

export interface TunStats {
  readPackets: number;
  readBatches: number;
  readErrors: number;
  writePackets: number;
  /** Kernel refused or was full (EAGAIN), plus packets larger than a slot. */
  writeDrops: number;
  /** Offloads: reads dropped whole for a bad vnet header or a GSO packet that cannot be split. */
  offloadMalformed: number;
  /** Offloads: TCP super-packets read (each split into readPackets' segments). */
  superPacketsRead: number;
  /** Offloads: coalesced super-packets written (writePackets counts their segments). */
  superPacketsWritten: number;
}

/** The `address` option: `a.b.c.d/len` on the shared strict parser; host bits kept (the device's own address). */
export function parseTunAddress(s: string): Prefix {
  const p = tryParsePrefix(s);
  if (p === undefined) throw new InvalidOptionError(`address must be a.b.c.d/len (len 0-32), got ${JSON.stringify(s)}`);
  return p;
}

/** Bytes of the struct virtio_net_hdr in front of every packet on a TUN with offloads. */
export const VNET_HDR_LEN = 10;

/**
 * The TSO split of the read path, for tests: `input` is one read from an offload TUN
 * (virtio_net_hdr + packet); the answer is its segments, each at most `maxLen` bytes with
 * its own IPv4 and TCP checksum, or null when the device would drop it as malformed
 * (counted in `offloadMalformed`).
 */
export function tunOffloadSplit(input: Uint8Array, maxLen: number): Buffer[] | null {
  return loadNative().offloadSplit(input, maxLen);
}

/** The write path's coalescing, for tests: what one flush of `packets` hands the kernel,
 *  each with its virtio_net_hdr (TCPV4 for a coalesced run, zero for the rest). */
export function tunOffloadCoalesce(packets: Uint8Array[]): Buffer[] {
  return loadNative().offloadCoalesce(packets);
}

/** A TUN device; slots are headroom + mtu + TUN_TAILROOM bytes, rounded up to 64. */
export class NativeTunDevice extends NativeIo<PacketBatch> implements TunDevice {
  readonly name: string;
  readonly mtu: number;
  readonly headroom: number;
  /** Whether TUN offloads are on (asked for, and the kernel accepted them). */
  readonly offload: boolean;

  private readonly rxSlab: Buffer;
  private readonly rxLengths: Uint32Array;
  private readonly batch: PacketBatch;

  constructor(opts: TunOptions = {}) {
    const native = loadNative();
    const mtu = intOption('mtu', opts.mtu ?? DEFAULT_TUN_OPTIONS.mtu, 68, 65535);
    const headroom = intOption('headroom', opts.headroom ?? DEFAULT_TUN_OPTIONS.headroom, 0, 4096);
    const batchSize = intOption('batchSize', opts.batchSize ?? DEFAULT_TUN_OPTIONS.batchSize, 1, 4096);
    const address = opts.address === undefined ? undefined : parseTunAddress(opts.address);
    const name = opts.name ?? '';
    if (Buffer.byteLength(name) > 15) throw new InvalidOptionError(`interface name longer than 15 bytes: ${name}`);
    super(native, batchSize, Math.ceil((headroom + mtu + TUN_TAILROOM) / 64) * 64);
    this.mtu = mtu;
    this.headroom = headroom;

    const n = this.batchSize;
    this.rxSlab = Buffer.alloc(n * this.slotSize);
    this.rxLengths = new Uint32Array(n);
    const offsets = new Uint32Array(n);
    for (let i = 0; i < n; i++) offsets[i] = i * this.slotSize + this.headroom;
    this.batch = { count: 0, data: this.rxSlab, offsets, lengths: this.rxLengths };

    try {
      const opened = this.native.tunOpen(this.handle, name, opts.offload ?? true);
      this.name = opened.name;
      this.offload = opened.offload;
    } catch (err) {
      throw NativeIoError.from(err);
    }
    try {
      this.native.tunConfigure(this.handle, this.mtu, address?.addr ?? 0, address?.bits ?? -1, true);
      this.native.ioInit(
        this.handle, this, this.onRead, this.counters, n, this.slotSize, this.headroom,
        this.rxSlab, this.rxLengths, null, null, this.txSlab, this.txLengths, null, null,
      );
    } catch (err) {
      this.native.ioClose(this.handle);
      this.closed = true;
      throw NativeIoError.from(err);
    }
  }

  /** Called by C with `this` = the device, once per drained batch. */
  private onRead(this: NativeTunDevice, count: number): void {
    this.batch.count = count;
    this.handler!(this.batch);
  }

  write(buf: Uint8Array, offset: number, length: number): void {
    if (this.closed || length > this.slotSize || length <= 0) {
      this.jsDrops++;
      return;
    }
    if (this.txCount === this.batchSize) this.flush();
    const pos = this.txCount * this.slotSize;
    if (Buffer.isBuffer(buf)) buf.copy(this.txSlab, pos, offset, offset + length);
    else this.txSlab.set(buf.subarray(offset, offset + length), pos);
    this.txExtOffsets[this.txCount] = IN_SLAB;
    this.txLengths[this.txCount++] = length;
  }

  /**
   * Like write(), without the copy: the packet is written from `buf` itself at the next
   * flush(). The caller guarantees `buf[offset, offset+length)` does not change until then
   * (e.g. a UDP receive slab whose batch handler flushes before it returns). A different
   * `buf` than the pending one flushes first.
   */
  writeInPlace(buf: Uint8Array, offset: number, length: number): void {
    if (this.closed || length > 65535 || length <= 0 || offset < 0 || offset + length > buf.length) {
      this.jsDrops++;
      return;
    }
    if ((this.txExt !== undefined && this.txExt !== buf) || this.txCount === this.batchSize) this.flush();
    this.txExt = buf;
    this.txExtOffsets[this.txCount] = offset;
    this.txLengths[this.txCount++] = length;
  }

  offloadStats(): { superPacketsRead: number; superPacketsWritten: number; malformed: number } {
    const s = this.stats;
    return { superPacketsRead: s.superPacketsRead, superPacketsWritten: s.superPacketsWritten, malformed: s.offloadMalformed };
  }

  get stats(): TunStats {
    const c = this.counters;
    const b = this.native;
    return {
      readPackets: c[b.STAT_RX_PACKETS]!,
      readBatches: c[b.STAT_RX_BATCHES]!,
      readErrors: c[b.STAT_RX_ERRORS]!,
      writePackets: c[b.STAT_TX_PACKETS]!,
      writeDrops: c[b.STAT_TX_DROPS]! + this.jsDrops,
      offloadMalformed: c[b.STAT_OFFLOAD_MALFORMED]!,
      superPacketsRead: c[b.STAT_RX_SUPER]!,
      superPacketsWritten: c[b.STAT_TX_SUPER]!,
    };
  }
}
