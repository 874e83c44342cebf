/**
 * HTTP proxy front: CONNECT host:port for any TCP, and plain forwarding of absolute-form
 * `http://` requests, mapping the host exactly as SOCKS5 does (../target.ts).
 *
 * Status codes: 400 malformed, 403 not allowed / IPv6 / (gateway mode) the policy refuses
 * this proxy user, 407 missing or wrong credentials, 503 credentials cannot be checked (Redis down),
 * 431 header block over `maxHeaderBytes`, 502 unknown member or refused connection,
 * 504 connect timeout. Every error body is one line `reason\n`, and the reason is also in
 * the `X-Isthmus-Reason` header.
 *
 * Forwarded requests go upstream with `Connection: close` (one request per member
 * connection); keep-alive between the client and the proxy still works.
 */
import http from 'node:http';
import type net from 'node:net';
import { resolveTarget, type Target } from './target';
import { classifyDialError } from './dialer';
import { count, credentialsMatch, verifyProxyUser, type ProxyContext } from './context';
import type { ProxyUser } from './proxy-users';
import { joinSockets, sendAndClose } from './tunnel';

/** @default 16384 */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;

const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function statusForRefusal(t: Extract<Target, { kind: 'refuse' }>): number {
  switch (t.why) {
    case 'unknown': return 502;
    case 'not-allowed': return 403;
    case 'unsupported': return 403;
    case 'invalid': return 400;
    case 'unavailable': return 502;
    case 'bad-mapping': return 502;
    case 'policy': return 403;
  }
}

function statusForDialError(err: unknown): number {
  return classifyDialError(err) === 'timeout' ? 504 : 502;
}

const REASON_PHRASE: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 407: 'Proxy Authentication Required', 431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

