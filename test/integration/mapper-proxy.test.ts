/**
 * The proxy fronts with real clients: curl (SOCKS5 and HTTP proxy), the `socks` npm client
 * (CONNECT and UDP ASSOCIATE), raw malformed sessions. Redis maps the "original IP" 10.1.2.3
 * to the "virtual IP" 127.0.0.2, a loopback address, with the overlay CIDR set to 127.0.0.0/8
 * so the mapper dials it with the ordinary socket dialer.
 */
import test from 'ava';
import http from 'node:http';
import net from 'node:net';
import dgram from 'node:dgram';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { SocksClient } from 'socks';
import fc from 'fast-check';
import { DialTimeoutError } from '../../mapper/dialer';
import { startRedis, type RedisHandle } from '../harness/redis';
import { startMapperService, type MapperService } from '../../mapper';

const run = promisify(execFile);
const ORIG = '10.1.2.3';
const VIP = '127.0.0.2';
const BULK = 64 * 1024 * 1024;

let redis: RedisHandle;
let mapper: MapperService;
let authMapper: MapperService;
let web: http.Server;
let webPort: number;
let closedPort: number;
let echo: dgram.Socket;
let bulk: net.Server;
let bulkPort: number;
let bulkDigest: string;

async function seed(url: string): Promise<void> {
  const r = new Redis(url);
  await r.set(`isthmus:orig:${ORIG}`, VIP);
  await r.hset(`isthmus:node:${VIP}`, { pub: 'AAAA', orig: ORIG, hostname: 'web-1', tags: '["web"]', created: '1', lastSeen: String(Date.now()), ephemeral: '0' });
  await r.set('isthmus:host:web-1', VIP);
  await r.hset(`isthmus:session:${VIP}`, { relayIp: '192.0.2.10', relayPort: '51820', agentIp: '198.51.100.7', agentPort: '40000', relayId: 'r1', since: '1' });
  r.disconnect();
}

test.before(async () => {
  redis = await startRedis();
  await seed(redis.url);
  web = http.createServer((req, res) => { res.setHeader('content-type', 'text/plain'); res.end(`hello from member via ${req.method} ${req.url} host=${req.headers.host}\n`); });
  await new Promise<void>((r) => web.listen(0, VIP, r));
  webPort = (web.address() as net.AddressInfo).port;
  const tmp = net.createServer();
  await new Promise<void>((r) => tmp.listen(0, VIP, r));
  closedPort = (tmp.address() as net.AddressInfo).port;
  await new Promise((r) => tmp.close(r));
  echo = dgram.createSocket('udp4');
  echo.on('message', (m, ri) => echo.send(Buffer.concat([Buffer.from('echo:'), m]), ri.port, ri.address));
  await new Promise<void>((r) => echo.bind(0, VIP, r));
  // Bulk: a deterministic 64 MiB stream, hashed on the way out.
  const block = createHash('sha512').update('isthmus').digest();
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i += block.length) block.copy(chunk, i);
  const h = createHash('sha256');
  for (let i = 0; i < BULK / chunk.length; i++) h.update(chunk);
  bulkDigest = h.digest('hex');
  bulk = net.createServer((s) => {
    s.on('error', () => undefined);
    let sent = 0;
    const pump = () => { while (sent < BULK) { sent += chunk.length; if (!s.write(chunk)) { s.once('drain', pump); return; } } s.end(); };
    pump();
  });
  await new Promise<void>((r) => bulk.listen(0, VIP, r));
  bulkPort = (bulk.address() as net.AddressInfo).port;

  mapper = await startMapperService({ redis: redis.url, socks: { host: '127.0.0.1', port: 0 }, httpProxy: { host: '127.0.0.1', port: 0 }, overlayCidr: '127.0.0.0/8', timeouts: { handshakeMs: 1500, connectMs: 1500 } });
  authMapper = await startMapperService({ redis: redis.url, socks: { host: '127.0.0.1', port: 0 }, credentials: { username: 'u', password: 'p4ss' }, overlayCidr: '127.0.0.0/8', originalCidrs: ['10.0.0.0/8'] });
});

test.after.always(async () => {
  await mapper?.stop();
  await authMapper?.stop();
  web?.close();
  bulk?.close();
  echo?.close();
  await redis?.stop();
});

