/**
 * Redis as a trust root (issue 11 items 5 and 6), with the real CLI (`node dist/cli/main.js`)
 * against a private redis-server that has a password (`requirepass`), the ACL users of
 * docs/SECURITY.md (read from there, so the documented lines are the tested ones) and a TLS port
 * with a CA made by openssl:
 *
 *   coordinator (ACL user, rediss + CA, password and admin token from files)
 *     → a member joins; relay (ACL user, rediss) authenticates it and records its session;
 *     mapper (read+subscribe ACL user) maps its original IP to its virtual IP, online.
 *
 * Then the negative checks, each next to its positive control: wrong passwords (the password
 * never appears in any output), world-readable secret files, the mapper's ACL refusing writes,
 * the mapper refusing non-loopback listens without credentials, and a Redis mapping to an
 * address outside the overlay, which the mapper never dials.
 */
import test from 'ava';
import { execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { SocksClient } from 'socks';
import { CoordinatorClient } from '../../coordinator';
import { startMapperService, type MapperService } from '../../mapper';
import { netDialer } from '../../mapper/dialer';
import { startRedis, type RedisHandle } from '../harness/redis';
import { member } from './coordinator-helpers';
import { startMember, until } from './relay-harness';
import { parseAddr } from '../../common';
import { spawnOwned } from '../harness/procs';

const root = join(__dirname, '..', '..');
const CLI = join(root, 'dist', 'cli', 'main.js');
const run = promisify(execFile);

const rnd = (what: string) => `${what}-${randomBytes(12).toString('hex')}`;
const PW = { default: rnd('defaultpw'), coordinator: rnd('coordpw'), relay: rnd('relaypw'), mapper: rnd('mappw') };
const WRONG = rnd('wrongpw');
const ADMIN_TOKEN = rnd('admintoken');
const ALL_SECRETS = [...Object.values(PW), WRONG, ADMIN_TOKEN];

let redis: RedisHandle;
let dir = '';
const files: Record<string, string> = {};
const children: ChildProcess[] = [];

/** The `ACL SETUSER isthmus-*` lines of docs/SECURITY.md, as redis.conf `user` lines with our passwords. */
function documentedAclUsers(): string[] {
  const doc = readFileSync(join(root, 'docs', 'SECURITY.md'), 'utf8');
  const lines = doc.split('\n').filter((l) => l.startsWith('ACL SETUSER isthmus-'));
  if (lines.length !== 3) throw new Error(`docs/SECURITY.md: want 3 ACL SETUSER isthmus-* lines, found ${lines.length}`);
  return lines.map((l) => l.slice('ACL SETUSER '.length).replace(/>CHANGE-ME-(\w+)/, (_m, who: keyof typeof PW) => `>${PW[who]}`));
}

function secretFile(name: string, content: string, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, content + '\n');
  chmodSync(p, mode);
  return p;
}

function cleanEnv(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ISTHMUS_')) e[k] = v;
  return e;
}

interface Daemon { child: ChildProcess; output(): string; line(msg: string): Record<string, unknown> }

