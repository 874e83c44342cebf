/**
 * Proxy users and gateway mode with real parts: a private redis-server, an in-process
 * coordinator (admin API), the real CLI (`node dist/cli/main.js proxy-user …`, `mapper
 * --gateway`), curl through the SOCKS5 and HTTP fronts. Redis maps "original IP" 10.1.2.3 to
 * the member 127.0.0.2 (tag web, an HTTP server) and knows the gateway member 127.0.0.3 (tag
 * gateway); the overlay CIDR is 127.0.0.0/8 so the gateway dials members with plain sockets.
 *
 * Policy: gateway and ops may open anything to web; monitoring may open nothing to web.
 */
import test from 'ava';
import http from 'node:http';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { startEnv, ADMIN, type Env } from './coordinator-helpers';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { startMapperService, registerMapperMetrics, RedisProxyUsers, redisPolicyLoader, type MapperService } from '../../mapper';
import { startRedis } from '../harness/redis';
import { ManagedProcess } from '../harness/procs';

const exec = promisify(execFile);
const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const ORIG = '10.1.2.3';
const TARGET = '127.0.0.2';
const SELF = '127.0.0.3';
const POLICY = { rules: [{ from: ['tag:gateway', 'tag:ops'], to: ['tag:web'], ports: ['*'] }] };

let env: Env;
let gw: MapperService;
let web: http.Server;
let webPort: number;
let dir: string;
const pw: Record<string, string> = {};