const socksPort = () => mapper.addresses.socks!.port;
const httpPort = () => mapper.addresses.httpProxy!.port;

test('curl --socks5-hostname reaches the member by original IP and by hostname', async (t) => {
  const a = await run('curl', ['-sS', '--max-time', '5', '--socks5-hostname', `127.0.0.1:${socksPort()}`, `http://${ORIG}:${webPort}/x`]);
  t.regex(a.stdout, /^hello from member via GET \/x host=10\.1\.2\.3/);
  const b = await run('curl', ['-sS', '--max-time', '5', '--socks5-hostname', `127.0.0.1:${socksPort()}`, `http://web-1:${webPort}/y`]);
  t.regex(b.stdout, /^hello from member via GET \/y/);
  const c = await run('curl', ['-sS', '--max-time', '5', '--socks5', `127.0.0.1:${socksPort()}`, `http://${ORIG}:${webPort}/z`]);
  t.regex(c.stdout, /GET \/z/);
});

test('curl -x forwards http:// and tunnels with CONNECT (shared SOCKS port and own port)', async (t) => {
  for (const port of [httpPort(), socksPort()]) {
    const a = await run('curl', ['-sS', '--max-time', '5', '-x', `http://127.0.0.1:${port}`, `http://${ORIG}:${webPort}/fwd?q=1`]);
    t.regex(a.stdout, /^hello from member via GET \/fwd\?q=1 host=10\.1\.2\.3/);
    const b = await run('curl', ['-sS', '--max-time', '5', '-p', '-x', `http://127.0.0.1:${port}`, `http://${ORIG}:${webPort}/tun`]);
    t.regex(b.stdout, /^hello from member via GET \/tun/);
  }
});

test('curl -x: unknown original IP 502, not allowed 403, refused 502, with reasons', async (t) => {
  const code = async (url: string, tunnel = false) => {
    const r = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{http_connect}', '--max-time', '5', ...(tunnel ? ['-p'] : []), '-x', `http://127.0.0.1:${httpPort()}`, url]).catch((e: { stdout: string }) => e);
    return r.stdout;
  };
  t.is(await code(`http://10.9.9.9:${webPort}/`), '502 000');
  t.is(await code('http://224.0.0.1:80/'), '403 000');
  t.is(await code(`http://${ORIG}:${closedPort}/`), '502 000');
  t.is(await code(`http://${ORIG}:${webPort}/`, true), '200 200');
  t.is(await code(`http://10.9.9.9:${webPort}/`, true), '000 502');
  const res = await fetchRaw(httpPort(), `GET http://10.9.9.9:${webPort}/ HTTP/1.1\r\nHost: 10.9.9.9\r\nConnection: close\r\n\r\n`);
  t.regex(res, /^HTTP\/1\.1 502 [^\r]*\r\n[\s\S]*x-isthmus-reason: no member has original IP 10\.9\.9\.9/i);
});

test('oversize HTTP headers get 431; garbage gets 400', async (t) => {
  const big = `GET http://${ORIG}:${webPort}/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`;
  t.regex(await fetchRaw(httpPort(), big), /^HTTP\/1\.1 431 /);
  t.regex(await fetchRaw(httpPort(), 'BLAH\x01\x02 nonsense\r\n\r\n'), /^HTTP\/1\.1 400 /);
  t.regex(await fetchRaw(httpPort(), 'GET /relative HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 400 /);
});

function fetchRaw(port: number, payload: string | Buffer): Promise<string> {
  return rawSession(port, payload).then((b) => b.toString('latin1'));
}

/** Sends bytes, collects everything until the server closes (or 3 s). */
function rawSession(port: number, payload: string | Buffer, endAfterWrite = false): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    const t = setTimeout(() => { s.destroy(); resolve(Buffer.concat(parts)); }, 3000);
    s.on('data', (d) => parts.push(d));
    s.on('error', () => undefined);
    s.on('close', () => { clearTimeout(t); resolve(Buffer.concat(parts)); });
    s.write(payload);
    if (endAfterWrite) s.end();
  });
}

