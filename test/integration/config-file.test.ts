/**
 * Settings files for the daemons, through the real CLI (`node dist/cli/main.js`) and a real
 * redis-server: a YAML --config drives the relay, coordinator and mapper (the agent: config-file-agent
 * netns test); flags beat the environment, which beats the file; an unknown key or an inline
 * secret is refused naming the key and the file; SIGHUP applies a new log level (debug lines
 * appear only after it) and new coordinator rate limits (429 before, 200 after), and names
 * what needs a restart; renamed flags still work and warn; --help shows each flag's variable.
 */
import test, { type ExecutionContext } from 'ava';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { startRedis, type RedisHandle } from '../harness/redis';
import { DgramSocket } from '../../native-bindings';
import { spawnOwned } from '../harness/procs';

const root = join(__dirname, '..', '..');
const CLI = join(root, 'dist', 'cli', 'main.js');

let redis: RedisHandle;
let dir: string;
test.before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'isthmus-config-'));
});
test.after.always(async () => {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ISTHMUS_')) e[k] = v;
  return { ...e, ...extra };
}

async function freeTcpPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function freeUdpPort(): Promise<number> {
  const s = await DgramSocket.open({ host: '127.0.0.1' });
  const port = s.localAddress.port;
  s.close();
  return port;
}

type Line = Record<string, unknown>;

interface Daemon {
  child: ChildProcess;
  stderr: string;
  stdout: string;
  lines(): Line[];
  /** Resolves with the first log line (after `from` lines) whose msg matches. */
  waitFor(msg: RegExp, from?: number, timeoutMs?: number): Promise<Line>;
}

/** A daemon of the real CLI; ended by its PID when the test ends (also on failure). */
function startDaemon(t: ExecutionContext, args: string[], env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawnOwned(process.execPath, [CLI, ...args], { cwd: root, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const d: Daemon = {
    child, stderr: '', stdout: '',
    lines: () => d.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line),
    async waitFor(msg, from = 0, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const hit = d.lines().slice(from).find((l) => msg.test(String(l.msg)));
        if (hit) return hit;
        if (child.exitCode !== null || Date.now() > end) throw new Error(`no log line ${msg} (exit ${child.exitCode}):\n${d.stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
  child.stderr!.on('data', (b: Buffer) => { d.stderr += b.toString(); });
  child.stdout!.on('data', (b: Buffer) => { d.stdout += b.toString(); });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return d;
}

/** SIGHUP, then the reload's own log line. */
async function hangUp(d: Daemon): Promise<Line> {
  const from = d.lines().length;
  d.child.kill('SIGHUP');
  return d.waitFor(/^SIGHUP: reloaded/, from);
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: root, env: cleanEnv(env), encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function membersFile(name: string): string {
  const f = join(dir, name);
  // One member: the relay needs a directory; nobody connects in these tests.
  writeFileSync(f, `${Buffer.alloc(32, 7).toString('base64')} 100.64.0.7\n`);
  return f;
}

test('relay: the file sets --listen; the environment beats the file; a flag beats both', async (t) => {
  const members = membersFile('members-a');
  const [p1, p2, p3] = [await freeUdpPort(), await freeUdpPort(), await freeUdpPort()];
  const file = join(dir, 'relay-a.yaml');
  writeFileSync(file, `# relay settings\nlisten: 127.0.0.1:${p1}\nmembers: ${members}\nkeepalive: 7s\nstats-interval: 0s\n`);
  const started = async (d: Daemon) => (await d.waitFor(/^relay started$/));

  const fromFile = await started(startDaemon(t, ['relay', '--config', file]));
  t.is(fromFile.udpAddr, `127.0.0.1:${p1}`, 'listen from the file');
  t.is(fromFile.keepaliveSeconds, 7, 'keepalive 7s from the file');

  const fromEnv = await started(startDaemon(t, ['relay', '--config', file], { ISTHMUS_LISTEN: `127.0.0.1:${p2}` }));
  t.is(fromEnv.udpAddr, `127.0.0.1:${p2}`, 'ISTHMUS_LISTEN over the file');
  t.is(fromEnv.keepaliveSeconds, 7, 'the rest still from the file');

  const fromFlag = await started(startDaemon(t, ['relay', '--config', file, '--listen', `127.0.0.1:${p3}`, '--keepalive', '3s'], { ISTHMUS_LISTEN: `127.0.0.1:${p2}` }));
  t.is(fromFlag.udpAddr, `127.0.0.1:${p3}`, '--listen over ISTHMUS_LISTEN and the file');
  t.is(fromFlag.keepaliveSeconds, 3);
});

test('relay: SIGHUP applies log-level from the file (debug lines appear only then) and names what needs a restart', async (t) => {
  const members = membersFile('members-b');
  const port = await freeUdpPort();
  const file = join(dir, 'relay-b.yaml');
  const settings = (level: string, listenPort: number) => `listen: 127.0.0.1:${listenPort}\nmembers: ${members}\nstats-interval: 0s\nlog-level: ${level}\n`;
  writeFileSync(file, settings('info', port));
  const d = startDaemon(t, ['relay', '--config', file]);
  await d.waitFor(/^relay ready$/);

  // Control: the same signal with the file unchanged reloads nothing and logs no debug line.
  const same = await hangUp(d);
  t.deepEqual(same.reloaded, {});
  await new Promise((r) => setTimeout(r, 200));
  t.false(d.lines().some((l) => l.level === 20), 'no debug line at info');

  writeFileSync(file, settings('debug', port + 1));
  const from = d.lines().length;
  const changed = await hangUp(d);
  t.deepEqual(changed.reloaded, { 'log-level': 'debug' });
  const restart = d.lines().slice(from).find((l) => l.key === 'listen');
  t.truthy(restart, d.stderr);
  t.is(restart!.msg, `listen changed in ${file}; restart to apply`);
  const debug = await d.waitFor(/^settings in force$/, from);
  t.is(debug.level, 20, 'a debug line, now that the level is debug');
  t.deepEqual((debug.settings as Record<string, unknown>)['log-level'], { value: 'debug', from: 'file' });

  // A broken file on SIGHUP: an error line, the daemon keeps running with what it has.
  writeFileSync(file, 'listen: [1\n');
  const before = d.lines().length;
  d.child.kill('SIGHUP');
  const failed = await d.waitFor(/reload failed/, before);
  t.regex(String(failed.err), /not YAML/);
  t.is(d.child.exitCode, null, 'still running');
});

test('coordinator: YAML file (redis, prefix, limits, secret from a file); SIGHUP changes rate limits and log level live', async (t) => {
  const port = await freeTcpPort();
  const prefix = `cfgtest${process.pid}:`;
  const tokenFile = join(dir, 'admin-token');
  writeFileSync(tokenFile, 'a-long-admin-token-for-tests\n', { mode: 0o600 });
  const file = join(dir, 'coordinator.yaml');
  const settings = (challenges: number, level: string) => [
    `listen: 127.0.0.1:${port}`, `redis: ${redis.url}`, `redis-prefix: "${prefix}"`, `admin-token-file: ${tokenFile}`,
    `rate-limit-challenge: ${challenges}`, `log-level: ${level}`, 'quarantine: 2h', '',
  ].join('\n');
  writeFileSync(file, settings(2, 'info'));
  const d = startDaemon(t, ['coordinator', '--config', file]);
  await d.waitFor(/^coordinator listening$/);
  const api = `http://127.0.0.1:${port}`;
  const challenge = async () => (await fetch(`${api}/v1/challenge`)).status;

  const r = new Redis(redis.url);
  t.teardown(() => r.quit());
  t.truthy(await r.get(`${prefix}ipam:cidr`), 'the prefix from the file is used');
  t.deepEqual([await challenge(), await challenge(), await challenge()], [200, 200, 429], 'rate-limit-challenge: 2 from the file');
  t.false(d.lines().some((l) => l.msg === 'request'), 'no debug request lines at info');

  writeFileSync(file, settings(100, 'debug'));
  const reloaded = await hangUp(d);
  t.deepEqual(reloaded.reloaded, { 'log-level': 'debug', 'rate-limit-challenge': 100 });
  const from = d.lines().length;
  t.is(await challenge(), 200, 'the new limit applies at once, in the same window');
  const line = await d.waitFor(/^request$/, from);
  t.like(line, { level: 20, route: '/v1/challenge', status: 200 });
  t.false(d.stderr.includes('a-long-admin-token-for-tests'), 'the admin token is never logged');
});

test('mapper: the file sets its API address and Redis prefix', async (t) => {
  const port = await freeTcpPort();
  const prefix = `cfgmap${process.pid}:`;
  const r = new Redis(redis.url);
  t.teardown(() => r.quit());
  const file = join(dir, 'mapper.yaml');
  writeFileSync(file, `redis: ${redis.url}\nredis-prefix: "${prefix}"\napi: 127.0.0.1:${port}\n`);
  const d = startDaemon(t, ['mapper', '--config', file]);
  await d.waitFor(/^mapper running$/);
  t.regex(d.stdout, new RegExp(`api http://127\\.0\\.0\\.1:${port}`));
  const res = await fetch(`http://127.0.0.1:${port}/v1/map/10.9.8.7`);
  t.is(res.status, 404, 'the lookup API answers on the port from the file (nothing mapped)');
});

test('unknown keys, inline secrets and bad values in a file are refused, naming the key and the file', (t) => {
  const file = join(dir, 'bad.yaml');
  for (const daemon of ['agent', 'relay', 'coordinator', 'mapper']) {
    writeFileSync(file, 'log-level: info\nlisen: 0.0.0.0:1\n');
    const r = cli([daemon, '--config', file]);
    t.is(r.code, 2, `${daemon}: ${r.err}`);
    t.regex(r.err, new RegExp(`--config ${file}: unknown key "lisen"`), daemon);
  }
  writeFileSync(file, `redis: ${redis.url}\nadmin-token: a-long-admin-token-for-tests\n`);
  const secret = cli(['coordinator', '--config', file]);
  t.is(secret.code, 2);
  t.regex(secret.err, /"admin-token" is a secret: .*admin-token-file/);
  t.false(secret.err.includes('a-long-admin-token-for-tests'));
  writeFileSync(file, `redis:\n  sentinels: [{ host: 127.0.0.1, port: 1 }]\n  name: m\n  password: hunter2hunter2\n`);
  const inObject = cli(['coordinator', '--config', file]);
  t.is(inObject.code, 2);
  t.regex(inObject.err, /redis-password-file/);
  writeFileSync(file, 'listen: 127.0.0.1:1\nmembers: /nonexistent\nkeepalive: soon\n');
  const bad = cli(['relay', '--config', file]);
  t.is(bad.code, 2);
  t.regex(bad.err, /--keepalive must be a duration/);
  writeFileSync(file, 'log-level: loud\n');
  const level = cli(['relay', '--config', file]);
  t.regex(level.err, /log-level must be one of trace, debug, info, warn, error/);
  // Positive control: the same file with a known key gets past the file to the flags' checks.
  writeFileSync(file, 'log-level: debug\n');
  const ok = cli(['relay', '--config', file]);
  t.is(ok.code, 2);
  t.regex(ok.err, /Missing --listen/);
});

test('renamed flags still work for one release, with a warning naming the new one', async (t) => {
  const port = await freeTcpPort();
  const prefix = `cfgold${process.pid}:`;
  const d = startDaemon(t, ['coordinator', '--redis', redis.url, '--listen', `127.0.0.1:${port}`, '--prefix', prefix]);
  await d.waitFor(/^coordinator listening$/);
  t.regex(d.stderr, /isthmus: warning: --prefix is deprecated: use --redis-prefix/);
  const r = new Redis(redis.url);
  t.teardown(() => r.quit());
  t.truthy(await r.get(`${prefix}ipam:cidr`), 'the old flag still sets the prefix');
  // The new name: no warning. And a bare number where a duration is wanted: read in the old unit, with a warning.
  const members = membersFile('members-c');
  const relay = startDaemon(t, ['relay', '--listen', '127.0.0.1:0', '--members', members, '--keepalive', '4', '--redis-prefix', prefix]);
  const started = await relay.waitFor(/^relay started$/);
  t.is(started.keepaliveSeconds, 4);
  t.regex(relay.stderr, /warning: --keepalive 4: a number without a unit is read as seconds \(deprecated\): write 4s/);
  t.notRegex(relay.stderr, /deprecated: use/);
});

test('--help shows the environment variable of every flag, subcommands too', (t) => {
  for (const [args, want] of [[['relay'], ['ISTHMUS_LISTEN', 'ISTHMUS_CONFIG', 'ISTHMUS_REDIS_PREFIX', 'ISTHMUS_LOG_LEVEL']],
    [['coordinator'], ['ISTHMUS_RATE_LIMIT_JOIN', 'ISTHMUS_ADMIN_TOKEN_FILE']], [['agent'], ['ISTHMUS_PEERS', 'ISTHMUS_RELAY_KEEPALIVE']],
    [['mapper'], ['ISTHMUS_API']], [['token', 'create'], ['ISTHMUS_TTL', 'ISTHMUS_COORDINATOR']]] as const) {
    const r = cli([...args, '--help']);
    t.is(r.code, 0);
    const help = r.out.replace(/\s+/g, ' ');
    for (const name of want) t.true(help.includes(`[env: ${name}]`), `${args.join(' ')} --help: ${name}`);
    // Every shown flag (a line starting with --x) has one.
    const flags = [...r.out.matchAll(/^\s+(?:-\w, )?--([a-z][a-z0-9-]*)/gm)].map((m) => m[1]).filter((f) => f !== 'help' && f !== 'version');
    t.true(flags.length > 2);
    for (const f of flags) t.true(help.includes(`[env: ISTHMUS_${f.toUpperCase().replace(/-/g, '_')}]`), `${args.join(' ')} --${f}`);
  }
  t.false(cli(['coordinator', '--help']).out.includes('--prefix '), 'hidden deprecated names stay out of --help');
});
