/**
 * Sentinel through ioredis options: a private redis-server plus a private sentinel
 * (`redis-server --sentinel`) watching it; the coordinator is given only the sentinel.
 */
import test from 'ava';
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { startRedis, type RedisHandle } from '../harness/redis';
import { createCoordinator, type Coordinator } from '../../coordinator/server';
import { CoordinatorClient } from '../../coordinator/client';
import { member, ADMIN } from './coordinator-helpers';
import { spawnOwned } from '../harness/procs';

let redis: RedisHandle;
let sentinel: ChildProcess | undefined;
let dir = '';
let coord: Coordinator | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

test.after.always(async () => {
  await coord?.close();
  if (sentinel && sentinel.exitCode === null) {
    const gone = new Promise((r) => sentinel!.once('exit', r));
    sentinel.kill('SIGTERM');
    await gone;
  }
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a coordinator configured with Sentinel options joins members', async (t) => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'isthmus-sentinel-'));
  const port = await freePort();
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor isthmusmaster 127.0.0.1 ${redis.port} 1\n`);
  sentinel = spawnOwned('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => { const s = net.connect(port, '127.0.0.1'); s.once('connect', () => { s.destroy(); r(true); }); s.once('error', () => r(false)); });
    if (up) break;
    if (i > 100) return t.fail('sentinel did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  coord = await createCoordinator({ redis: { sentinels: [{ host: '127.0.0.1', port }], name: 'isthmusmaster' }, adminToken: ADMIN, sweepIntervalMs: 0 });
  const { url } = await coord.listen('127.0.0.1', 0);
  const admin = new CoordinatorClient({ url, insecure: true, adminToken: ADMIN });
  const tok = await admin.createToken({ originalCidrs: ['10.30.0.0/16'] });
  const j = await new CoordinatorClient({ url, insecure: true }).join({ ...member('10.30.0.1'), token: tok.token });
  t.is(j.vip, '100.64.0.1');
  t.is((await admin.listNodes()).length, 1);
});
