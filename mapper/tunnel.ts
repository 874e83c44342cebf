/**
 * Joins two TCP sockets both ways. An error or idle timeout on either side destroys both; a FIN
 * from one side is passed on (half-close), so request-then-shutdown clients still work. When
 * one side has fully closed, the other gets a short grace period to flush, then is destroyed.
 */
import type net from 'node:net';

const CLOSE_GRACE_MS = 2000;

export function joinSockets(a: net.Socket, b: net.Socket, idleMs: number, onDone?: () => void): void {
  let done = false;
  const kill = () => {
    a.destroy();
    b.destroy();
    if (!done) { done = true; onDone?.(); }
  };
  const closed = (other: net.Socket) => () => {
    if (other.destroyed) { kill(); return; }
    other.end();
    setTimeout(kill, CLOSE_GRACE_MS).unref();
  };
  a.once('close', closed(b));
  b.once('close', closed(a));
  for (const s of [a, b]) {
    s.setNoDelay(true);
    s.once('error', kill);
    if (idleMs > 0) {
      s.setTimeout(idleMs);
      s.once('timeout', kill);
    }
  }
  a.pipe(b);
  b.pipe(a);
  a.resume();
  b.resume();
}

/**
 * Sends a last message and closes once it is flushed, whether or not the peer ever closes its
 * side (sockets here are half-open capable, so a bare end() could linger forever).
 */
export function sendAndClose(s: net.Socket | import('node:stream').Duplex, data: string | Buffer): void {
  if (!s.writable) { s.destroy(); return; }
  s.end(data, () => s.destroy());
  setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
}