const socksOpts = (host: string, port: number, extra: object = {}) => ({
  proxy: { host: '127.0.0.1', port: socksPort(), type: 5 as const }, command: 'connect' as const, destination: { host, port }, timeout: 5000, ...extra,
});

test('socks client CONNECT: original IP works; unknown 0x04, refused 0x05, not allowed 0x02, IPv6 0x08', async (t) => {
  const { socket } = await SocksClient.createConnection(socksOpts(ORIG, webPort));
  socket.write(`GET /s HTTP/1.1\r\nHost: ${ORIG}\r\nConnection: close\r\n\r\n`);
  const body = await new Promise<string>((r) => { let b = ''; socket.on('data', (d) => (b += d)); socket.on('end', () => r(b)); });
  t.regex(body, /hello from member via GET \/s/);
  const replyFor = async (host: string, port: number) => {
    const err = await t.throwsAsync(SocksClient.createConnection(socksOpts(host, port)));
    return err?.message;
  };
  const upper = await SocksClient.createConnection(socksOpts('WEB-1', webPort));
  upper.socket.destroy();
  t.regex((await replyFor('10.9.9.9', 80))!, /HostUnreachable/);
  t.regex((await replyFor(ORIG, closedPort))!, /ConnectionRefused/);
  t.regex((await replyFor('0.0.0.0', 80))!, /NotAllowed/);
  t.regex((await replyFor('nobody.example', 80))!, /HostUnreachable/);
  t.regex((await replyFor('2001:db8::1', 80))!, /AddressNotSupported/);
});