/** The real CLI, without the parent's ISTHMUS_* environment; never throws. */
async function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ISTHMUS_')) e[k] = v;
  try {
    const r = await exec(process.execPath, [CLI, ...args], { env: { ...e, ...extraEnv }, timeout: 30_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (err) {
    const x = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}
const admin = () => ['--coordinator', env.urls[0], '--insecure-coordinator'];
const adminEnv = { ISTHMUS_ADMIN_TOKEN: ADMIN };

async function curl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await exec('curl', ['-sS', '--max-time', '10', ...args], { timeout: 20_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (err) {
    const x = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

test.before(async () => {
  env = await startEnv(1);
  dir = mkdtempSync(join(tmpdir(), 'isthmus-gw-'));
  const r = env.r;
  await r.set(`isthmus:orig:${ORIG}`, TARGET);
  await r.hset(`isthmus:node:${TARGET}`, { pub: 'AAAA', orig: ORIG, hostname: 'web-1', tags: '["web"]', created: '1', lastSeen: '1', ephemeral: '0' });
  await r.hset(`isthmus:node:${SELF}`, { pub: 'BBBB', orig: '10.1.2.4', hostname: 'gw-1', tags: '["gateway"]', created: '1', lastSeen: '1', ephemeral: '0' });
  await env.admin.setPolicy(POLICY);
  web = http.createServer((req, res) => res.end(`hello ${req.url}\n`));
  await new Promise<void>((res) => web.listen(0, TARGET, res));
  webPort = (web.address() as net.AddressInfo).port;
  gw = await startMapperService({
    redis: env.redis.url, socks: { host: '127.0.0.1', port: 0 }, overlayCidr: '127.0.0.0/8',
    gateway: { selfVip: async () => SELF },
  });
  for (const [name, tag] of [['alice', 'ops'], ['mallory', 'monitoring'], ['bob', 'ops']] as const) {
    const c = await cli(['proxy-user', 'create', name, '--tag', tag, ...admin()], adminEnv);
    if (c.code !== 0) throw new Error(`proxy-user create ${name}: ${c.err}`);
    pw[name] = c.out.trim().split('\n').pop()!;
  }
});
test.after.always(async () => {
  await gw?.stop();
  web?.close();
  await env?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const socks = () => `127.0.0.1:${gw.addresses.socks!.port}`;
const url = () => `http://${ORIG}:${webPort}/file`;

test.serial('proxy-user create prints the password once as the last line; list shows names and tags, never a secret', async (t) => {
  const c = await cli(['proxy-user', 'create', 'carol', '--tag', 'ops', '--tag', 'dev', ...admin()], adminEnv);
  t.is(c.code, 0, c.err);
  const password = c.out.trim().split('\n').pop()!;
  t.regex(password, /^[A-Za-z0-9_-]{32}$/);
  t.false(c.err.includes(password));
  const stored = await env.r.hgetall('isthmus:proxy-user:carol');
  t.deepEqual(JSON.parse(stored.tags!), ['dev', 'ops']);
  t.false(JSON.stringify(stored).includes(password), 'only a hash is stored');
  const l = await cli(['proxy-user', 'list', '--json', ...admin()], adminEnv);
  t.is(l.code, 0, l.err);
  const users = JSON.parse(l.out) as Array<Record<string, unknown>>;
  t.deepEqual(users.map((u) => u.name), ['alice', 'bob', 'carol', 'mallory']);
  t.deepEqual(Object.keys(users[0]!).sort(), ['createdAt', 'name', 'tags']);
  const table = await cli(['proxy-user', 'list', ...admin()], adminEnv);
  t.regex(table.out, /^carol\s+dev,ops\s/m);
  for (const p of Object.values(pw)) t.false(l.out.includes(p) || table.out.includes(p));
  // A name that exists is refused (never re-keyed silently); revoke frees it.
  const again = await cli(['proxy-user', 'create', 'carol', '--tag', 'ops', ...admin()], adminEnv);
  t.not(again.code, 0);
  t.regex(again.err, /proxy-user-exists|exists: revoke it first/);
  const rv = await cli(['proxy-user', 'revoke', 'carol', ...admin()], adminEnv);
  t.is(rv.code, 0, rv.err);
  t.is(await env.r.exists('isthmus:proxy-user:carol'), 0);
  const rv2 = await cli(['proxy-user', 'revoke', 'carol', ...admin()], adminEnv);
  t.not(rv2.code, 0);
  t.regex(rv2.err, /not found/);
});

test.serial('proxy-user refuses bad input with the flag named, and a wrong admin token', async (t) => {
  const noTag = await cli(['proxy-user', 'create', 'dave', ...admin()], adminEnv);
  t.is(noTag.code, 2);
  t.regex(noTag.err, /--tag/);
  const badTag = await cli(['proxy-user', 'create', 'dave', '--tag', 'a b', ...admin()], adminEnv);
  t.is(badTag.code, 2);
  t.regex(badTag.err, /--tag "a b"/);
  const badName = await cli(['proxy-user', 'create', 'da:ve', '--tag', 'ops', ...admin()], adminEnv);
  t.is(badName.code, 2);
  t.regex(badName.err, /no ':'/);
  const wrong = await cli(['proxy-user', 'list', ...admin()], { ISTHMUS_ADMIN_TOKEN: 'not-the-admin-token' });
  t.not(wrong.code, 0);
  t.regex(wrong.err, /admin token/);
  // The API itself: a ':' in the name (the Basic separator) is 400 with a reason; positive control with a good name.
  const res = await fetch(`${env.urls[0]}/v1/proxy-users`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'a:b', tags: ['ops'] }) });
  t.is(res.status, 400);
  t.regex(((await res.json()) as { message: string }).message, /name/);
  const ok = await fetch(`${env.urls[0]}/v1/proxy-users`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'erin', tags: ['ops'] }) });
  t.is(ok.status, 201);
  t.regex(((await ok.json()) as { password: string }).password, /^[A-Za-z0-9_-]{32}$/);
});

test.serial('SOCKS5: the right user gets through; a wrong password, no credentials, an unknown user do not', async (t) => {
  const good = await curl(['--socks5-hostname', `alice:${pw.alice}@${socks()}`, url()]);
  t.is(good.out, 'hello /file\n', good.err);
  const wrong = await curl(['--socks5-hostname', `alice:${pw.bob}@${socks()}`, url()]);
  t.not(wrong.code, 0);
  t.is(wrong.out, '');
  const none = await curl(['--socks5-hostname', socks(), url()]);
  t.not(none.code, 0, 'the no-auth method is refused in gateway mode');
  t.is(none.out, '');
  const unknown = await curl(['--socks5-hostname', `zoe:${pw.alice}@${socks()}`, url()]);
  t.not(unknown.code, 0);
});

test.serial('HTTP proxy: 407 with Proxy-Authenticate without or with wrong credentials; 200 with them', async (t) => {
  const none = await curl(['-i', '-x', `http://${socks()}`, url()]);
  t.regex(none.out, /^HTTP\/1\.1 407/);
  t.regex(none.out, /proxy-authenticate: Basic realm="isthmus"/i);
  const wrong = await curl(['-i', '-x', `http://alice:${pw.bob}@${socks()}`, url()]);
  t.regex(wrong.out, /^HTTP\/1\.1 407/);
  const connectWrong = await curl(['-p', '-x', `http://alice:wrong@${socks()}`, url()]);
  t.not(connectWrong.code, 0);
  t.regex(connectWrong.err, /407/);
  const good = await curl(['-x', `http://alice:${pw.alice}@${socks()}`, url()]);
  t.is(good.out, 'hello /file\n', good.err);
  const tunnel = await curl(['-p', '-x', `http://alice:${pw.alice}@${socks()}`, url()]);
  t.is(tunnel.out, 'hello /file\n', tunnel.err);
});

test.serial('a user whose tags the policy does not connect to the member is refused (SOCKS5 0x02, HTTP 403); ops is the positive control', async (t) => {
  const allowed = await curl(['--socks5-hostname', `bob:${pw.bob}@${socks()}`, url()]);
  t.is(allowed.out, 'hello /file\n', allowed.err);
  const s = await curl(['--socks5-hostname', `mallory:${pw.mallory}@${socks()}`, url()]);
  t.not(s.code, 0);
  t.regex(s.err, /\(2\)|not allowed/i, s.err);
  const h = await curl(['-i', '-x', `http://mallory:${pw.mallory}@${socks()}`, url()]);
  t.regex(h.out, /^HTTP\/1\.1 403/);
  t.regex(h.out, /proxy user mallory \(tags monitoring\)/);
  const c = await curl(['-p', '-x', `http://mallory:${pw.mallory}@${socks()}`, url()]);
  t.not(c.code, 0);
  t.regex(c.err, /403/);
  // Counted by result.
  const reg = new Registry();
  registerMapperMetrics(reg, gw);
  const text = await reg.metrics();
  t.regex(text, /isthmus_mapper_socks_connections_total\{result="refused.policy"\} [1-9]/);
  t.regex(text, /isthmus_mapper_http_connections_total\{result="refused.policy"\} [1-9]/);
  t.regex(text, /isthmus_gateway_proxy_user_checks_total\{result="bad-password"\} [1-9]/);
});

test.serial('the gateway\'s own tags count too: a policy that lets ops but not the gateway reach web refuses ops', async (t) => {
  await env.admin.setPolicy({ rules: [{ from: ['tag:ops'], to: ['tag:web'], ports: ['*'] }] });
  const h = await curl(['-i', '-x', `http://bob:${pw.bob}@${socks()}`, url()]);
  t.regex(h.out, /^HTTP\/1\.1 403/);
  t.regex(h.out, /does not let this gateway \(tags gateway\)/);
  await env.admin.setPolicy(POLICY);
  const back = await curl(['-x', `http://bob:${pw.bob}@${socks()}`, url()]);
  t.is(back.out, 'hello /file\n', back.err);
});

test.serial('a revoked user is refused at once, though it was just verified (cached)', async (t) => {
  const before = await curl(['-x', `http://alice:${pw.alice}@${socks()}`, url()]);
  t.is(before.out, 'hello /file\n', before.err);
  const t0 = Date.now();
  const rv = await cli(['proxy-user', 'revoke', 'alice', ...admin()], adminEnv);
  t.is(rv.code, 0, rv.err);
  const revokedAt = Date.now();
  let refusedAt = 0;
  while (Date.now() - t0 < 5000) {
    const r = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://alice:${pw.alice}@${socks()}`, url()]);
    if (r.out === '407') { refusedAt = Date.now(); break; }
  }
  t.true(refusedAt > 0, 'refused');
  t.log(`refused ${refusedAt - revokedAt} ms after the revoke command returned (${revokedAt - t0} ms for the CLI)`);
  t.true(refusedAt - revokedAt < 1000);
  const other = await curl(['-x', `http://bob:${pw.bob}@${socks()}`, url()]);
  t.is(other.out, 'hello /file\n', 'other users still get through');
});

test.serial('without the event (lost), a cached verification is trusted for at most revalidateMs', async (t) => {
  const users = new RedisProxyUsers({ redis: env.redis.url, revalidateMs: 500 });
  await users.start();
  try {
    await new Promise((r) => setTimeout(r, 200));
    t.deepEqual(await users.verify('bob', pw.bob!), { name: 'bob', tags: ['ops'] });
    t.is(await users.verify('bob', 'wrong-password'), null, 'a wrong password is checked, not served from the cache');
    // Delete the record behind the gateway's back (no event): the cache may answer only until it revalidates.
    const saved = await env.r.hgetall('isthmus:proxy-user:bob');
    await env.r.del('isthmus:proxy-user:bob');
    const t0 = Date.now();
    let gone = 0;
    while (Date.now() - t0 < 3000) {
      if (await users.verify('bob', pw.bob!) === null) { gone = Date.now() - t0; break; }
      await new Promise((r) => setTimeout(r, 20));
    }
    t.true(gone > 0 && gone <= 1000, `refused after ${gone} ms (revalidateMs 500)`);
    await env.r.hset('isthmus:proxy-user:bob', saved);
    t.deepEqual(await users.verify('bob', pw.bob!), { name: 'bob', tags: ['ops'] });
    t.true(users.results.cached >= 1 && users.results.ok >= 1);
  } finally {
    await users.close();
  }
});

test.serial('isthmus mapper --gateway: /readyz needs Redis and the local agent\'s overlay (TUN + relay session)', async (t) => {
  let status: object = { vip: SELF, tun: 'isth0', relay: { address: '10.0.0.1:7000', ready: true } };
  const sockPath = join(dir, 'agent.sock');
  const agent = net.createServer((c) => c.end(JSON.stringify(status) + '\n'));
  await new Promise<void>((r) => agent.listen(sockPath, r));
  const p = new ManagedProcess(process.execPath, [CLI, 'mapper', '--gateway', '--redis', env.redis.url, '--socks', '127.0.0.1:0',
    '--overlay-cidr', '127.0.0.0/8', '--agent-socket', sockPath, '--metrics', '127.0.0.1:0'], { name: 'gateway' });
  try {
    const line = await p.waitForLine(/metrics listening/, 15_000);
    const m = /"metrics":"(http:\/\/[^"]+)"/.exec(line)!;
    const ready = async () => {
      const r = await fetch(`${m[1]}/readyz`);
      return { status: r.status, body: (await r.json()) as { checks: Record<string, boolean> } };
    };
    const until = async (want: number) => {
      const t0 = Date.now();
      let last = await ready();
      while (last.status !== want && Date.now() - t0 < 5000) { await new Promise((r) => setTimeout(r, 100)); last = await ready(); }
      return last;
    };
    const up = await until(200);
    t.is(up.status, 200, JSON.stringify(up.body));
    t.deepEqual(up.body.checks, { sockets: true, redis: true, overlay: true });
    status = { vip: SELF, tun: 'isth0', relay: { address: '10.0.0.1:7000', ready: false } };
    const down = await until(503);
    t.is(down.status, 503);
    t.false(down.body.checks.overlay);
    t.true(down.body.checks.redis);
    status = { vip: SELF, tun: 'isth0', relay: { address: '10.0.0.1:7000', ready: true } };
    t.is((await until(200)).status, 200);
    agent.close();
    const gone = await until(503);
    t.is(gone.status, 503, 'no agent answering: not ready');
  } finally {
    await p.stop();
    agent.close();
  }
});