/** Writes a whole error response onto a raw socket (CONNECT, parse errors) and closes it. */
function rawError(socket: net.Socket | import('node:stream').Duplex, status: number, reason: string, extra = ''): void {
  const body = reason.replace(/[\r\n]/g, ' ') + '\n';
  sendAndClose(socket, `HTTP/1.1 ${status} ${REASON_PHRASE[status] ?? 'Error'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `X-Isthmus-Reason: ${body.trim()}\r\nConnection: close\r\n${extra}\r\n${body}`);
}

function basic(header: string | undefined): { username: string; password: string } | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
  if (!m) return null;
  const dec = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = dec.indexOf(':');
  return i > 0 ? { username: dec.slice(0, i), password: dec.slice(i + 1) } : null;
}

/**
 * Who the request comes from: `true` (no credentials configured, or the static pair matched),
 * the proxy user (gateway mode), or why not: 407 (missing / wrong) or 503 (cannot check now).
 */
async function authorize(ctx: ProxyContext, header: string | undefined): Promise<true | ProxyUser | 407 | 503> {
  if (ctx.gateway) {
    const c = basic(header);
    if (!c) return 407;
    const v = await verifyProxyUser(ctx.gateway, c.username, c.password);
    return v === 'unavailable' ? 503 : v ?? 407;
  }
  if (!ctx.credentials) return true;
  const c = basic(header);
  return c && credentialsMatch(ctx.credentials, c.username, c.password) ? true : 407;
}

const AUTH_REASON = { 407: 'proxy credentials missing or wrong', 503: 'proxy credentials cannot be checked now (Redis unreachable); retry later' } as const;

/** Gateway mode: the per-user policy check (gateway.ts); null: go ahead. */
async function gatewayRefusal(ctx: ProxyContext, who: true | ProxyUser, t: Extract<Target, { kind: 'dial' }>): Promise<Extract<Target, { kind: 'refuse' }> | null> {
  if (!ctx.gateway || who === true) return null;
  const no = await ctx.gateway.access.check(who, t.ip, t.port, t.entry);
  return no ? { kind: 'refuse', ...no } : null;
}

const NEED_AUTH = 'Proxy-Authenticate: Basic realm="isthmus"\r\n';

/** Splits `host:port` / `[v6]:port` (CONNECT authority form). */
export function parseAuthority(s: string): { host: string; port: number } | null {
  const m = /^(\[[^\]]+\]|[^:\[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1]!, port } : null;
}

export function createHttpProxy(ctx: ProxyContext, maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES): http.Server {
  const server = http.createServer({ maxHeaderSize: maxHeaderBytes, requestTimeout: 0, keepAliveTimeout: 5000 });
  server.headersTimeout = ctx.timeouts.handshakeMs;

  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'HPE_HEADER_OVERFLOW') { count(ctx, 'http.431'); rawError(socket, 431, `request header block larger than ${maxHeaderBytes} bytes`); return; }
    if (err.code === 'ECONNRESET' || !socket.writable) { socket.destroy(); return; }
    count(ctx, 'http.400');
    rawError(socket, 400, 'malformed HTTP request');
  });

  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    void (async () => {
      const who = await authorize(ctx, req.headers['proxy-authorization']);
      if (who === 407 || who === 503) { count(ctx, `http.${who}`); rawError(socket, who, AUTH_REASON[who], who === 407 ? NEED_AUTH : ''); return; }
      const a = parseAuthority(req.url ?? '');
      if (!a) { count(ctx, 'http.400'); rawError(socket, 400, 'CONNECT target must be host:port'); return; }
      const t = await resolveTarget(a.host, a.port, ctx.policy);
      if (t.kind === 'refuse') { count(ctx, `http.refused.${t.why}`); rawError(socket, statusForRefusal(t), t.reason); return; }
      const no = await gatewayRefusal(ctx, who, t);
      if (no) { count(ctx, `http.refused.${no.why}`); rawError(socket, statusForRefusal(no), no.reason); return; }
      let up: net.Socket;
      try {
        up = await ctx.dial(t.ip, t.port, ctx.timeouts.connectMs);
      } catch (err) {
        count(ctx, `http.dial.${classifyDialError(err)}`);
        rawError(socket, statusForDialError(err), `cannot reach ${a.host}:${a.port} (${t.ip}): ${(err as Error).message}`);
        return;
      }
      if (socket.destroyed) { up.destroy(); return; }
      count(ctx, 'http.connect.ok');
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) up.write(head);
      joinSockets(socket, up, ctx.timeouts.idleMs);
    })().catch(() => socket.destroy());
  });

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    void forward(req, res, ctx).catch(() => res.destroy());
  });
  return server;
}

function fail(res: http.ServerResponse, status: number, reason: string, extra: Record<string, string> = {}): void {
  const body = reason.replace(/[\r\n]/g, ' ') + '\n';
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(status, { 'content-type': 'text/plain', 'x-isthmus-reason': body.trim(), ...extra });
  res.end(body);
}

async function forward(req: http.IncomingMessage, res: http.ServerResponse, ctx: ProxyContext): Promise<void> {
  const who = await authorize(ctx, req.headers['proxy-authorization']);
  if (who === 407 || who === 503) {
    count(ctx, `http.${who}`);
    req.resume();
    fail(res, who, AUTH_REASON[who], who === 407 ? { 'proxy-authenticate': 'Basic realm="isthmus"' } : {});
    return;
  }
  let url: URL;
  try { url = new URL(req.url ?? ''); } catch { count(ctx, 'http.400'); fail(res, 400, 'proxy requests need an absolute http:// URL'); return; }
  if (url.protocol !== 'http:') { count(ctx, 'http.400'); fail(res, 400, `unsupported scheme ${url.protocol} (use CONNECT for TLS)`); return; }
  const port = url.port ? Number(url.port) : 80;
  const t = await resolveTarget(url.hostname, port, ctx.policy);
  if (t.kind === 'refuse') { count(ctx, `http.refused.${t.why}`); fail(res, statusForRefusal(t), t.reason); return; }
  const no = await gatewayRefusal(ctx, who, t);
  if (no) { count(ctx, `http.refused.${no.why}`); fail(res, statusForRefusal(no), no.reason); return; }
  let sock: net.Socket;
  try {
    sock = await ctx.dial(t.ip, t.port, ctx.timeouts.connectMs);
  } catch (err) {
    count(ctx, `http.dial.${classifyDialError(err)}`);
    fail(res, statusForDialError(err), `cannot reach ${url.host} (${t.ip}): ${(err as Error).message}`);
    return;
  }
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
  if (req.headers['transfer-encoding']) headers['transfer-encoding'] = req.headers['transfer-encoding'];
  headers.connection = 'close';
  const up = http.request({ createConnection: () => sock, method: req.method, path: url.pathname + url.search, headers, setHost: false });
  up.setTimeout(ctx.timeouts.idleMs, () => up.destroy(new Error('idle timeout')));
  up.on('response', (ur) => {
    const h: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(ur.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) h[k] = v;
    if (ur.headers['transfer-encoding'] === undefined && ur.headers['content-length'] === undefined) h.connection = 'close';
    res.writeHead(ur.statusCode ?? 502, ur.statusMessage, h);
    ur.pipe(res);
    count(ctx, 'http.forward.ok');
  });
  up.on('error', (err) => { count(ctx, 'http.forward.error'); fail(res, 502, `upstream error: ${err.message}`); });
  res.on('close', () => { if (!res.writableFinished) up.destroy(); });
  req.pipe(up);
}
