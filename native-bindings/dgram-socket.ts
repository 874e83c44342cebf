/**
 * DatagramSocket over node:dgram: the portable fallback for the native batched socket
 * (udp-socket.ts), and what tests use. Receives arrive as batches of one datagram (the
 * `'message'` Buffer, no copy); the batch object is reused, so as with every DatagramSocket
 * the views are valid only during the handler call. `send` and `sendInPlace` both copy into
 * a queue (node:dgram sends asynchronously, after the caller's flush returned) and `flush`
 * hands the queue to the kernel.
 *
 * `openBestDatagramSocket` (index.ts) is the one place that chooses native vs dgram.
 */
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { type DatagramBatch, type DatagramSocket, formatAddr, parseAddr } from '../common';

export interface DgramSocketOptions {
  /** @default '0.0.0.0' */
  host?: string;
  /** @default 0 (ephemeral) */
  port?: number;
  /** Kernel buffer sizes in bytes; unset keeps the OS default. */
  recvBufferSize?: number;
  sendBufferSize?: number;
  /** Longest send queue; further sends before `flush` are dropped (counted). @default 1024 */
  maxQueue?: number;
}

export class DgramSocket implements DatagramSocket {
  /** Datagrams `send` refused because the queue was full, and sends the kernel failed. */
  sendDrops = 0;
  sendErrors = 0;
  private handler: ((b: DatagramBatch) => void) | undefined;
  private readonly batch: DatagramBatch = {
    count: 1, data: Buffer.alloc(0), offsets: new Uint32Array(1), lengths: new Uint32Array(1),
    addrs: new Uint32Array(1), ports: new Uint32Array(1),
  };
  private queue: { buf: Buffer; addr: string; port: number }[] = [];
  private closed = false;
  private readonly onSent = (err: Error | null): void => {
    if (err) this.sendErrors++;
  };

  private constructor(private readonly sock: dgram.Socket, readonly localAddress: { ip: string; port: number },
    private readonly maxQueue: number) {
    sock.on('message', (msg, rinfo) => this.deliver(msg, rinfo));
    // A UDP socket reports ICMP errors (e.g. ECONNREFUSED) as 'error'; they are not fatal here.
    sock.on('error', () => { this.sendErrors++; });
  }

  static async open(opts: DgramSocketOptions = {}): Promise<DgramSocket> {
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    const host = opts.host ?? '0.0.0.0';
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error): void => reject(e);
      sock.once('error', onErr);
      sock.bind(opts.port ?? 0, host, () => {
        sock.off('error', onErr);
        resolve();
      });
    });
    if (opts.recvBufferSize) sock.setRecvBufferSize(opts.recvBufferSize);
    if (opts.sendBufferSize) sock.setSendBufferSize(opts.sendBufferSize);
    const a = sock.address() as AddressInfo;
    return new DgramSocket(sock, { ip: a.address, port: a.port }, opts.maxQueue ?? 1024);
  }

  private deliver(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!this.handler || this.closed) return;
    let addr: number;
    try {
      addr = parseAddr(rinfo.address);
    } catch {
      return;
    }
    const b = this.batch;
    b.data = msg;
    b.offsets[0] = 0;
    b.lengths[0] = msg.length;
    b.addrs[0] = addr;
    b.ports[0] = rinfo.port;
    this.handler(b);
  }

  onReceive(handler: (batch: DatagramBatch) => void): void {
    this.handler = handler;
  }

  send(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueue) {
      this.sendDrops++;
      return;
    }
    const copy = Buffer.allocUnsafe(length);
    copy.set(buf.subarray(offset, offset + length));
    this.queue.push({ buf: copy, addr: formatAddr(addr), port });
  }

  /** Copies like `send`: node:dgram reads the bytes after flush() has returned. */
  sendInPlace(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void {
    this.send(buf, offset, length, addr, port);
  }

  flush(): void {
    if (this.closed || this.queue.length === 0) return;
    const q = this.queue;
    this.queue = [];
    for (const d of q) {
      try {
        this.sock.send(d.buf, d.port, d.addr, this.onSent);
      } catch {
        this.sendErrors++;
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.sock.close();
  }
}

export function openDgramSocket(opts: DgramSocketOptions = {}): Promise<DgramSocket> {
  return DgramSocket.open(opts);
}