test('socks: username/password required when configured (RFC 1929)', async (t) => {
  const p = authMapper.addresses.socks!.port;
  const base = { command: 'connect' as const, destination: { host: ORIG, port: webPort }, timeout: 5000 };
  const { socket } = await SocksClient.createConnection({ ...base, proxy: { host: '127.0.0.1', port: p, type: 5, userId: 'u', password: 'p4ss' } });
  socket.destroy();
  await t.throwsAsync(SocksClient.createConnection({ ...base, proxy: { host: '127.0.0.1', port: p, type: 5, userId: 'u', password: 'wrong' } }));
  await t.throwsAsync(SocksClient.createConnection({ ...base, proxy: { host: '127.0.0.1', port: p, type: 5 } }));
  const strictErr = await t.throwsAsync(SocksClient.createConnection({ ...base, destination: { host: '192.0.2.1', port: 80 }, proxy: { host: '127.0.0.1', port: p, type: 5, userId: 'u', password: 'p4ss' } }));
  t.regex(strictErr!.message, /NotAllowed/);
  // HTTP on the same port needs the same credentials.
  t.regex(await fetchRaw(p, `GET http://${ORIG}:${webPort}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 407 /);
});

test('socks UDP ASSOCIATE relays datagrams to the mapped address and labels replies with the original IP', async (t) => {
  // createConnection refuses 'associate'; the event API is the documented way.
  const client = new SocksClient({ ...socksOpts('0.0.0.0', 0), command: 'associate' });
  const { socket, remoteHost } = await new Promise<{ socket: net.Socket; remoteHost?: { host: string; port: number } }>((resolve, reject) => {
    client.once('established', resolve);
    client.once('error', reject);
    client.connect();
  });
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((r) => udp.once('message', r));
  udp.send(SocksClient.createUDPFrame({ remoteHost: { host: ORIG, port: (echo.address()).port }, data: Buffer.from('ping') }), remoteHost!.port, remoteHost!.host);
  const frame = SocksClient.parseUDPFrame(await got);
  t.is(frame.data.toString(), 'echo:ping');
  t.is(frame.remoteHost.host, ORIG);
  t.is(frame.remoteHost.port, echo.address().port);
  // Unknown destinations are dropped silently; the association stays usable.
  udp.send(SocksClient.createUDPFrame({ remoteHost: { host: '10.9.9.9', port: 9 }, data: Buffer.from('x') }), remoteHost!.port, remoteHost!.host);
  const again = new Promise<Buffer>((r) => udp.once('message', r));
  udp.send(SocksClient.createUDPFrame({ remoteHost: { host: 'web-1', port: echo.address().port }, data: Buffer.from('pong') }), remoteHost!.port, remoteHost!.host);
  const f2 = SocksClient.parseUDPFrame(await again);
  t.is(f2.data.toString(), 'echo:pong');
  t.is(f2.remoteHost.host, 'web-1');
  udp.close();
  socket.destroy();
});

test('64 MiB through SOCKS5 arrives intact (SHA-256)', async (t) => {
  const { socket } = await SocksClient.createConnection(socksOpts(ORIG, bulkPort));
  const h = createHash('sha256');
  let n = 0;
  const start = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => { socket.on('data', (d: Buffer) => { n += d.length; h.update(d); }); socket.on('end', resolve); socket.on('error', reject); });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  t.is(n, BULK);
  t.is(h.digest('hex'), bulkDigest);
  t.log(`bulk: ${(BULK / 1048576 / secs).toFixed(0)} MiB/s`);
});

test('malformed SOCKS5 sessions get the right reply or a close, and the server survives', async (t) => {
  const p = socksPort();
  t.deepEqual([...await rawSession(p, Buffer.from([5, 1, 2]))], [5, 0xff]); // only user/pass offered
  t.deepEqual([...await rawSession(p, Buffer.from([5, 0]))], []); // zero methods: close
  // BIND → 0x07
  t.deepEqual([...(await rawSession(p, Buffer.from([5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 2, 0, 80]))).subarray(0, 4)], [5, 0, 5, 7]);
  // unknown ATYP → 0x08
  t.deepEqual([...(await rawSession(p, Buffer.from([5, 1, 0, 5, 1, 0, 9, 1, 2, 3, 4, 0, 80]))).subarray(0, 4)], [5, 0, 5, 8]);
  // IPv6 → 0x08
  const v6 = Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 4]), Buffer.alloc(15), Buffer.from([1, 0, 80])]);
  t.deepEqual([...(await rawSession(p, v6)).subarray(0, 4)], [5, 0, 5, 8]);
  // truncated request then EOF: close without a reply beyond the method selection
  t.deepEqual([...await rawSession(p, Buffer.from([5, 1, 0, 5, 1, 0, 3, 50, 97]), true)], [5, 0]);
  // stalled handshake: closed by the stage timeout (1.5 s here)
  const t0 = Date.now();
  t.deepEqual([...await rawSession(p, Buffer.from([5, 1, 0, 5]))], [5, 0]);
  t.true(Date.now() - t0 < 2900);
  // Still serving.
  const { socket } = await SocksClient.createConnection(socksOpts(ORIG, webPort));
  socket.destroy();
  t.true((mapper.context.counters.get('socks.unsupported-command') ?? 0) >= 1);
});

test('random SOCKS5 byte streams on real sockets: no crash, always closed, still serving', async (t) => {
  const p = socksPort();
  await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean(), async (junk, asGreeting) => {
    const payload = asGreeting ? Buffer.concat([Buffer.from([5, 1, 0]), junk]) : Buffer.concat([Buffer.from([5]), junk]);
    const got = await rawSession(p, payload, true);
    // Whatever came back must start as a SOCKS5 method selection (or nothing at all).
    return got.length === 0 || got[0] === 5;
  }), { numRuns: 200 });
  const { socket } = await SocksClient.createConnection(socksOpts(ORIG, webPort));
  socket.destroy();
  t.pass();
});

test('an injected dialer is used; its timeout maps to SOCKS5 0x04 and HTTP 504', async (t) => {
  const dialed: string[] = [];
  const svc = await startMapperService({
    redis: redis.url, socks: { host: '127.0.0.1', port: 0 }, overlayCidr: '127.0.0.0/8',
    dialer: async (ip, port, ms) => { dialed.push(`${ip}:${port}`); throw new DialTimeoutError(ip, port, ms); },
  });
  try {
    const p = svc.addresses.socks!.port;
    const err = await t.throwsAsync(SocksClient.createConnection({ ...socksOpts(ORIG, 81), proxy: { host: '127.0.0.1', port: p, type: 5 } }));
    t.regex(err!.message, /HostUnreachable/);
    t.regex(await fetchRaw(p, `GET http://${ORIG}:82/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 504 /);
    t.deepEqual(dialed, [`${VIP}:81`, `${VIP}:82`]);
  } finally {
    await svc.stop();
  }
});
