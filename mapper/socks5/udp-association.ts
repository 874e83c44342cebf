/**
 * UDP ASSOCIATE (RFC 1928 §7). Two sockets per association:
 *   client side  bound on the control connection's local address; accepts datagrams only from
 *                the control connection's peer IP (and port, once known), header-wrapped
 *   member side  bound on the wildcard, so it can reach virtual IPs through the overlay;
 *                accepts datagrams only from destinations this association has sent to
 * Replies are wrapped with the address the client used (the original IP), not the virtual IP.
 * The association lives as long as the control TCP connection (and its idle timeout).
 * Undeliverable datagrams are dropped and counted, never answered.
 */
import dgram from 'node:dgram';
import type net from 'node:net';
import { resolveTarget } from '../target';
import { count, type ProxyContext } from '../context';
import { Reply, encodeReply, encodeUdpHeader, parseUdpDatagram } from './codec';

/** Distinct destinations one association may talk to. */
const MAX_PEERS = 1024;

export async function startUdpAssociation(control: net.Socket, clientPortHint: number, ctx: ProxyContext): Promise<void> {
  const localIp = (control.localAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
  const clientIp = (control.remoteAddress ?? '').replace(/^::ffff:/, '');
  let clientPort = clientPortHint || 0;
  const inner = dgram.createSocket('udp4');
  const outer = dgram.createSocket('udp4');
  /** `${vip}:${port}` → the host/port the client addressed */
  const peers = new Map<string, { host: string; port: number }>();
  let lastActivity = Date.now();

  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(idle);
    inner.close();
    outer.close();
    control.destroy();
  };
  const idle = setInterval(() => { if (Date.now() - lastActivity > ctx.timeouts.idleMs) close(); }, Math.min(ctx.timeouts.idleMs, 5000));
  idle.unref();
  inner.on('error', close);
  outer.on('error', close);

  try {
    await Promise.all([
      new Promise<void>((res, rej) => { inner.once('error', rej); inner.bind(0, localIp, () => { inner.removeListener('error', rej); res(); }); }),
      new Promise<void>((res, rej) => { outer.once('error', rej); outer.bind(0, () => { outer.removeListener('error', rej); res(); }); }),
    ]);
  } catch {
    count(ctx, 'socks.udp.bind-failed');
    close();
    return;
  }
  control.on('close', close);
  control.on('end', close);
  control.on('error', close);
  control.on('data', () => { /* RFC 1928: the control connection carries nothing more */ });
  control.resume();

  inner.on('message', (msg, rinfo) => {
    if (rinfo.address !== clientIp || (clientPort !== 0 && rinfo.port !== clientPort)) { count(ctx, 'socks.udp.drop.foreign-client'); return; }
    clientPort = rinfo.port;
    lastActivity = Date.now();
    const d = parseUdpDatagram(msg);
    if (d.kind !== 'ok') { count(ctx, 'socks.udp.drop.malformed'); return; }
    const { host, port, data } = d;
    void resolveTarget(host, port, ctx.policy).then((t) => {
      if (closed) return;
      if (t.kind === 'refuse') { count(ctx, `socks.udp.drop.${t.why}`); return; }
      const key = `${t.ip}:${t.port}`;
      // Replies are labelled with the name the client used most recently for this destination.
      if (!peers.has(key) && peers.size >= MAX_PEERS) { count(ctx, 'socks.udp.drop.too-many-peers'); return; }
      peers.set(key, { host, port });
      outer.send(data, t.port, t.ip, (err) => { if (err) count(ctx, 'socks.udp.drop.send-failed'); });
      count(ctx, 'socks.udp.out');
    });
  });

  outer.on('message', (msg, rinfo) => {
    const back = peers.get(`${rinfo.address}:${rinfo.port}`);
    if (!back || clientPort === 0) { count(ctx, 'socks.udp.drop.unknown-peer'); return; }
    lastActivity = Date.now();
    const hdr = encodeUdpHeader(back.host, back.port);
    inner.send([hdr, msg], clientPort, clientIp, (err) => { if (err) count(ctx, 'socks.udp.drop.send-failed'); });
    count(ctx, 'socks.udp.in');
  });

  const addr = inner.address();
  count(ctx, 'socks.udp.associate');
  control.write(encodeReply(Reply.Succeeded, addr.address, addr.port));
}