/** Starts a daemon and waits for the log line `msg` (or its exit). */
async function startDaemon(args: string[], msg: string): Promise<Daemon> {
  const child = spawnOwned(process.execPath, [CLI, ...args], { cwd: root, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const line = (m: string): Record<string, unknown> => {
    for (const l of out.split('\n')) {
      if (!l.startsWith('{')) continue;
      const o = JSON.parse(l) as Record<string, unknown>;
      if (o.msg === m) return o;
    }
    throw new Error(`no "${m}" log line in:\n${out}`);
  };
  await until(() => out.includes(`"msg":"${msg}"`) || child.exitCode !== null, msg, 20_000).catch((e: Error) => { throw new Error(`${e.message}\n${out}`); });
  if (child.exitCode !== null) throw new Error(`${args[0]} exited ${child.exitCode}:\n${out}`);
  return { child, output: () => out, line };
}

/** Runs a command that is expected to end (a refused start): exit code and all output. */
function runToEnd(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawnOwned(process.execPath, [CLI, ...args], { cwd: root, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

function noSecretIn(t: { false(v: boolean, m?: string): void }, text: string, what: string): void {
  for (const s of ALL_SECRETS) t.false(text.includes(s), `${what}: a secret (${s.split('-')[0]}) appears in the output`);
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
  if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

test.before(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run npx tsc -p tsconfig.json first`);
  dir = mkdtempSync(join(tmpdir(), 'isthmus-redistrust-'));
  for (const [who, pw] of Object.entries(PW)) files[who] = secretFile(`${who}.pw`, pw);
  files.wrong = secretFile('wrong.pw', WRONG);
  files.admin = secretFile('admin.token', ADMIN_TOKEN);
  files.worldReadable = secretFile('world.pw', PW.mapper, 0o644);
  redis = await startRedis({ password: PW.default, users: documentedAclUsers(), tls: true });
});

test.after.always(async () => {
  for (const c of children) await stopChild(c);
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The default user (requirepass), for seeding and inspecting. */
function adminRedis(): Redis {
  return new Redis({ host: '127.0.0.1', port: redis.port, password: PW.default, lazyConnect: false });
}

let coordUrl = '';
const joined = member('10.77.0.5', 'redistrust-a');
let joinedVip = '';
let relayPort = 0;

test.serial('coordinator over rediss as its ACL user, password and admin token from files: token create and a join work', async (t) => {
  const d = await startDaemon(['coordinator', '--redis', redis.tlsUrl!, '--redis-ca', redis.caFile!, '--redis-user', 'isthmus-coordinator',
    '--redis-password-file', files.coordinator!, '--admin-token-file', files.admin!, '--listen', '127.0.0.1:0'], 'coordinator listening');
  coordUrl = `http://${String(d.line('coordinator listening').listen)}`;
  const tok = await run(process.execPath, [CLI, 'token', 'create', '--coordinator', coordUrl, '--insecure-coordinator', '--admin-token-file', files.admin!,
    '--original-cidr', '10.77.0.0/16', '--json'], { env: cleanEnv() });
  const token = (JSON.parse(tok.stdout) as { token: string }).token;
  const j = await new CoordinatorClient({ url: coordUrl, insecure: true }).join({ ...joined, token });
  joinedVip = j.vip;
  const r = adminRedis();
  t.teardown(() => r.disconnect());
  t.is(await r.get(`isthmus:orig:${joined.originalIp}`), j.vip, 'the join was written through the ACL user');
  t.is(await r.get(`isthmus:key:${joined.pub}`), j.vip);
  noSecretIn(t, d.output(), 'coordinator log');
  t.false((d.child.spawnargs ?? []).join(' ').includes(PW.coordinator), 'no password in its arguments');
});

test.serial('relay over rediss as its ACL user: authenticates the joined member and records its session and heartbeat', async (t) => {
  t.truthy(joinedVip, 'needs the join of the first test');
  const meshPort = await new Promise<number>((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); }); });
  const d = await startDaemon(['relay', '--listen', '127.0.0.1:0', '--id', 'trust-r1', '--mesh', `127.0.0.1:${meshPort}`, '--stats-interval', '0',
    '--redis', redis.tlsUrl!, '--redis-ca', redis.caFile!, '--redis-user', 'isthmus-relay', '--redis-password-file', files.relay!], 'relay ready');
  relayPort = Number(String(d.line('relay started').udpAddr).split(':')[1]);
  const m = await startMember({ kp: { publicKey: joined.publicKey, secretKey: joined.privateKey }, vip: parseAddr(joinedVip) }, relayPort);
  t.teardown(() => m.close());
  await until(() => m.client.isReady, 'the member authenticated with the relay', 10_000);
  const r = adminRedis();
  t.teardown(() => r.disconnect());
  let session: Record<string, string> = {};
  for (let i = 0; i < 50 && !session.relayId; i++) {
    session = await r.hgetall(`isthmus:session:${joinedVip}`);
    if (!session.relayId) await new Promise((res) => setTimeout(res, 100));
  }
  t.is(session.relayId, 'trust-r1', 'the session was recorded through the relay ACL user (Lua/MULTI on session:*)');
  t.is((await r.hgetall('isthmus:relay:trust-r1')).meshPort, String(meshPort), 'heartbeat written (relay:*)');
  t.truthy(await r.get('isthmus:mesh-key'), 'mesh key created (SET NX on mesh-key)');
  t.false(d.output().includes('NOPERM'), `no ACL refusals in the relay's log:\n${d.output()}`);
  noSecretIn(t, d.output(), 'relay log');
});

test.serial('mapper as the read+subscribe ACL user (redis://, password file) and as the default user over rediss: lookups work', async (t) => {
  t.truthy(joinedVip, 'needs the join of the first test');
  for (const args of [
    ['--redis', redis.url, '--redis-user', 'isthmus-mapper', '--redis-password-file', files.mapper!],
    ['--redis', redis.tlsUrl!, '--redis-ca', redis.caFile!, '--redis-password-file', files.default!],
  ]) {
    const d = await startDaemon(['mapper', ...args, '--api', '127.0.0.1:0'], 'lookup API listening');
    const a = d.line('lookup API listening').addr as { host: string; port: number };
    const res = await fetch(`http://127.0.0.1:${a.port}/v1/map/${joined.originalIp}`);
    t.is(res.status, 200, args.join(' '));
    const body = await res.json() as { virtualIp: string; online: boolean };
    t.is(body.virtualIp, joinedVip);
    noSecretIn(t, d.output(), 'mapper log');
    await stopChild(d.child);
  }
});

test('the mapper ACL user reads and subscribes but cannot write or publish (the real ACL)', async (t) => {
  const r = new Redis({ host: '127.0.0.1', port: redis.port, username: 'isthmus-mapper', password: PW.mapper, maxRetriesPerRequest: 1 });
  t.teardown(() => r.disconnect());
  t.is(await r.get('isthmus:orig:10.250.0.1'), null, 'positive control: GET on orig:* is allowed');
  await t.throwsAsync(r.set('isthmus:orig:10.250.0.1', '100.64.9.9'), { message: /NOPERM/ });
  await t.throwsAsync(r.publish('isthmus:events', '{}'), { message: /NOPERM/ });
  await t.throwsAsync(r.get('isthmus:token-ids'), { message: /NOPERM/ }, 'no reads outside what it needs');
  const relayUser = new Redis({ host: '127.0.0.1', port: redis.port, username: 'isthmus-relay', password: PW.relay, maxRetriesPerRequest: 1 });
  t.teardown(() => relayUser.disconnect());
  t.is(await relayUser.get('isthmus:policy'), null, 'positive control: the relay reads the policy');
  await t.throwsAsync(relayUser.set('isthmus:policy', '{}'), { message: /NOPERM/ }, 'the relay cannot write the policy');
  await t.throwsAsync(relayUser.set('isthmus:key:AAAA', '100.64.0.9'), { message: /NOPERM/ }, 'nor add a member key');
});

test('a wrong password: every daemon fails with a clear error and never prints a password', async (t) => {
  const common = ['--redis', redis.url, '--redis-password-file', files.wrong!];
  const cases: Array<[string, string[]]> = [
    ['coordinator', ['coordinator', ...common, '--listen', '127.0.0.1:0']],
    ['relay', ['relay', '--listen', '127.0.0.1:0', ...common]],
    ['mapper', ['mapper', ...common, '--api', '127.0.0.1:0']],
    ['mapper, password in the URL', ['mapper', '--redis', `redis://:${WRONG}@127.0.0.1:${redis.port}`, '--api', '127.0.0.1:0']],
    ['mapper, ACL user', ['mapper', '--redis', redis.url, '--redis-user', 'isthmus-mapper', '--redis-password-file', files.wrong!, '--api', '127.0.0.1:0']],
  ];
  for (const [what, args] of cases) {
    const r = await runToEnd(args);
    t.not(r.code, 0, `${what} exits non-zero:\n${r.out}`);
    t.regex(r.out, /WRONGPASS/, `${what} says why:\n${r.out}`);
    noSecretIn(t, r.out, what);
  }
  // Positive control in the same setup: the right password works (the earlier tests too).
  const ok = await startDaemon(['mapper', '--redis', `redis://:${PW.default}@127.0.0.1:${redis.port}`, '--api', '127.0.0.1:0'], 'mapper running');
  t.regex(ok.output(), /--redis carries a password/, 'a password in the URL is warned about');
  noSecretIn(t, ok.output(), 'mapper with a URL password');
  await stopChild(ok.child);
});

test('rediss without the CA is refused with the certificate error; with it, it connects', async (t) => {
  const r = await runToEnd(['mapper', '--redis', redis.tlsUrl!, '--redis-password-file', files.default!, '--api', '127.0.0.1:0']);
  t.not(r.code, 0);
  t.regex(r.out, /certificate/);
  noSecretIn(t, r.out, 'no CA');
  const ok = await startDaemon(['mapper', '--redis', redis.tlsUrl!, '--redis-ca', redis.caFile!, '--redis-password-file', files.default!, '--api', '127.0.0.1:0'], 'mapper running');
  await stopChild(ok.child);
  t.pass();
});

test('secret files accessible to every user are refused, naming the flag; mode 600 is accepted', async (t) => {
  const a = await runToEnd(['mapper', '--redis', redis.url, '--redis-user', 'isthmus-mapper', '--redis-password-file', files.worldReadable!, '--api', '127.0.0.1:0']);
  t.is(a.code, 1);
  t.regex(a.out, /--redis-password-file .* is accessible to every user \(mode 644\)/);
  const worldAdmin = secretFile('world-admin.token', ADMIN_TOKEN, 0o604);
  const b = await runToEnd(['token', 'list', '--coordinator', coordUrl || 'http://127.0.0.1:1', '--insecure-coordinator', '--admin-token-file', worldAdmin]);
  t.not(b.code, 0);
  t.regex(b.out, /--admin-token-file .* is accessible to every user/);
  noSecretIn(t, a.out + b.out, 'refusals');
  // Positive control: the same password in a mode-600 file.
  const ok = await startDaemon(['mapper', '--redis', redis.url, '--redis-user', 'isthmus-mapper', '--redis-password-file', files.mapper!, '--api', '127.0.0.1:0'], 'mapper running');
  await stopChild(ok.child);
});

test('the mapper refuses to listen beyond loopback without credentials; loopback works, and with credentials so does 0.0.0.0 (API wants them)', async (t) => {
  const base = ['mapper', '--redis', redis.url, '--redis-user', 'isthmus-mapper', '--redis-password-file', files.mapper!];
  for (const flag of ['--api', '--socks', '--http-proxy']) {
    const r = await runToEnd([...base, flag, '0.0.0.0:0']);
    t.is(r.code, 2, `${flag} 0.0.0.0 refused:\n${r.out}`);
    t.regex(r.out, new RegExp(`${flag} 0\\.0\\.0\\.0: the mapper listens beyond loopback only with credentials`));
  }
  // The library refuses too, before it touches Redis.
  await t.throwsAsync(startMapperService({ redis: redis.url, socks: { host: '0.0.0.0', port: 0 } }), { message: /socks on 0\.0\.0\.0 needs credentials/ });
  await t.throwsAsync(startMapperService({ redis: redis.url, api: { host: '10.1.2.3', port: 0 } }), { message: /api on 10\.1\.2\.3 needs credentials/ });
  const loop = await startDaemon([...base, '--api', '127.0.0.1:0', '--socks', '127.0.0.1:0'], 'mapper running');
  await stopChild(loop.child);
  const sockPass = secretFile('socks.pw', rnd('sockspw'));
  const wide = await startDaemon([...base, '--api', '0.0.0.0:0', '--socks', '0.0.0.0:0', '--socks-user', 'alice', '--socks-pass-file', sockPass], 'mapper running');
  const port = (wide.line('lookup API listening').addr as { port: number }).port;
  const url = `http://127.0.0.1:${port}/v1/map/${joined.originalIp}`;
  t.is((await fetch(url)).status, 401, 'the API without credentials');
  const auth = { authorization: `Basic ${Buffer.from(`alice:${readFileSync(sockPass, 'utf8').trim()}`).toString('base64')}` };
  t.is((await fetch(url, { headers: auth })).status, joinedVip ? 200 : 404, 'the API with them');
  t.is((await fetch(`http://127.0.0.1:${port}/v1/map/${joined.originalIp}`, { headers: { authorization: 'Basic ' + Buffer.from('alice:nope').toString('base64') } })).status, 401);
  t.false(wide.output().includes(readFileSync(sockPass, 'utf8').trim()), 'the proxy password is not logged');
  await stopChild(wide.child);
});

test('a Redis mapping to an address outside the overlay is never dialed: refused and counted (positive control: an overlay mapping is dialed)', async (t) => {
  const r = adminRedis();
  t.teardown(() => r.disconnect());
  const P = 'isthmus:';
  const web = http.createServer((_req, res) => res.end('member\n'));
  await new Promise<void>((res) => web.listen(0, '127.0.0.9', res));
  t.teardown(() => { web.close(); });
  const webPort = (web.address() as net.AddressInfo).port;
  const seed = async (orig: string, vip: string, host: string) => {
    await r.set(`${P}orig:${orig}`, vip);
    await r.set(`${P}host:${host}`, vip);
    await r.hset(`${P}node:${vip}`, { pub: 'AAAA', orig, hostname: host, tags: '[]', created: '1', lastSeen: '1', ephemeral: '0' });
  };
  await seed('10.66.0.2', '127.0.0.9', 'good');
  await seed('10.66.0.1', '192.0.2.66', 'evil');
  const dialed: string[] = [];
  const svc2: MapperService = await startMapperService({
    redis: { host: '127.0.0.1', port: redis.port, username: 'isthmus-mapper', password: PW.mapper }, prefix: P,
    socks: { host: '127.0.0.1', port: 0 }, httpProxy: { host: '127.0.0.1', port: 0 }, overlayCidr: '127.0.0.0/8',
    dialer: (ip, port, ms) => { dialed.push(ip); return netDialer(ip, port, ms); },
  });
  t.teardown(() => svc2.stop());
  const socks = svc2.addresses.socks!.port;
  const ok = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: socks, type: 5 }, command: 'connect', destination: { host: '10.66.0.2', port: webPort } });
  ok.socket.destroy();
  t.deepEqual(dialed, ['127.0.0.9'], 'positive control: the overlay mapping is dialed');
  for (const host of ['10.66.0.1', 'evil']) {
    const err = await t.throwsAsync(SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: socks, type: 5 }, command: 'connect', destination: { host, port: webPort }, timeout: 5000 }));
    t.regex(err!.message, /not allowed|Socks5 proxy rejected/i, host);
  }
  const curl = await run('curl', ['-sS', '-o', '/dev/null', '-D', '-', '--max-time', '5', '-x', `http://127.0.0.1:${svc2.addresses.httpProxy!.port}`, `http://10.66.0.1:${webPort}/`]).catch((e: { stdout: string }) => e);
  t.regex(curl.stdout, /^HTTP\/1\.1 502/);
  t.regex(curl.stdout, /X-Isthmus-Reason: .*outside the overlay 127\.0\.0\.0\/8: not dialed/i);
  t.deepEqual(dialed, ['127.0.0.9'], 'nothing outside the overlay was ever dialed');
  t.is(svc2.context.counters.get('socks.refused.bad-mapping'), 2);
  t.is(svc2.context.counters.get('http.refused.bad-mapping'), 1);
});

