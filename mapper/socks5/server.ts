/**
 * SOCKS5 front (RFC 1928 + RFC 1929), one connection at a time through these stages, each
 * with its own deadline and size cap:
 *   1. greeting       choose no-auth, or username/password when credentials are configured
 *                     (gateway mode: always username/password; a client offering only
 *                     no-auth gets 0xFF, no acceptable method)
 *   2. auth           RFC 1929 sub-negotiation (only with credentials / proxy users)
 *   3. request        CONNECT or UDP ASSOCIATE; BIND and unknown commands get 0x07
 *                     (gateway mode: CONNECT only, UDP ASSOCIATE gets 0x07 too)
 *   4. resolve        original IP / virtual IP / hostname → virtual IP (../target.ts);
 *                     gateway mode: the user's policy check (../gateway.ts), 0x02 if refused
 *   5. dial / relay   join the sockets, or run a UDP association (./udp-association.ts)
 * Malformed input gets the matching reply code (when a reply is possible) and a close.
 */
import type net from 'node:net';
import { resolveTarget, type Target } from '../target';
import { classifyDialError, type DialFailure } from '../dialer';
import { count, credentialsMatch, verifyProxyUser, type ProxyContext } from '../context';
import type { ProxyUser } from '../proxy-users';
import { joinSockets, sendAndClose } from '../tunnel';
import {
  Command, Method, Reply, MAX_AUTH, MAX_GREETING, MAX_REQUEST,
  encodeMethodSelection, encodeReply, encodeUserPassReply, parseGreeting, parseRequest, parseUserPass,
  type ReplyCode,
} from './codec';
import { HandshakeReader, StageError } from './reader';
import { startUdpAssociation } from './udp-association';

export function replyForRefusal(t: Extract<Target, { kind: 'refuse' }>): ReplyCode {
  switch (t.why) {
    case 'unknown': return Reply.HostUnreachable;
    case 'not-allowed': return Reply.NotAllowed;
    case 'unsupported': return Reply.AddressTypeNotSupported;
    case 'invalid': return Reply.HostUnreachable;
    case 'unavailable': return Reply.GeneralFailure;
    case 'bad-mapping': return Reply.NotAllowed;
    case 'policy': return Reply.NotAllowed;
  }
}

export function replyForDialFailure(f: DialFailure): ReplyCode {
  switch (f) {
    case 'refused': return Reply.ConnectionRefused;
    case 'timeout': return Reply.HostUnreachable;
    case 'host-unreachable': return Reply.HostUnreachable;
    case 'net-unreachable': return Reply.NetworkUnreachable;
    case 'other': return Reply.GeneralFailure;
  }
}

/** Takes over a freshly accepted socket that starts with a SOCKS5 greeting. */
export function handleSocks5(socket: net.Socket, ctx: ProxyContext): void {
  socket.on('error', () => { /* reported through 'close'; never crash the process */ });
  runSocks5(socket, ctx).catch((err: unknown) => {
    count(ctx, err instanceof StageError ? `socks.stage.${err.code}` : 'socks.error');
    ctx.log.debug({ err: (err as Error).message }, 'socks5 session ended');
    socket.destroy();
  });
}

async function runSocks5(socket: net.Socket, ctx: ProxyContext): Promise<void> {
  const rd = new HandshakeReader(socket);
  const t = ctx.timeouts.handshakeMs;
  const fail = (rep: number, label: string) => {
    count(ctx, `socks.${label}`);
    rd.detach();
    sendAndClose(socket, encodeReply(rep));
  };

  const g = await rd.next('greeting', parseGreeting, MAX_GREETING, t);
  if (g.kind === 'bad') { count(ctx, 'socks.bad-greeting'); rd.detach(); socket.destroy(); return; }
  const gw = ctx.gateway;
  const want = ctx.credentials || gw ? Method.UserPass : Method.NoAuth;
  if (!g.methods.includes(want)) {
    count(ctx, 'socks.no-acceptable-method');
    rd.detach();
    sendAndClose(socket, encodeMethodSelection(Method.NoAcceptable));
    return;
  }
  socket.write(encodeMethodSelection(want));

  let user: ProxyUser | undefined;
  if (gw) {
    const a = await rd.next('auth', parseUserPass, MAX_AUTH, t);
    const v = a.kind === 'ok' ? await verifyProxyUser(gw, a.username, a.password) : null;
    if (v === null || v === 'unavailable') {
      count(ctx, v === 'unavailable' ? 'socks.auth-unavailable' : 'socks.auth-failed');
      rd.detach();
      sendAndClose(socket, encodeUserPassReply(false));
      return;
    }
    user = v;
    socket.write(encodeUserPassReply(true));
  } else if (ctx.credentials) {
    const a = await rd.next('auth', parseUserPass, MAX_AUTH, t);
    const ok = a.kind === 'ok' && credentialsMatch(ctx.credentials, a.username, a.password);
    if (!ok) {
      count(ctx, 'socks.auth-failed');
      rd.detach();
      sendAndClose(socket, encodeUserPassReply(false));
      return;
    }
    socket.write(encodeUserPassReply(true));
  }

  const r = await rd.next('request', parseRequest, MAX_REQUEST, t);
  if (r.kind === 'bad') { fail(r.reply, 'bad-request'); return; }
  if (r.cmd !== Command.Connect && r.cmd !== Command.UdpAssociate) { fail(Reply.CommandNotSupported, 'unsupported-command'); return; }

  if (r.cmd === Command.UdpAssociate && gw) { fail(Reply.CommandNotSupported, 'unsupported-command'); return; }
  if (r.cmd === Command.UdpAssociate) {
    rd.detach();
    await startUdpAssociation(socket, r.port, ctx);
    return;
  }

  const target = await resolveTarget(r.host, r.port, ctx.policy);
  if (target.kind === 'refuse') {
    ctx.log.debug({ host: r.host.slice(0, 64), port: r.port, why: target.why }, 'socks5 connect refused');
    fail(replyForRefusal(target), `refused.${target.why}`);
    return;
  }
  if (gw && user) {
    const no = await gw.access.check(user, target.ip, target.port, target.entry);
    if (no) {
      ctx.log.debug({ proxyUser: user.name, host: r.host.slice(0, 64), port: r.port, why: no.why }, 'socks5 connect refused for this proxy user');
      fail(replyForRefusal({ kind: 'refuse', ...no }), `refused.${no.why}`);
      return;
    }
  }
  let upstream: net.Socket;
  try {
    upstream = await ctx.dial(target.ip, target.port, ctx.timeouts.connectMs);
  } catch (err) {
    const f = classifyDialError(err);
    fail(replyForDialFailure(f), `dial.${f}`);
    return;
  }
  if (socket.destroyed) { upstream.destroy(); return; }
  const rest = rd.detach();
  count(ctx, 'socks.connect.ok');
  socket.write(encodeReply(Reply.Succeeded, upstream.localAddress ?? '0.0.0.0', upstream.localPort ?? 0));
  if (rest.length > 0) upstream.write(rest);
  joinSockets(socket, upstream, ctx.timeouts.idleMs);
}