test.serial('isthmus mapper --gateway refuses conflicting flags, naming them', async (t) => {
  const both = await cli(['mapper', '--gateway', '--redis', env.redis.url, '--socks', '127.0.0.1:0', '--socks-user', 'u', '--socks-pass-file', '/dev/null']);
  t.is(both.code, 2);
  t.regex(both.err, /--gateway takes proxy users/);
  const noProxy = await cli(['mapper', '--gateway', '--redis', env.redis.url, '--api', '127.0.0.1:0']);
  t.is(noProxy.code, 2);
  t.regex(noProxy.err, /--gateway needs --socks or --http-proxy/);
  const sockWithout = await cli(['mapper', '--redis', env.redis.url, '--socks', '127.0.0.1:0', '--agent-socket', '/x']);
  t.is(sockWithout.code, 2);
  t.regex(sockWithout.err, /--agent-socket is for --gateway/);
  // One identity source: a gateway asks its agent, for the proxies and exposure alike.
  const vip = await cli(['mapper', '--gateway', '--redis', env.redis.url, '--socks', '127.0.0.1:0', '--gateway-vip', SELF]);
  t.is(vip.code, 2);
  t.regex(vip.err, /--gateway-vip is for a mapper without --gateway/);
});

test.serial('isthmus mapper --gateway --api 0.0.0.0: exposure and the lookup API take central proxy users; a wrong password is 401, a revoked user is refused at POST', async (t) => {
  const sockPath = join(dir, 'agent-expose.sock');
  const agent = net.createServer((c) => c.end(JSON.stringify({ vip: SELF, tun: 'isth0', relay: { address: '10.0.0.1:7000', ready: true } }) + '\n'));
  await new Promise<void>((r) => agent.listen(sockPath, r));
  const base = 20_000 + Math.floor(Math.random() * 180) * 64; // below the ephemeral ports (32768-)
  const p = new ManagedProcess(process.execPath, [CLI, 'mapper', '--gateway', '--redis', env.redis.url, '--socks', '127.0.0.1:0', '--api', '0.0.0.0:0',
    '--overlay-cidr', '127.0.0.0/8', '--agent-socket', sockPath, '--expose-range', `${base}-${base + 63}`, '--expose-listen', '127.0.0.1'], { name: 'gateway-expose' });
  const createUser = async (name: string): Promise<string> => {
    const res = await fetch(`${env.urls[0]}/v1/proxy-users`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, tags: ['ops'] }) });
    if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { password: string }).password;
  };
  try {
    const line = await p.waitForLine(/isthmus mapper: api http:\/\/[\d.]+:\d+/, 15_000);
    const [, host, port] = /api http:\/\/([\d.]+):(\d+)/.exec(line)!;
    t.is(host, '0.0.0.0', 'a gateway\'s API may listen beyond loopback: it wants proxy users');
    const api = `http://127.0.0.1:${port}`;
    const basic = (u: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${pass}`).toString('base64')}` });
    const frank = await createUser('frank');
    const grace = await createUser('grace');
    const post = (headers: Record<string, string>) => fetch(`${api}/v1/expose`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ originalIp: ORIG, port: webPort }) });

    // The lookup API: no credentials 401, a wrong password 401, a proxy user 200.
    const anon = await fetch(`${api}/v1/map/${ORIG}`);
    t.is(anon.status, 401);
    t.is((await fetch(`${api}/v1/map/${ORIG}`, { headers: basic('frank', 'wrong-password') })).status, 401);
    const looked = await fetch(`${api}/v1/map/${ORIG}`, { headers: basic('frank', frank) });
    t.is(looked.status, 200);
    t.like(await looked.json(), { originalIp: ORIG, virtualIp: TARGET });

    // Exposure: a wrong password 401 and nothing recorded; the right one 201 and the port forwards to the member.
    const wrong = await post(basic('frank', 'wrong-password'));
    t.is(wrong.status, 401);
    t.like(await wrong.json(), { error: 'unauthorized' });
    t.is(await env.r.exists(`isthmus:expose:${ORIG}:${webPort}`), 0, 'nothing recorded for a wrong password');
    const made = await post(basic('frank', frank));
    const body = (await made.json()) as { gatewayIp: string; gatewayPort: number; gatewayId: string };
    t.is(made.status, 201, JSON.stringify(body));
    t.like(body, { gatewayIp: '127.0.0.1', gatewayId: SELF }, 'the identity is the agent\'s virtual IP, as for the proxy');
    const page = await curl([`http://127.0.0.1:${body.gatewayPort}/exposed`]);
    t.is(page.out, 'hello /exposed\n', page.err);

    // Revoked: refused at POST within a second; grace (same tags) still passes the same check.
    const rv = await fetch(`${env.urls[0]}/v1/proxy-users/frank`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
    t.is(rv.status, 200);
    const t0 = Date.now();
    let status = 0;
    while (Date.now() - t0 < 3000) {
      status = (await post(basic('frank', frank))).status;
      if (status === 401) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    t.is(status, 401, 'the revoked user is refused');
    t.true(Date.now() - t0 < 1000, `refused after ${Date.now() - t0} ms`);
    t.is((await fetch(`${api}/v1/map/${ORIG}`, { headers: basic('frank', frank) })).status, 401, 'and by the lookup API');
    const other = await post(basic('grace', grace));
    t.is(other.status, 200, 'positive control: another user gets the existing exposure');
    t.is((await fetch(`${api}/v1/map/${ORIG}`, { headers: basic('grace', grace) })).status, 200);
    await fetch(`${env.urls[0]}/v1/proxy-users/grace`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
  } finally {
    await p.stop();
    agent.close();
    await env.r.del(`isthmus:expose:${ORIG}:${webPort}`);
  }
});

