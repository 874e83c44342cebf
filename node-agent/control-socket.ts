/**
 * The agent's local control socket: a unix socket (mode 0600, so only root reads it).
 * A client sends one request line of JSON and reads the answer until the agent closes:
 *
 *   {"op":"status"}                       one JSON status document (`isthmus status`)
 *   {"op":"ping","target":"…","count":N,  one JSON line per probe, then {"type":"done","ok":…}
 *    "timeoutMs":T,"intervalMs":I}        (`isthmus ping`; node-agent/ping.ts)
 *
 * A client that sends nothing within REQUEST_WAIT_MS gets the status document (what older
 * `isthmus status` clients expect). A stale socket file left by a crashed agent is replaced;
 * one that a live agent still answers on is not.
 */
import net from 'node:net';
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';

export class ControlSocketInUseError extends Error {
  override readonly name = 'ControlSocketInUseError';
  readonly code = 'EADDRINUSE';
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/** How long the agent waits for a request line before it answers with the status document. */
export const REQUEST_WAIT_MS = 200;
/** Longest request line accepted. */
const MAX_REQUEST = 4096;

/** Requests besides status: each streams JSON lines through `write` and resolves when done. */
export interface ControlHandlers {
  ping?(req: Record<string, unknown>, write: (line: object) => void, signal: AbortSignal): Promise<void>;
}

export async function serveControlSocket(path: string, status: () => object, handlers: ControlHandlers = {}): Promise<net.Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (await answers(path)) throw new ControlSocketInUseError(`${path}: another agent answers on this control socket (use a separate --state-dir)`);
  try {
    unlinkSync(path);
  } catch {
    // none there
  }
  const server = net.createServer((c) => {
    c.on('error', () => {});
    let text = '';
    let answered = false;
    const abort = new AbortController();
    c.on('close', () => abort.abort());
    const answer = (line: string | undefined) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      void handle(line, c, status, handlers, abort.signal);
    };
    const timer = setTimeout(() => answer(undefined), REQUEST_WAIT_MS);
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      text += d;
      const nl = text.indexOf('\n');
      if (nl >= 0) answer(text.slice(0, nl));
      else if (text.length > MAX_REQUEST) answer('');
    });
    c.on('end', () => answer(text || undefined));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

async function handle(line: string | undefined, c: net.Socket, status: () => object, handlers: ControlHandlers, signal: AbortSignal): Promise<void> {
  let req: Record<string, unknown> = { op: 'status' };
  if (line !== undefined && line.trim() !== '') {
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      req = parsed as Record<string, unknown>;
    } catch {
      c.end(JSON.stringify({ type: 'error', message: 'request is not a JSON object line' }) + '\n');
      return;
    }
  }
  if (req.op === 'status') {
    c.end(JSON.stringify(status()) + '\n');
    return;
  }
  if (req.op === 'ping' && handlers.ping) {
    try {
      await handlers.ping(req, (o) => { if (!c.destroyed) c.write(JSON.stringify(o) + '\n'); }, signal);
    } catch (err) {
      if (!c.destroyed) c.write(JSON.stringify({ type: 'error', message: (err as Error).message }) + '\n');
    }
    c.end();
    return;
  }
  c.end(JSON.stringify({ type: 'error', message: `unknown request op ${JSON.stringify(req.op)} (this agent answers: status${handlers.ping ? ', ping' : ''})` }) + '\n');
}

/** Send one request and call `onLine` for every JSON line of the answer; resolves at its end. */
export function requestControlSocket(path: string, req: object, onLine: (o: unknown) => void, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const c = net.connect(path);
    const timer = setTimeout(() => { c.destroy(); reject(new Error(`${path}: no answer within ${timeoutMs} ms`)); }, timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d: string) => {
      text += d;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        if (!line.trim()) continue;
        try {
          onLine(JSON.parse(line));
        } catch (err) {
          c.destroy();
          clearTimeout(timer);
          reject(err instanceof SyntaxError ? new Error(`${path}: not a JSON line from the agent`) : err);
          return;
        }
      }
    });
    c.on('end', () => { clearTimeout(timer); resolve(); });
    c.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
        ? new Error(`no agent is running with control socket ${path} (is the agent up? another --state-dir?)`)
        : err);
    });
  });
}

export function readControlSocket(path: string, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let text = '';
    const c = net.connect(path);
    c.once('connect', () => c.write('{"op":"status"}\n'));
    const timer = setTimeout(() => { c.destroy(); reject(new Error(`${path}: no answer within ${timeoutMs} ms`)); }, timeoutMs);
    c.setEncoding('utf8');
    c.on('data', (d: string) => { text += d; });
    c.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error(`${path}: not a status document`));
      }
    });
    c.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
        ? new Error(`no agent is running with control socket ${path} (is the agent up? another --state-dir?)`)
        : err);
    });
  });
}
