/**
 * One listening port for both proxies: the first byte tells them apart. SOCKS5 greetings
 * start with 0x05; an HTTP request line starts with a method letter.
 */
import net from 'node:net';
import type http from 'node:http';
import { count, type ProxyContext } from './context';
import { handleSocks5 } from './socks5/server';
import { SOCKS_VERSION } from './socks5/codec';

export interface FrontOptions {
  socks: boolean;
  /** the HTTP proxy server to hand non-SOCKS connections to, if enabled */
  http?: http.Server;
  /** @default 4096 */
  maxConnections?: number;
}

export function createProxyFront(ctx: ProxyContext, opts: FrontOptions): net.Server {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => {
    socket.on('error', () => socket.destroy());
    const t = setTimeout(() => { count(ctx, 'front.first-byte-timeout'); socket.destroy(); }, ctx.timeouts.handshakeMs);
    socket.once('close', () => clearTimeout(t));
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(t);
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === SOCKS_VERSION && opts.socks) {
        handleSocks5(socket, ctx);
        socket.resume();
      } else if (chunk[0] !== SOCKS_VERSION && opts.http) {
        opts.http.emit('connection', socket);
        socket.resume();
      } else {
        count(ctx, 'front.unknown-protocol');
        socket.destroy();
      }
    });
  });
  server.maxConnections = opts.maxConnections ?? 4096;
  return server;
}
