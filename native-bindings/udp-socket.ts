/**
 * DatagramSocket over the native addon: recvmmsg into a JS-owned slab (one JS call per
 * batch), sendmmsg from a tx slab on flush(). IPv4 only.
 *
 * Slot layout: | headroom | datagram (<= slotSize - headroom) |. A datagram larger than
 * that is dropped by the kernel copy (MSG_TRUNC) and counted as `rxTruncated`.
 * Sending never blocks: on EAGAIN the rest of the batch is dropped and counted in `txDrops`.
 */
import { IDEAL_BATCH_SIZE, type DatagramBatch, type DatagramSocket, formatAddr, parseAddr } from '../common';
import { InvalidOptionError, NativeIoError } from './errors';
import { loadNative } from './load';
import { IN_SLAB, intOption, NativeIo } from './native-io';
import { RelayFastTable, type RelayFastOptions } from './relay-fast';

export interface UdpOptions {
  /** IPv4 address to bind (`0.0.0.0` for all). */
  host: string;
  /** 0 lets the kernel pick; read the result from `localAddress.port`. */
  port: number;
  /** @default 128 */
  batchSize?: number;
  /** Bytes per slab slot, headroom included. @default 2048 */
  slotSize?: number;
  /** Free bytes in front of every received datagram. @default 64 */
  headroom?: number;
  /** SO_REUSEPORT, so several sockets (processes) share one port. @default false */
  reusePort?: boolean;
  /** SO_RCVBUF/SO_SNDBUF (FORCE variants tried first, they work as root).
   *  @default env ISTHMUS_UDP_BUFFER_BYTES, else 4 MiB */
  socketBufferBytes?: number;
}

export const DEFAULT_UDP_OPTIONS = {
  batchSize: IDEAL_BATCH_SIZE,
  slotSize: 2048,
  headroom: 64,
  reusePort: false,
  socketBufferBytes: 4 * 1024 * 1024,
} as const;

export interface UdpStats {
  rxPackets: number;
  rxBatches: number;
  /** Datagrams larger than a slot (minus headroom), dropped. */
  rxTruncated: number;
  rxErrors: number;
  txPackets: number;
  /** EAGAIN/refused by the kernel, bad length, or sent after close. */
  txDrops: number;
}

export class NativeUdpSocket extends NativeIo<DatagramBatch> implements DatagramSocket {
  readonly localAddress: { ip: string; port: number };
  readonly headroom: number;

  private readonly txAddrs: Uint32Array;
  private readonly txPorts: Uint32Array;
  private readonly batch: DatagramBatch;
  private fast: RelayFastTable | undefined;

  constructor(opts: UdpOptions) {
    const native = loadNative();
    let host: number;
    try {
      host = parseAddr(opts.host);
    } catch {
      throw new InvalidOptionError(`host must be an IPv4 address, got ${JSON.stringify(opts.host)}`);
    }
    const port = intOption('port', opts.port, 0, 65535);
    const batchSize = intOption('batchSize', opts.batchSize ?? DEFAULT_UDP_OPTIONS.batchSize, 1, native.UDP_MAX_BATCH);
    const slotSize = intOption('slotSize', opts.slotSize ?? DEFAULT_UDP_OPTIONS.slotSize, 64, 65536 + 4096);
    const headroom = intOption('headroom', opts.headroom ?? DEFAULT_UDP_OPTIONS.headroom, 0, slotSize - 1);
    super(native, batchSize, slotSize);
    this.headroom = headroom;
    const envBytes = process.env.ISTHMUS_UDP_BUFFER_BYTES;
    const bufBytes = intOption('socketBufferBytes',
      opts.socketBufferBytes ?? (envBytes ? Number(envBytes) : DEFAULT_UDP_OPTIONS.socketBufferBytes), 0, 2 ** 30);

    const n = this.batchSize;
    const rxSlab = Buffer.alloc(n * this.slotSize);
    const offsets = new Uint32Array(n);
    for (let i = 0; i < n; i++) offsets[i] = i * this.slotSize + this.headroom;
    this.batch = {
      count: 0, data: rxSlab, offsets,
      lengths: new Uint32Array(n), addrs: new Uint32Array(n), ports: new Uint32Array(n),
    };
    this.txAddrs = new Uint32Array(n);
    this.txPorts = new Uint32Array(n);

    let bound: number;
    try {
      bound = this.native.udpOpen(this.handle, host, port, opts.reusePort ?? false, bufBytes);
    } catch (err) {
      throw NativeIoError.from(err);
    }
    this.localAddress = { ip: formatAddr(host), port: bound };
    try {
      this.native.ioInit(
        this.handle, this, this.onRead, this.counters, n, this.slotSize, this.headroom,
        rxSlab, this.batch.lengths, this.batch.addrs, this.batch.ports,
        this.txSlab, this.txLengths, this.txAddrs, this.txPorts,
      );
    } catch (err) {
      this.native.ioClose(this.handle);
      this.closed = true;
      throw NativeIoError.from(err);
    }
  }

