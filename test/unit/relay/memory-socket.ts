import type { DatagramBatch, DatagramSocket } from '../../../common/packet-io';

/** In-memory DatagramSocket for unit tests: records flushed sends, injects receives. */
export class MemorySocket implements DatagramSocket {
  readonly localAddress = { ip: '127.0.0.1', port: 1 };
  queued: { buf: Buffer; addr: number; port: number }[] = [];
  sent: { buf: Buffer; addr: number; port: number }[] = [];
  flushes = 0;
  private handler?: (b: DatagramBatch) => void;
  onReceive(h: (b: DatagramBatch) => void): void { this.handler = h; }
  send(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void {
    this.queued.push({ buf: Buffer.from(buf.subarray(offset, offset + length)), addr, port });
  }
  /** Copies at once (the contract allows it). */
  sendInPlace(buf: Uint8Array, offset: number, length: number, addr: number, port: number): void {
    this.send(buf, offset, length, addr, port);
  }
  flush(): void { this.flushes++; this.sent.push(...this.queued); this.queued = []; }
  close(): void {}
  inject(frames: { buf: Uint8Array; addr: number; port: number }[]): void {
    const data = Buffer.alloc(frames.reduce((n, f) => n + f.buf.length, 0) + 16);
    const b: DatagramBatch = { count: frames.length, data, offsets: new Uint32Array(frames.length), lengths: new Uint32Array(frames.length), addrs: new Uint32Array(frames.length), ports: new Uint32Array(frames.length) };
    let off = 3;
    frames.forEach((f, i) => { data.set(f.buf, off); b.offsets[i] = off; b.lengths[i] = f.buf.length; b.addrs[i] = f.addr; b.ports[i] = f.port; off += f.buf.length; });
    this.handler!(b);
  }
}
