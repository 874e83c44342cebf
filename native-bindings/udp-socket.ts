/**
 * DatagramSocket over the native addon: recvmmsg into a JS-owned slab (one JS call per
 * batch), sendmmsg from a tx slab on flush(). IPv4 only.
 *
 * Slot layout: | headroom | datagram (<= slotSize - headroom) |. A datagram larger than
 * that is dropped by the kernel copy (MSG_TRUNC) and counted as `rxTruncated`.
 * Sending never blocks: on EAGAIN the rest of the batch is dropped and counted in `txDrops`.
 */
import {
  IDEAL_BATCH_SIZE, intToIpv4, ipv4ToInt, type DatagramBatch, type DatagramSocket,
} from '../common/packet-io';
import { InvalidOptionError, NativeIoError } from './errors';
import { loadNative, type NativeBinding } from './load';

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

/** txExtOffsets value: the entry is in its tx slot (the addon's EXT_NONE). */
const IN_SLAB = 0xffffffff;

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

function intOption(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  }
  return v;
}

export class NativeUdpSocket implements DatagramSocket {
  readonly localAddress: { ip: string; port: number };
  readonly batchSize: number;
  readonly slotSize: number;
  readonly headroom: number;

  private readonly native: NativeBinding;
  private readonly handle: Buffer;
  private readonly counters: Float64Array;
  private readonly txSlab: Buffer;
  private readonly txLengths: Uint32Array;
  private readonly txAddrs: Uint32Array;
  private readonly txPorts: Uint32Array;
  /** Per tx entry: offset in `txExt` to send in place from, or IN_SLAB (copied into the slot). */
  private readonly txExtOffsets: Uint32Array;
  private txExt: Uint8Array | undefined;
  private readonly batch: DatagramBatch;
  private txCount = 0;
  private jsDrops = 0;
  private handler: ((batch: DatagramBatch) => void) | undefined;
  private started = false;
  private closed = false;

  constructor(opts: UdpOptions) {
    this.native = loadNative();
    let host: number;
    try {
      host = ipv4ToInt(opts.host);
    } catch {
      throw new InvalidOptionError(`host must be an IPv4 address, got ${JSON.stringify(opts.host)}`);
    }
    const port = intOption('port', opts.port, 0, 65535);
    this.batchSize = intOption('batchSize', opts.batchSize ?? DEFAULT_UDP_OPTIONS.batchSize, 1, this.native.UDP_MAX_BATCH);
    this.slotSize = intOption('slotSize', opts.slotSize ?? DEFAULT_UDP_OPTIONS.slotSize, 64, 65536 + 4096);
    this.headroom = intOption('headroom', opts.headroom ?? DEFAULT_UDP_OPTIONS.headroom, 0, this.slotSize - 1);
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
    this.txSlab = Buffer.alloc(n * this.slotSize);
    this.txLengths = new Uint32Array(n);
    this.txAddrs = new Uint32Array(n);
    this.txPorts = new Uint32Array(n);
    this.txExtOffsets = new Uint32Array(n).fill(IN_SLAB);
    this.counters = new Float64Array(this.native.STAT_COUNT);

    this.handle = Buffer.alloc(this.native.sizeof_isthmus_io_t);
    let bound: number;
    try {
      bound = this.native.udpOpen(this.handle, host, port, opts.reusePort ?? false, bufBytes);
    } catch (err) {
      throw NativeIoError.from(err);
    }
    this.localAddress = { ip: intToIpv4(host), port: bound };
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

  onReceive(handler: (batch: DatagramBatch) => void): void {
    this.handler = handler;
    if (!this.started && !this.closed) {
      this.started = true;
      this.native.ioStart(this.handle);
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

  flush(): void {
    if (this.txCount === 0 || this.closed) return;
    const n = this.txCount;
    this.txCount = 0;
    const ext = this.txExt;
    this.txExt = undefined;
    this.native.ioFlush(this.handle, n, ext ?? null, ext ? this.txExtOffsets : null);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.jsDrops += this.txCount;
    this.txCount = 0;
    this.txExt = undefined;
    this.native.ioClose(this.handle);
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