  /** Called by C with `this` = the socket, once per drained batch. */
  private onRead(this: NativeUdpSocket, count: number): void {
    this.batch.count = count;
    this.handler!(this.batch);
  }

  send(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void {
    if (this.closed || length > this.slotSize || length < 0) {
      this.jsDrops++;
      return;
    }
    if (this.txCount === this.batchSize) this.flush();
    const i = this.txCount++;
    const pos = i * this.slotSize;
    if (Buffer.isBuffer(buf)) buf.copy(this.txSlab, pos, offset, offset + length);
    else this.txSlab.set(buf.subarray(offset, offset + length), pos);
    this.txExtOffsets[i] = IN_SLAB;
    this.txLengths[i] = length;
    this.txAddrs[i] = addr;
    this.txPorts[i] = port;
  }

  /**
   * Like send(), without the copy: the datagram goes out from `buf` itself (sendmmsg iovecs
   * point into it) at the next flush(). The caller guarantees `buf[offset, offset+length)`
   * does not change until then, e.g. a receive slab whose batch handler flushes before it
   * returns. A different `buf` than the pending one flushes first.
   */
  sendInPlace(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void {
    if (this.closed || length > 65535 || length < 0 || offset < 0 || offset + length > buf.length) {
      this.jsDrops++;
      return;
    }
    if ((this.txExt !== undefined && this.txExt !== buf) || this.txCount === this.batchSize) this.flush();
    const i = this.txCount++;
    this.txExt = buf;
    this.txExtOffsets[i] = offset;
    this.txLengths[i] = length;
    this.txAddrs[i] = addr;
    this.txPorts[i] = port;
  }

  /**
   * The relay's forwarding fast path on this socket (relay-fast.ts), created off on first call.
   * While it is on, a receive batch holds only the frames C left for JS, and `offsets` point at
   * their slots (not necessarily i * slotSize + headroom).
   */
  relayFastPath(opts: RelayFastOptions): RelayFastTable {
    if (this.fast) return this.fast;
    if (this.closed) throw new NativeIoError('EBADF', 'relayFastPath: the socket is closed');
    const counters = new Float64Array(this.native.RF_STAT_COUNT);
    try {
      this.native.rfAttach(this.handle, counters, this.batch.offsets, opts.dataType, opts.minPayload);
    } catch (err) {
      throw NativeIoError.from(err);
    }
    this.fast = new RelayFastTable(this.native, this.handle, counters, () => this.closed);
    return this.fast;
  }

  get stats(): UdpStats {
    const c = this.counters;
    const b = this.native;
    return {
      rxPackets: c[b.STAT_RX_PACKETS]!,
      rxBatches: c[b.STAT_RX_BATCHES]!,
      rxTruncated: c[b.STAT_RX_TRUNCATED]!,
      rxErrors: c[b.STAT_RX_ERRORS]!,
      txPackets: c[b.STAT_TX_PACKETS]!,
      txDrops: c[b.STAT_TX_DROPS]! + this.jsDrops,
    };
  }
}
