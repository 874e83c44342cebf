/**
 * Reads length-delimited handshake messages off a socket with a size cap and a deadline per
 * stage, then hands the socket back (paused) with any bytes read past the last message.
 */
import type net from 'node:net';
import type { Parsed } from './codec';

export class StageError extends Error {
  override name = 'StageError';
  constructor(readonly code: 'ETIMEDOUT' | 'ECLOSED' | 'ETOOBIG', stage: string) {
    super(`${stage}: ${code}`);
  }
}

export class HandshakeReader {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private ended = false;

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.once('end', this.onEnd);
    socket.once('close', this.onEnd);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.wake?.();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake?.();
  };

  /** Waits until `parse` accepts (or rejects) the buffered bytes. */
  async next<T>(stage: string, parse: (b: Uint8Array) => Parsed<T>, max: number, timeoutMs: number): Promise<Exclude<Parsed<T>, { kind: 'more' }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = parse(this.buf);
      if (r.kind === 'ok') {
        this.buf = this.buf.subarray(r.used);
        return r as Exclude<Parsed<T>, { kind: 'more' }>;
      }
      if (r.kind === 'bad') return r as Exclude<Parsed<T>, { kind: 'more' }>;
      if (this.buf.length >= max) throw new StageError('ETOOBIG', stage);
      if (this.ended) throw new StageError('ECLOSED', stage);
      const left = deadline - Date.now();
      if (left <= 0) throw new StageError('ETIMEDOUT', stage);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { this.wake = null; resolve(); }, left);
        this.wake = () => { clearTimeout(t); this.wake = null; resolve(); };
      });
    }
  }

  /** Stops reading; returns bytes received beyond the last parsed message. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onEnd);
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}
