/**
 * Redis outages are non-events for the coordinator: the real CLI started while nothing listens
 * on its Redis port stays up (`/healthz` 200, `/readyz` 503, API 503 `redis-unavailable` +
 * Retry-After), logs "redis unreachable, retrying" once (not once per retry), and once a
 * redis-server starts on that port becomes ready and issues a challenge; Redis stopped and
 * started again gives one more "unreachable" and one "reachable again" line. The same for the
 * mapper (lookups 503 while down, answered once up).
 */
import test, { type ExecutionContext } from 'ava';
import net from 'node:net';
import { join } from 'node:path';
import Redis from 'ioredis';
import { redisKeys } from '../../common';
import { startRedis, type RedisHandle } from '../harness/redis';
import { until } from './relay-harness';
import { spawnOwned } from '../harness/procs';

async function untilAsync(cond: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!await cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const root = join(__dirname, '..', '..');
const CLI = join(root, 'dist', 'cli', 'main.js');

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function cleanEnv(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ISTHMUS_')) e[k] = v;
  return e;
}

function lines(stderr: string): Array<Record<string, unknown>> {
  return stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** One daemon of the real CLI, started with Redis down; ended (by PID) with the test, and its Redis too. */
async function startDaemon(t: ExecutionContext, args: string[]) {
  const child = spawnOwned(process.execPath, [CLI, ...args, '--metrics', '127.0.0.1:0'], { cwd: root, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  const d = { child, stderr: '', redis: undefined as RedisHandle | undefined, metrics: '',
    count: (msg: string) => lines(d.stderr).filter((o) => o.msg === msg).length };
  child.stderr!.on('data', (b: Buffer) => { d.stderr += b.toString(); });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await d.redis?.stop();
  });
  await until(() => d.stderr.includes('"msg":"metrics listening"') || child.exitCode !== null, 'metrics listening', 20_000)
    .catch((e: Error) => { throw new Error(`${e.message}\n${d.stderr}`); });
  t.is(child.exitCode, null, d.stderr);
  d.metrics = lines(d.stderr).find((o) => o.msg === 'metrics listening')!.metrics as string;
  return d;
}

test('coordinator: starts with Redis down, answers 503, becomes ready when Redis comes up, one log line per change', async (t) => {
  const redisPort = await freePort();
  const listenPort = await freePort();
  const d = await startDaemon(t, ['coordinator', '--redis', `redis://127.0.0.1:${redisPort}`, '--listen', `127.0.0.1:${listenPort}`, '--redis-prefix', `isthmus-outage-${process.pid}:`]);
  const { child, metrics, count } = d;
  const api = `http://127.0.0.1:${listenPort}`;
  await until(() => d.stderr.includes('coordinator listening'), 'coordinator listening', 10_000);

  // Down: health yes, ready no, API 503 with a reason and Retry-After; several retries, one line.
  await new Promise((r) => setTimeout(r, 2000));
  t.is(child.exitCode, null, 'still running with Redis down');
  t.is((await fetch(`${metrics}/healthz`)).status, 200);
  t.is((await fetch(`${metrics}/readyz`)).status, 503);
  const down = await fetch(`${api}/v1/challenge`);
  t.is(down.status, 503);
  t.truthy(down.headers.get('retry-after'));
  t.is(((await down.json()) as { error: string }).error, 'redis-unavailable');
  t.is(count('redis unreachable, retrying'), 1, d.stderr);
  t.false(/\n\s+at /.test(d.stderr), 'no stack traces');

  // Up: ready within a bounded wait, and it works.
  d.redis = await startRedis({ port: redisPort });
  await untilAsync(async () => (await fetch(`${metrics}/readyz`)).status === 200, 'readyz 200', 15_000);
  const ok = await fetch(`${api}/v1/challenge`);
  t.is(ok.status, 200);
  t.is(typeof ((await ok.json()) as { ephemeralPublic?: unknown }).ephemeralPublic, 'string', 'a real challenge');
  t.is(count('redis reachable again'), 1, d.stderr);

  // Down again and up again: one more line each way, still no exit.
  await d.redis!.stop();
  d.redis = undefined;
  await untilAsync(async () => (await fetch(`${metrics}/readyz`)).status === 503, 'readyz 503 again', 15_000);
  t.is((await fetch(`${api}/v1/challenge`)).status, 503);
  await new Promise((r) => setTimeout(r, 1500));
  t.is(count('redis unreachable, retrying'), 2, d.stderr);
  d.redis = await startRedis({ port: redisPort });
  await untilAsync(async () => (await fetch(`${metrics}/readyz`)).status === 200, 'readyz 200 again', 15_000);
  t.is((await fetch(`${api}/v1/challenge`)).status, 200);
  t.is(count('redis reachable again'), 2, d.stderr);
  t.is(child.exitCode, null);
  t.false(/\n\s+at /.test(d.stderr), `no stack traces:\n${d.stderr}`);
});

test('mapper: starts with Redis down, lookups 503, answers once Redis comes up, one log line per change', async (t) => {
  const redisPort = await freePort();
  const apiPort = await freePort();
  const d = await startDaemon(t, ['mapper', '--redis', `redis://127.0.0.1:${redisPort}`, '--api', `127.0.0.1:${apiPort}`, '--redis-prefix', `isthmus-outage-m-${process.pid}:`]);
  const { child, metrics, count } = d;
  const api = `http://127.0.0.1:${apiPort}`;

  await new Promise((r) => setTimeout(r, 2000));
  t.is(child.exitCode, null, 'still running with Redis down');
  t.is((await fetch(`${metrics}/healthz`)).status, 200);
  t.is((await fetch(`${metrics}/readyz`)).status, 503);
  t.is((await fetch(`${api}/v1/map/10.9.8.7`)).status, 503);
  t.is(count('redis unreachable, retrying'), 1, d.stderr);

  d.redis = await startRedis({ port: redisPort });
  await untilAsync(async () => (await fetch(`${metrics}/readyz`)).status === 200, 'readyz 200', 15_000);
  const r = await fetch(`${api}/v1/map/10.9.8.7`);
  t.is(r.status, 404, 'answered from Redis: no such member');
  t.is(((await r.json()) as { error: string }).error, 'unknown-original-ip');
  t.is(count('redis reachable again'), 1, d.stderr);
  t.is(child.exitCode, null);
  t.false(/\n\s+at /.test(d.stderr), `no stack traces:\n${d.stderr}`);
});

test('relay: starts with Redis down (readyz 503), finishes its setup (mesh key, registration) and turns ready when Redis comes up', async (t) => {
  const redisPort = await freePort();
  const prefix = `isthmus-outage-r-${process.pid}:`;
  const d = await startDaemon(t, ['relay', '--listen', '127.0.0.1:0', '--redis', `redis://127.0.0.1:${redisPort}`,
    '--redis-prefix', prefix, '--id', 'outage-relay', '--mesh', '127.0.0.1:0']);
  const { child, metrics, count } = d;

  await new Promise((r) => setTimeout(r, 2000));
  t.is(child.exitCode, null, 'still running with Redis down');
  t.is((await fetch(`${metrics}/healthz`)).status, 200);
  const notReady = await fetch(`${metrics}/readyz`);
  t.is(notReady.status, 503);
  t.false(((await notReady.json()) as { checks: Record<string, boolean> }).checks.setup);
  t.is(count('relay ready'), 0);
  t.is(count('redis unreachable, retrying'), 1, d.stderr);

  d.redis = await startRedis({ port: redisPort });
  await untilAsync(async () => (await fetch(`${metrics}/readyz`)).status === 200, 'readyz 200', 15_000);
  t.is(count('relay ready'), 1, d.stderr);
  t.is(count('redis reachable again'), 1, d.stderr);
  // its metrics are there once it is set up
  t.regex(await (await fetch(`${metrics}/metrics`)).text(), /isthmus_relay_received_frames_total/);
  // it registered itself in Redis (its mesh record, with the mesh key it created there)
  const client = new Redis(d.redis.url, { lazyConnect: true });
  t.teardown(() => client.disconnect());
  await client.connect();
  const keys = redisKeys(prefix);
  await untilAsync(async () => (await client.exists(keys.relay('outage-relay'))) === 1, 'relay record in Redis', 5000);
  t.is(await client.exists(keys.meshKey), 1, 'the mesh key it created once Redis answered');
  t.is(child.exitCode, null);
  t.false(/\n\s+at /.test(d.stderr), `no stack traces:\n${d.stderr}`);
});
