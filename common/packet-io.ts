/**
 * The batch-shaped seams between the data path and the operating system, after
 * wireguard-go's conn.Bind / tun.Device: one call moves up to `batchSize` packets.
 *
 * "Inside" is the TUN (plaintext IP packets), "outside" is the UDP underlay.
 *
 * Ownership: a received batch's views are valid only during the handler call; the
 * implementation reuses the same memory for the next batch. Copy what must outlive it.
 */

/** wireguard-go's conn.IdealBatchSize / nebula's MaxWriteBatch. */
export const IDEAL_BATCH_SIZE = 128;

/** A batch of received packets living in one slab. Packet i is
 *  `data.subarray(offsets[i], offsets[i] + lengths[i])`, and `offsets[i] >= headroom`
 *  bytes after the start of its slot, so a caller may write headers in front of it in place. */
export interface PacketBatch {
  count: number;
  data: Buffer;
  offsets: Uint32Array;
  lengths: Uint32Array;
}

/** A received UDP batch: also the IPv4 source (host-order uint32) and port of each datagram. */
export interface DatagramBatch extends PacketBatch {
  addrs: Uint32Array;
  ports: Uint32Array;
}

export interface DatagramSocket {
  /** The bound local address. */
  readonly localAddress: { ip: string; port: number };
  /** Register the single receive handler (bound once, never per packet). */
  onReceive(handler: (batch: DatagramBatch) => void): void;
  /** Queue one datagram for sending; the bytes are copied before `send` returns, so the
   *  caller may reuse `buf` at once. */
  send(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void;
  /**
   * Queue one datagram for sending WITHOUT copying it: the socket keeps a reference to `buf`
   * and reads `buf[offset, offset+length)` at the next `flush()`. The caller still owns the
   * bytes but must not change or reuse them until that `flush()` has returned (e.g. a
   * receive slab whose batch handler flushes before it returns, or a buffer it drops after).
   * An implementation may copy instead, or flush earlier (never later).
   */
  sendInPlace(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void;
  /** Send everything queued (sendmmsg). Called once per processed receive batch. */
  flush(): void;
  close(): void;
}

export interface TunDevice {
  readonly name: string;
  readonly mtu: number;
  /** Bytes of free space in front of every received packet. */
  readonly headroom: number;
  /** TUN offloads on (TSO super-packets split on read, TCP runs coalesced on write): the
   *  batches still hold only packets <= mtu. @default false (absent) */
  readonly offload?: boolean;
  /** With offloads on: TCP super-packets read (and split), coalesced ones written, reads
   *  dropped for a malformed vnet header. */
  offloadStats?(): { superPacketsRead: number; superPacketsWritten: number; malformed: number };
  onReceive(handler: (batch: PacketBatch) => void): void;
  /** Queue one IP packet for the kernel; copied before return, so the caller may reuse `buf` at once. */
  write(buf: Uint8Array, offset: number, length: number): void;
  /**
   * Queue one IP packet WITHOUT copying it: the device keeps a reference to `buf` and reads
   * `buf[offset, offset+length)` at the next `flush()`. The caller still owns the bytes but
   * must not change or reuse them until that `flush()` has returned. An implementation may
   * copy instead, or flush earlier (never later).
   */
  writeInPlace(buf: Uint8Array, offset: number, length: number): void;
  /** Write everything queued. Called once per processed receive batch. */
  flush(): void;
  close(): void;
}
