/**
 * Port exposure (POST/GET/DELETE /v1/expose) with a real redis-server and real sockets on
 * loopback. Redis maps the "original IP" 10.1.2.3 to the "virtual IP" 127.0.0.2 (overlay
 * 127.0.0.0/8), so the gateway dials the member with its ordinary socket dialer; the same path
 * through a real overlay is test/netns/mapper-expose.test.ts.
 *
 *   member  10.1.2.3 → 127.0.0.2 (tag:web): bulk (sends 32 MiB), sink (hashes what it gets), hold, extra, gwdenied
 *   gateway A  127.0.0.3 (tag:gateway), in process, proxy users from a test verifier
 *   gateway B  127.0.0.5 (tag:gateway), `isthmus mapper` (CLI), its --socks-user acting with its own tags
 *
 *   policy: tag:ops → tag:web on every member port; tag:gateway → tag:web on all but gwdenied;
 *           tag:monitoring reaches nothing
 */
import anyTest, { type TestFn } from 'ava';
import net from 'node:net';
import { createHash, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { startRedis, type RedisHandle } from '../harness/redis';
import { ManagedProcess, run } from '../harness/procs';
import { startMapperService, registerMapperMetrics, type MapperService, type ProxyUserVerifier, type ExposeOptions } from '../../mapper';

const test = anyTest as TestFn;
const CLI = join(__dirname, '../../dist/cli/main.js');
const ORIG = '10.1.2.3';
const VIP = '127.0.0.2';
const GW_A = '127.0.0.3';
const GW_B = '127.0.0.5';
const GW_C = '127.0.0.6';
const BULK = 32 * 1024 * 1024;
const USERS: Record<string, { pw: string; tags: string[] }> = {
  ops: { pw: 'ops-secret', tags: ['ops'] },
  ops2: { pw: 'ops2-secret', tags: ['ops'] },
  ops3: { pw: 'ops3-secret', tags: ['ops'] },
  mon: { pw: 'mon-secret', tags: ['monitoring'] },
};
/** A Redis-free verifier: the interface the gateway's central proxy users implement. */
const verifier: ProxyUserVerifier = {
  async verify(name, password) {
    const u = USERS[name];
    return u && u.pw === password ? { name, tags: u.tags } : null;
  },
};

let redis: RedisHandle;
let r: Redis;
let dir: string;
const servers: net.Server[] = [];
const ports: Record<'bulk' | 'sink' | 'hold' | 'extra' | 'gwdenied', number> = { bulk: 0, sink: 0, hold: 0, extra: 0, gwdenied: 0 };
let bulkDigest: string;
let gwA: MapperService;
let gwB: ManagedProcess;
let gwBApi: string;
const started: MapperService[] = [];

/** A random range of `size` ports below the kernel's ephemeral range (32768-60999), where a client socket's
 *  local port (even in TIME-WAIT) would make listen fail; other collisions are retried by the gateway. */
function range(size: number): ExposeOptions['range'] {
  const first = randomInt(20000, 32000);
  return { first, last: first + size - 1 };
}

async function gateway(vip: string, expose: Partial<ExposeOptions> = {}): Promise<MapperService> {
  const svc = await startMapperService({
    redis: redis.url, api: { host: '127.0.0.1', port: 0 }, overlayCidr: '127.0.0.0/8', users: verifier,
    gatewayVip: vip, expose: { range: range(64), listenHost: '127.0.0.1', ...expose },
    timeouts: { connectMs: 2000 },
  });
  started.push(svc);
  return svc;
}

async function stopGateway(svc: MapperService): Promise<void> {
  started.splice(started.indexOf(svc), 1);
  await svc.stop();
}

const api = (svc: MapperService) => `http://127.0.0.1:${svc.addresses.api!.port}`;
const basic = (user: string, pw = USERS[user]!.pw) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;

interface Reply { status: number; body: Record<string, unknown> }
async function call(base: string, method: string, path: string, user: string | null, body?: unknown): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (user) headers.authorization = basic(user);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const expose = (svc: MapperService, user: string | null, port: number, originalIp = ORIG) => call(api(svc), 'POST', '/v1/expose', user, { originalIp, port });

/** Connects to 127.0.0.1:port; resolves with the socket, rejects with the connect error. */
function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.removeListener('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

/** Reads what the bulk server sends through the exposed port; its SHA-256. */
async function bulkThrough(port: number): Promise<string> {
  const s = await connect(port);
  const h = createHash('sha256');
  await new Promise<void>((resolve, reject) => { s.on('data', (d: Buffer) => h.update(d)); s.once('end', resolve); s.once('error', reject); });
  s.destroy();
  return h.digest('hex');
}

async function refused(port: number): Promise<boolean> {
  try {
    const s = await connect(port);
    s.destroy();
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

async function eventually(what: string, probe: () => Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > until) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function listen(handler: (s: net.Socket) => void, allowHalfOpen = false): Promise<number> {
  const srv = net.createServer({ allowHalfOpen }, (s) => { s.on('error', () => undefined); handler(s); });
  servers.push(srv);
  await new Promise<void>((res) => srv.listen(0, VIP, res));
  return (srv.address() as net.AddressInfo).port;
}

test.before(async () => {
  redis = await startRedis();
  r = new Redis(redis.url);
  dir = mkdtempSync(join(tmpdir(), 'isthmus-expose-'));
  const chunk = Buffer.alloc(1 << 20);
  const block = createHash('sha512').update('expose').digest();
  for (let i = 0; i < chunk.length; i += block.length) block.copy(chunk, i);
  const h = createHash('sha256');
  for (let i = 0; i < BULK / chunk.length; i++) h.update(chunk);
  bulkDigest = h.digest('hex');
  ports.bulk = await listen((s) => {
    let sent = 0;
    const pump = () => { while (sent < BULK) { sent += chunk.length; if (!s.write(chunk)) { s.once('drain', pump); return; } } s.end(); };
    pump();
  });
  // The sink answers the SHA-256 of everything it got, once the client half-closes.
  ports.sink = await listen((s) => { const sh = createHash('sha256'); s.on('data', (d: Buffer) => sh.update(d)); s.once('end', () => s.end(sh.digest('hex'))); }, true);
  ports.hold = await listen((s) => s.write('held\n'));
  ports.extra = await listen((s) => s.end('extra\n'));
  ports.gwdenied = await listen((s) => s.end('should not be reached through a gateway\n'));
  const node = (orig: string, tags: string[]) => ({ pub: 'AAAA', orig, hostname: '', tags: JSON.stringify(tags), created: '1', lastSeen: String(Date.now()), ephemeral: '0' });
  await r.set(`isthmus:orig:${ORIG}`, VIP);
  await r.hset(`isthmus:node:${VIP}`, node(ORIG, ['web']));
  for (const [vip, orig] of [[GW_A, '10.1.2.4'], [GW_B, '10.1.2.5'], [GW_C, '10.1.2.6']] as const) {
    await r.set(`isthmus:orig:${orig}`, vip);
    await r.hset(`isthmus:node:${vip}`, node(orig, ['gateway']));
  }
  const all = Object.values(ports).map((p) => `tcp/${p}`);
  const policy = { rules: [
    { from: ['tag:ops'], to: ['tag:web'], ports: all },
    { from: ['tag:gateway'], to: ['tag:web'], ports: all.filter((p) => p !== `tcp/${ports.gwdenied}`) },
  ] };
  await r.set('isthmus:policy', JSON.stringify(policy));

  gwA = await gateway(GW_A);
  // Gateway B: the real CLI. Its own --socks-user acts with its tags (tag:gateway).
  const passFile = join(dir, 'pass');
  writeFileSync(passFile, 'b-secret\n', { mode: 0o600 });
  gwB = new ManagedProcess(process.execPath, [CLI, 'mapper', '--redis', redis.url, '--api', '127.0.0.1:0', '--socks-user', 'bob', '--socks-pass-file', passFile,
    '--overlay-cidr', '127.0.0.0/8', '--gateway-vip', GW_B], { name: 'gateway-b', env: { ...process.env, ISTHMUS_LOG_LEVEL: 'info' } });
  const line = await gwB.waitForLine(/^isthmus mapper: api /, 20_000);
  gwBApi = /api (http:\/\/[0-9.:]+)/.exec(line)![1]!;
});

test.after.always(async () => {
  for (const s of started) await s.stop().catch(() => undefined);
  await gwB?.stop();
  for (const s of servers) s.close();
  r?.disconnect();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test.serial('a proxy user exposes a member port: 32 MiB down and 8 MiB up arrive intact (SHA-256), through the gateway port', async (t) => {
  const a = await expose(gwA, 'ops', ports.bulk);
  t.is(a.status, 201, JSON.stringify(a.body));
  t.like(a.body, { gatewayIp: '127.0.0.1', originalIp: ORIG, port: ports.bulk, gatewayId: GW_A });
  const gp = a.body.gatewayPort as number;
  const rng = gwA.expose!;
  t.true(rng.size >= 1);
  t.true(Math.abs((a.body.expiresAt as number) - (Date.now() + 600_000)) < 10_000, 'expires after the default 10 min idle');
  t.is(await bulkThrough(gp), bulkDigest);
  const rec = await r.hgetall(`isthmus:expose:${ORIG}:${ports.bulk}`);
  t.like(rec, { gatewayId: GW_A, gatewayIp: '127.0.0.1', gatewayPort: String(gp), user: 'ops', originalIp: ORIG, port: String(ports.bulk) });
  t.true((await r.pttl(`isthmus:expose:${ORIG}:${ports.bulk}`)) > 0, 'the record has a TTL (a dead gateway\'s records go)');
  t.true(await r.sismember(`isthmus:expose-gateway:${GW_A}`, `${ORIG}:${ports.bulk}`) === 1);

  const up = await expose(gwA, 'ops', ports.sink);
  t.is(up.status, 201);
  const s = await connect(up.body.gatewayPort as number);
  const payload = Buffer.alloc(8 << 20);
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);
  let answer = '';
  s.on('data', (d: Buffer) => { answer += d.toString(); });
  const done = new Promise((res) => s.once('end', res));
  s.end(payload);
  await done;
  s.destroy();
  t.is(answer, createHash('sha256').update(payload).digest('hex'));

  // The same target again: the existing 4-tuple (200), not a second port.
  const again = await expose(gwA, 'ops2', ports.bulk);
  t.is(again.status, 200);
  t.is(again.body.gatewayPort, gp);
});

test.serial('any gateway answers GET from Redis (the CLI gateway B), and only for users the policy lets reach the target', async (t) => {
  const a = await expose(gwA, 'ops', ports.extra);
  t.true(a.status === 201 || a.status === 200, JSON.stringify(a.body));
  const res = await fetch(`${gwBApi}/v1/expose?originalIp=${ORIG}&port=${ports.extra}`, { headers: { authorization: `Basic ${Buffer.from('bob:b-secret').toString('base64')}` } });
  t.is(res.status, 200);
  t.deepEqual(await res.json(), { gatewayIp: '127.0.0.1', gatewayPort: a.body.gatewayPort, originalIp: ORIG, port: ports.extra, expiresAt: a.body.expiresAt, gatewayId: GW_A });
  const none = await fetch(`${gwBApi}/v1/expose?originalIp=${ORIG}&port=${ports.hold}`, { headers: { authorization: `Basic ${Buffer.from('bob:b-secret').toString('base64')}` } });
  t.is(none.status, 404);
  t.like(await none.json(), { error: 'not-exposed' });
  // On A: ops sees it, mon (tag:monitoring) does not.
  t.is((await call(api(gwA), 'GET', `/v1/expose?originalIp=${ORIG}&port=${ports.extra}`, 'ops')).status, 200);
  const mon = await call(api(gwA), 'GET', `/v1/expose?originalIp=${ORIG}&port=${ports.extra}`, 'mon');
  t.is(mon.status, 403);
  t.like(mon.body, { error: 'policy-denied' });
  const wrong = await fetch(`${gwBApi}/v1/expose?originalIp=${ORIG}&port=${ports.extra}`, { headers: { authorization: `Basic ${Buffer.from('bob:nope').toString('base64')}` } });
  t.is(wrong.status, 401);
});

test.serial('DELETE: only the creating user; then the port refuses connections, open ones are closed, the record is gone', async (t) => {
  const a = await expose(gwA, 'ops3', ports.hold);
  t.is(a.status, 201, JSON.stringify(a.body));
  const gp = a.body.gatewayPort as number;
  const open = await connect(gp);
  const greeting = await new Promise<string>((res) => open.once('data', (d: Buffer) => res(d.toString())));
  t.is(greeting, 'held\n');
  const closed = new Promise<boolean>((res) => { open.once('close', () => res(true)); open.on('error', () => undefined); });

  const other = await call(api(gwA), 'DELETE', `/v1/expose/${gp}`, 'ops');
  t.is(other.status, 403);
  t.like(other.body, { error: 'not-owner' });
  t.false(await refused(gp), 'still open after a refused DELETE');

  const del = await call(api(gwA), 'DELETE', `/v1/expose/${gp}`, 'ops3');
  t.is(del.status, 200, JSON.stringify(del.body));
  t.true(await closed, 'the open connection was closed');
  t.true(await refused(gp), 'connection refused after DELETE');
  t.is(await r.exists(`isthmus:expose:${ORIG}:${ports.hold}`), 0);
  t.is((await call(api(gwA), 'GET', `/v1/expose?originalIp=${ORIG}&port=${ports.hold}`, 'ops3')).status, 404);
  t.is((await call(api(gwA), 'DELETE', `/v1/expose/${gp}`, 'ops3')).status, 404);
});

test.serial('DELETE by target on another gateway: only by the creator; the owner closes its listener within a sweep', async (t) => {
  const a = await expose(gwA, 'ops2', ports.hold);
  t.is(a.status, 201, JSON.stringify(a.body));
  const gp = a.body.gatewayPort as number;
  t.false(await refused(gp));
  // B's user (bob) did not create it: refused, and nothing changes.
  const bob = await fetch(`${gwBApi}/v1/expose?originalIp=${ORIG}&port=${ports.hold}`, { method: 'DELETE', headers: { authorization: `Basic ${Buffer.from('bob:b-secret').toString('base64')}` } });
  t.is(bob.status, 403);
  t.like(await bob.json(), { error: 'not-owner' });
  t.false(await refused(gp));
  // The creator, through another gateway (C, which knows the same proxy users).
  const c = await gateway(GW_C);
  const del = await call(api(c), 'DELETE', `/v1/expose?originalIp=${ORIG}&port=${ports.hold}`, 'ops2');
  t.is(del.status, 200, JSON.stringify(del.body));
  t.is(del.body.gatewayPort, gp);
  t.is(await r.exists(`isthmus:expose:${ORIG}:${ports.hold}`), 0);
  await eventually('A closes the listener whose record is gone', () => refused(gp), 5000);
  await stopGateway(c);
});

test.serial('bad input and bad credentials get 4xx with a reason', async (t) => {
  const no = await expose(gwA, null, ports.extra);
  t.is(no.status, 401);
  t.regex(String(no.body.reason), /credentials/);
  const wrong = await call(api(gwA), 'POST', '/v1/expose', null, { originalIp: ORIG, port: ports.extra });
  t.is(wrong.status, 401);
  const bad = await fetch(`${api(gwA)}/v1/expose`, { method: 'POST', headers: { authorization: basic('ops', 'wrong'), 'content-type': 'application/json' }, body: JSON.stringify({ originalIp: ORIG, port: ports.extra }) });
  t.is(bad.status, 401);
  t.like(await bad.json(), { error: 'unauthorized', reason: 'unknown proxy user or wrong password' });
  for (const [body, re] of [
    [{ originalIp: '10.1.2', port: 80 }, /originalIp/], [{ originalIp: 'example.com', port: 80 }, /originalIp/],
    [{ originalIp: ORIG, port: 0 }, /port must be >= 1/], [{ originalIp: ORIG, port: 70000 }, /port must be <= 65535/],
    [{ originalIp: ORIG }, /port/], ['not json', /JSON|body/],
  ] as const) {
    const res = await call(api(gwA), 'POST', '/v1/expose', 'ops', body);
    t.is(res.status, 400, JSON.stringify(body));
    t.like(res.body, { error: 'bad-request' });
    t.regex(String(res.body.reason), re, JSON.stringify(res.body));
  }
  const unknown = await expose(gwA, 'ops', 80, '10.9.9.9');
  t.is(unknown.status, 404);
  t.like(unknown.body, { error: 'unknown-original-ip' });
  const special = await expose(gwA, 'ops', 80, '127.0.0.1');
  t.is(special.status, 404, 'an overlay address is not an original IP');
  const badGet = await call(api(gwA), 'GET', '/v1/expose?originalIp=10.1.2.3&port=x', 'ops');
  t.is(badGet.status, 400);
  // Positive control: the same user, a valid request.
  t.true([200, 201].includes((await expose(gwA, 'ops', ports.extra)).status));
});

test.serial('policy: the user\'s tags and the gateway\'s tags must both reach the port (403 with the reason)', async (t) => {
  const mon = await expose(gwA, 'mon', ports.extra);
  t.is(mon.status, 403);
  t.like(mon.body, { error: 'policy-denied' });
  t.regex(String(mon.body.reason), /proxy user mon \(tags monitoring\) open tcp\//);
  const gw = await expose(gwA, 'ops', ports.gwdenied);
  t.is(gw.status, 403);
  t.regex(String(gw.body.reason), /does not let this gateway \(tags gateway\) open/);
  t.is(await r.exists(`isthmus:expose:${ORIG}:${ports.gwdenied}`), 0, 'nothing recorded for a refusal');
  // Positive control: ops through the same gateway to a port both may reach.
  t.true([200, 201].includes((await expose(gwA, 'ops', ports.extra)).status));
  // Every connection checks the policy again: with the gateway's rule gone, a connection to the
  // exposed port is closed without reaching the member; with it back, the member answers.
  const open = await expose(gwA, 'ops', ports.extra);
  const read = async () => {
    const s = await connect(open.body.gatewayPort as number);
    let got = '';
    s.on('data', (d: Buffer) => { got += d.toString(); });
    await new Promise((res) => s.once('close', res));
    return got;
  };
  t.is(await read(), 'extra\n', 'positive control: the exposed port reaches the member');
  const good = await r.get('isthmus:policy');
  const policy = JSON.parse(good!) as { rules: Array<{ from: string[] }> };
  await r.set('isthmus:policy', JSON.stringify({ rules: policy.rules.filter((x) => x.from[0] !== 'tag:gateway') }));
  await new Promise((res) => setTimeout(res, 1100));
  t.is(await read(), '', 'policy changed: the connection is closed at the gateway');
  await r.set('isthmus:policy', good!);
  await new Promise((res) => setTimeout(res, 1100));
  t.is(await read(), 'extra\n');
  // A policy in Redis that does not parse refuses everything (fail closed), and the valid one is back after.
  await r.set('isthmus:policy', '{ not json');
  await new Promise((res) => setTimeout(res, 1100));
  const broken = await expose(gwA, 'ops', ports.sink);
  t.is(broken.status, 403);
  t.regex(String(broken.body.reason), /does not parse/);
  await r.set('isthmus:policy', good!);
  await new Promise((res) => setTimeout(res, 1100));
  t.true([200, 201].includes((await expose(gwA, 'ops', ports.sink)).status));
});

test.serial('limits: per user (429) and range exhaustion (503), each with a reason', async (t) => {
  const small = await gateway(GW_C, { range: range(2), maxPerUser: 1 });
  const one = await expose(small, 'ops', ports.bulk);
  // The bulk target may already be exposed on A (200, A's tuple); pick targets A does not hold.
  t.is(one.status, 200);
  t.is(one.body.gatewayId, GW_A, 'a target exposed elsewhere is answered with that 4-tuple');
  await call(api(gwA), 'DELETE', `/v1/expose?originalIp=${ORIG}&port=${ports.sink}`, 'ops');
  await call(api(gwA), 'DELETE', `/v1/expose?originalIp=${ORIG}&port=${ports.extra}`, 'ops');
  await call(api(gwA), 'DELETE', `/v1/expose?originalIp=${ORIG}&port=${ports.hold}`, 'ops2');
  const first = await expose(small, 'ops', ports.sink);
  t.is(first.status, 201, JSON.stringify(first.body));
  const limit = await expose(small, 'ops', ports.extra);
  t.is(limit.status, 429);
  t.like(limit.body, { error: 'too-many-exposures' });
  const second = await expose(small, 'ops2', ports.extra);
  t.is(second.status, 201, `another user still may (positive control): ${JSON.stringify(second.body)}`);
  const full = await expose(small, 'ops3', ports.hold);
  t.is(full.status, 503);
  t.like(full.body, { error: 'expose-range-exhausted' });
  t.regex(String(full.body.reason), /ports/);
  const reg = new Registry();
  registerMapperMetrics(reg, small);
  const text = await reg.metrics();
  t.regex(text, /isthmus_mapper_exposures_open 2/);
  t.regex(text, /isthmus_mapper_exposures_total\{result="created"\} 2/);
  t.regex(text, /isthmus_mapper_exposures_total\{result="refused.expose-range-exhausted"\} 1/);
  t.regex(text, /isthmus_mapper_exposures_total\{result="refused.too-many-exposures"\} 1/);
  await stopGateway(small);
  t.is(await r.exists(`isthmus:expose:${ORIG}:${ports.sink}`), 0, 'a stopped gateway removes its records');
});

test.serial('idle expiry: unused for --expose-idle closes the port and removes the record; an open connection keeps it', async (t) => {
  const quick = await gateway(GW_C, { idleMs: 1500, sweepMs: 100 });
  const a = await expose(quick, 'ops', ports.hold);
  t.is(a.status, 201, JSON.stringify(a.body));
  const gp = a.body.gatewayPort as number;
  // In use: a connection held open for longer than the idle time keeps it.
  const s = await connect(gp);
  s.on('error', () => undefined);
  await new Promise((res) => setTimeout(res, 2500));
  t.false(await refused(gp), 'still exposed while a connection is open');
  t.true(Number(await r.hget(`isthmus:expose:${ORIG}:${ports.hold}`, 'expiresAt')) > Date.now(), 'expiresAt refreshed in Redis by use');
  s.destroy();
  // Watched from the side (a probe connection would be a use).
  await eventually('the idle exposure closes', async () => quick.expose!.size === 0, 5000);
  t.true(await refused(gp));
  t.is(await r.exists(`isthmus:expose:${ORIG}:${ports.hold}`), 0);
  await stopGateway(quick);
});

test.serial('a restarted gateway removes the records its previous run left (no record points at a dead listener)', async (t) => {
  const dead = { gatewayId: GW_C, gatewayIp: '127.0.0.1', gatewayPort: '41999', originalIp: ORIG, port: String(ports.extra), user: 'ops', createdAt: '1', expiresAt: String(Date.now() + 600_000) };
  await r.hset(`isthmus:expose:${ORIG}:${ports.extra}`, dead);
  await r.sadd(`isthmus:expose-gateway:${GW_C}`, `${ORIG}:${ports.extra}`);
  // Another gateway's record stays (positive control).
  await r.hset(`isthmus:expose:${ORIG}:${ports.gwdenied}`, { ...dead, gatewayId: GW_B, port: String(ports.gwdenied) });
  await r.sadd(`isthmus:expose-gateway:${GW_C}`, `${ORIG}:${ports.gwdenied}`);
  const again = await gateway(GW_C);
  await eventually('the previous run\'s record is removed', async () => (await r.exists(`isthmus:expose:${ORIG}:${ports.extra}`)) === 0);
  t.is(await r.exists(`isthmus:expose:${ORIG}:${ports.gwdenied}`), 1);
  await r.del(`isthmus:expose:${ORIG}:${ports.gwdenied}`);
  await stopGateway(again);
});

/** The mapper's ACL line of docs/SECURITY.md, plus (with `gateway`) the addition it documents for exposing gateways, as ACL SETUSER words. */
function aclWords(gateway: boolean, password: string): string[] {
  const doc = readFileSync(join(__dirname, '../../docs/SECURITY.md'), 'utf8');
  const line = doc.split('\n').find((l) => l.startsWith('ACL SETUSER isthmus-mapper '))!;
  const extra = /`(%R~isthmus:policy [^`]+)`/.exec(doc)![1]!;
  const words = line.slice('ACL SETUSER isthmus-mapper '.length).split(' ').map((w) => (w.startsWith('>') ? `>${password}` : w));
  return gateway ? [...words, ...extra.split(' ')] : words;
}

test.serial('the ACL of docs/SECURITY.md: a gateway user with the documented addition exposes, refreshes and deletes; the plain mapper user cannot', async (t) => {
  const url = (user: string, pw: string) => { const u = new URL(redis.url); u.username = user; u.password = pw; return u.toString(); };
  await r.call('ACL', 'SETUSER', 'isthmus-gw', ...aclWords(true, 'gw-pw'));
  await r.call('ACL', 'SETUSER', 'isthmus-mapper-only', ...aclWords(false, 'm-pw'));
  const mk = async (user: string, pw: string) => {
    const svc = await startMapperService({ redis: url(user, pw), api: { host: '127.0.0.1', port: 0 }, overlayCidr: '127.0.0.0/8', users: verifier,
      gatewayVip: GW_C, expose: { range: range(64), listenHost: '127.0.0.1', sweepMs: 100 } });
    started.push(svc);
    return svc;
  };
  const gw = await mk('isthmus-gw', 'gw-pw');
  const a = await expose(gw, 'ops', ports.extra);
  t.is(a.status, 201, JSON.stringify(a.body));
  await new Promise((res) => setTimeout(res, 500));
  t.is(gw.expose!.size, 1, 'the record refresh (several sweeps) kept it: the scripts ran under the ACL');
  t.is((await call(api(gw), 'GET', `/v1/expose?originalIp=${ORIG}&port=${ports.extra}`, 'ops')).status, 200);
  t.is((await call(api(gw), 'DELETE', `/v1/expose/${a.body.gatewayPort as number}`, 'ops')).status, 200);
  t.is(await r.exists(`isthmus:expose:${ORIG}:${ports.extra}`), 0);
  await stopGateway(gw);
  const plain = await mk('isthmus-mapper-only', 'm-pw');
  const no = await expose(plain, 'ops', ports.extra);
  t.is(no.status, 503, 'the read-only mapper user may not write exposure records');
  t.regex(String(no.body.reason), /NOPERM/);
  t.is(await r.exists(`isthmus:expose:${ORIG}:${ports.extra}`), 0);
  await stopGateway(plain);
});

test('isthmus mapper refuses bad exposure flags, naming them', async (t) => {
  const passFile = join(dir, 'pass');
  const base = ['mapper', '--redis', redis.url, '--api', '127.0.0.1:20500', '--socks-user', 'u', '--socks-pass-file', passFile];
  for (const [args, re] of [
    [['--expose-range', '20000-20999'], /--expose-range 20000-20999 overlaps --api \(port 20500\)/],
    [['--expose-range', '20999-20000'], /--expose-range 20999-20000: the first port is above the last/],
    [['--expose-range', '0-10'], /--expose-range 0-10: ports are 1-65535/],
    [['--expose-range', 'lots'], /--expose-range "lots": want FIRST-LAST/],
    [['--expose-range', '30000-30010', '--expose-idle', 'soon'], /--expose-idle must be a duration/],
    [['--expose-range', '30000-30010', '--expose-listen', '0.0.0.0'], /--expose-listen 0.0.0.0 needs --expose-advertise/],
    [['--expose-range', '30000-30010', '--expose-max-per-user', '0'], /--expose-max-per-user/],
    [['--expose-listen', '127.0.0.1'], /--expose-listen needs --expose-range/],
  ] as const) {
    const res = await run(process.execPath, [CLI, ...base, ...args], { check: false, timeoutMs: 20_000 });
    t.not(res.code, 0, args.join(' '));
    t.regex(res.stderr, re, args.join(' '));
  }
  const noUsers = await run(process.execPath, [CLI, 'mapper', '--redis', redis.url, '--api', '127.0.0.1:0', '--expose-range', '30000-30010'], { check: false, timeoutMs: 20_000 });
  t.not(noUsers.code, 0);
  t.regex(noUsers.stderr, /--expose-range needs proxy users/);
});
