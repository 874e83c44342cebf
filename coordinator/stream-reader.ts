/**
 * Reads a peer-map stream's body line by line (stream-frames.ts), for the client: each complete
 * line (without its LF) goes to `onLine` in order; the read fails when a line grows past
 * `maxLineBytes` or when nothing arrives for `silentMs()` ms (a dead connection: the coordinator
 * sends heartbeats, so silence means the path is gone).
 */
export class StreamSilentError extends Error {
  override name = 'StreamSilentError';
}

export async function readLines(body: ReadableStream<Uint8Array>, onLine: (line: string) => void,
  o: { maxLineBytes: number; silentMs: () => number; signal: AbortSignal }): Promise<void> {
  const reader = body.getReader();
  let parts: Buffer[] = [];
  let held = 0;
  let silent = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { silent = true; void reader.cancel().catch(() => undefined); }, o.silentMs());
  };
  const stop = () => { void reader.cancel().catch(() => undefined); };
  o.signal.addEventListener('abort', stop, { once: true });
  arm();
  try {
    for (;;) {
      let r: { done: boolean; value?: Uint8Array };
      try {
        r = await reader.read();
      } catch (err) {
        if (silent) throw new StreamSilentError(`peer-map stream silent for ${o.silentMs()} ms`);
        throw err;
      }
      if (silent) throw new StreamSilentError(`peer-map stream silent for ${o.silentMs()} ms`);
      if (r.done) return;
      const v = r.value!;
      let chunk = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      for (let lf = chunk.indexOf(10); lf >= 0; lf = chunk.indexOf(10)) {
        parts.push(chunk.subarray(0, lf));
        const line = parts.length === 1 ? parts[0].toString('utf8') : Buffer.concat(parts).toString('utf8');
        parts = [];
        held = 0;
        chunk = chunk.subarray(lf + 1);
        onLine(line);
        if (o.signal.aborted) return;
      }
      arm(); // after the lines: the opening frame names the heartbeat
      if (chunk.length > 0) {
        // Copied: the reader may reuse its buffer.
        parts.push(Buffer.from(chunk));
        held += chunk.length;
        if (held > o.maxLineBytes) throw new Error(`peer-map stream frame longer than ${o.maxLineBytes} bytes`);
      }
    }
  } finally {
    clearTimeout(timer);
    o.signal.removeEventListener('abort', stop);
    // Done or not, the body is let go (an unread rest would hold the connection).
    void reader.cancel().catch(() => undefined);
  }
}