test.serial('Sentinel through the same flags: the mapper finds the master via --redis-sentinel and authenticates as its ACL user', async (t) => {
  t.truthy(joinedVip, 'needs the join of the first test');
  const port = await new Promise<number>((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); }); });
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor isthmusmaster 127.0.0.1 ${redis.port} 1\nsentinel auth-pass isthmusmaster ${PW.default}\n`, { mode: 0o600 });
  const sentinel = spawnOwned('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  children.push(sentinel);
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => { const s = net.connect(port, '127.0.0.1'); s.once('connect', () => { s.destroy(); r(true); }); s.once('error', () => r(false)); });
    if (up) break;
    if (i > 100) return t.fail('sentinel did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const base = ['mapper', '--redis-sentinel', `127.0.0.1:${port}`, '--api', '127.0.0.1:0', '--redis-user', 'isthmus-mapper'];
  const bad = await runToEnd([...base, '--redis-sentinel-name', 'isthmusmaster', '--redis-password-file', files.wrong!]);
  t.not(bad.code, 0, bad.out);
  t.regex(bad.out, /WRONGPASS/);
  noSecretIn(t, bad.out, 'sentinel, wrong password');
  const d = await startDaemon([...base, '--redis-sentinel-name', 'isthmusmaster', '--redis-password-file', files.mapper!], 'lookup API listening');
  const a = d.line('lookup API listening').addr as { port: number };
  const res = await fetch(`http://127.0.0.1:${a.port}/v1/map/${joined.originalIp}`);
  t.is(res.status, 200);
  t.is((await res.json() as { virtualIp: string }).virtualIp, joinedVip);
  t.regex(d.output(), /"msg":"(directory started|events subscription restored; cache flushed)"/);
  await stopChild(d.child);
  await stopChild(sentinel);
});
