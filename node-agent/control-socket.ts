/**
 * The agent's local control socket: a unix socket (mode 0600, so only root reads it) that
 * answers every connection with one JSON status document and closes. `isthmus status`
 * reads it. A stale socket file left by a crashed agent is replaced; one that a live agent
 * still answers on is not.
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

export async function serveControlSocket(path: string, status: () => object): Promise<net.Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (await answers(path)) throw new ControlSocketInUseError(`${path}: another agent answers on this control socket (use a separate --state-dir)`);
  try {
    unlinkSync(path);
  } catch {
    // none there
  }
  const server = net.createServer((c) => {
    c.on('error', () => {});
    c.end(JSON.stringify(status()) + '\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

export function readControlSocket(path: string, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let text = '';
    const c = net.connect(path);
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
