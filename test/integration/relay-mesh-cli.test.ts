/**
 * `isthmus relay --mesh ...`: flag validation, and two relay processes meshed through a real
 * Redis registering themselves (P:relay:<id>) with the key from a file.
 */
import test from 'ava';
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Redis from 'ioredis';
import yargs from 'yargs';
import { relayCommand } from '../../cli/commands/relay';
import { startRedis } from '../harness/redis';
import { until } from './relay-harness';
import { spawnOwned } from '../harness/procs';

const root = resolve(__dirname, '../..');

async function parseFailure(argv: string[]): Promise<string> {
  try {
    await yargs(argv).command(relayCommand).fail((m, e) => { throw e ?? new Error(m); }).exitProcess(false).parseAsync();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('parsed without failure');
}

test('mesh flag validation messages', async (t) => {
  const base = ['relay', '--listen', '127.0.0.1:1'];
  t.regex(await parseFailure([...base, '--members', 'm', '--mesh', '127.0.0.1:2']), /--mesh needs --redis/);
  t.regex(await parseFailure([...base, '--redis', 'redis://x', '--mesh', '127.0.0.1:2']), /--mesh needs --id/);
  t.regex(await parseFailure([...base, '--redis', 'redis://x', '--id', 'a', '--mesh', 'x']), /^--mesh must be HOST:PORT/);
  t.regex(await parseFailure([...base, '--redis', 'redis://x', '--id', 'a', '--mesh', '0.0.0.0:2']), /--mesh-advertise/);
  t.regex(await parseFailure([...base, '--redis', 'redis://x', '--mesh-key', 'k']), /need --mesh/);
  t.regex(await parseFailure([...base, '--redis', 'redis://x', '--session-refresh', '0']), /--session-refresh/);
  t.regex(await parseFailure([...base, '--redis', 'redis://x', '--mesh-route-cache', '0']), /--mesh-route-cache must be a whole number/);
  t.regex(await parseFailure([...base, '--redis', 'redis://x', '--mesh-route-cache', '1.5']), /--mesh-route-cache must be a whole number/);
});

test('relays started with --mesh register in Redis and leave on SIGTERM; the key never reaches the log', async (t) => {
  const server = await startRedis();
  const redis = new Redis(server.url);
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-mesh-cli-'));
  const secret = 'mesh-secret-' + 'x'.repeat(40);
  writeFileSync(join(dir, 'key'), secret);
  const procs: { p: ChildProcess; out: string }[] = [];
  t.teardown(async () => {
    for (const x of procs) if (x.p.exitCode === null) x.p.kill('SIGKILL');
    redis.disconnect();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const id of ['c1', 'c2']) {
    const p = spawnOwned(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), 'relay', '--id', id, '--listen', '127.0.0.1:0',
      '--redis', server.url, '--redis-prefix', 'mcli:', '--mesh', '127.0.0.1:0', '--mesh-key', join(dir, 'key')],
    { cwd: root, env: { ...process.env, ISTHMUS_LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const x = { p, out: '' };
    p.stdout!.on('data', (d) => { x.out += d; });
    p.stderr!.on('data', (d) => { x.out += d; });
    procs.push(x);
  }
  await until(() => procs.every((x) => x.out.includes('relay ready')), 'relays ready', 20_000);
  for (const id of ['c1', 'c2']) {
    const r = await redis.hgetall(`mcli:relay:${id}`);
    t.is(r.meshIp, '127.0.0.1');
    t.true(Number(r.meshPort) > 0, 'the bound mesh port is advertised');
    t.true((await redis.pttl(`mcli:relay:${id}`)) > 0);
  }
  // Mesh routes, policy and member removals (no --members: the Redis directory) share one
  // subscriber connection per relay.
  t.deepEqual(await redis.pubsub('NUMSUB', 'mcli:events'), ['mcli:events', 2], 'one P:events subscriber per relay');
  procs[0].p.kill('SIGTERM');
  await until(() => procs[0].p.exitCode !== null, 'c1 exit', 10_000);
  t.is(await redis.exists('mcli:relay:c1'), 0, 'c1 left the registry');
  t.is(await redis.exists('mcli:relay:c2'), 1);
  for (const x of procs) t.false(x.out.includes(secret), 'mesh secret in the log');
});