test.serial('the documented isthmus-mapper ACL user is enough for a gateway: it reads proxy users and the policy, and nothing else', async (t) => {
  const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'SECURITY.md'), 'utf8');
  const line = doc.split('\n').find((l) => l.startsWith('ACL SETUSER isthmus-mapper '))!;
  const redis = await startRedis({ users: [line.slice('ACL SETUSER '.length).replace('>CHANGE-ME-mapper', '>mapper-pw-for-tests')] });
  const seed = new Redis(redis.url);
  const users = new RedisProxyUsers({ redis: { host: '127.0.0.1', port: redis.port, username: 'isthmus-mapper', password: 'mapper-pw-for-tests' } });
  try {
    await seed.hset('isthmus:proxy-user:bob', await env.r.hgetall('isthmus:proxy-user:bob'));
    await seed.set('isthmus:policy', JSON.stringify(POLICY));
    await users.start();
    const t0 = Date.now();
    while (!users.isLive && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    t.true(users.isLive, 'subscribed to events');
    t.deepEqual(await users.verify('bob', pw.bob!), { name: 'bob', tags: ['ops'] });
    t.is(await redisPolicyLoader(users.redis)(), JSON.stringify(POLICY));
    await t.throwsAsync(users.redis.hset('isthmus:proxy-user:bob', 'tags', '["admin"]'), { message: /NOPERM/ }, 'read only');
    await t.throwsAsync(users.redis.get('isthmus:token-ids'), { message: /NOPERM/ });
  } finally {
    await users.close();
    seed.disconnect();
    await redis.stop();
  }
});
