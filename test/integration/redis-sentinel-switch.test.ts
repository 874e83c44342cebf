/**
 * A planned Sentinel failover moves a daemon's clients at once (common/sentinel-switch.ts):
 * a real master, replica and sentinel on loopback; a client made by connectRedis and its
 * duplicate (a subscriber), beside a plain ioredis Sentinel client as the control.
 *
 * After `SENTINEL FAILOVER`, the old master goes on as a master for seconds (until the sentinel
 * turns it into a replica, which then resyncs and drops what was written to it). Within that
 * window our client writes to the new master and our subscriber hears what the new master
 * publishes — while the plain client is still on the old master and its write lands where it
 * will be thrown away.
 */
import test from 'ava';
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import Redis from 'ioredis';
import { startRedis, type RedisHandle } from '../harness/redis';
import { connectRedis, redisSpecFrom } from '../../common';
import { spawnOwned } from '../harness/procs';

let master: RedisHandle | undefined;
const procs: ChildProcess[] = [];
const clients: Redis[] = [];
let dir = '';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

async function until(what: string, ok: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const direct = (port: number): Redis => {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1 });
  clients.push(r);
  return r;
};
const remotePort = (c: Redis): number | undefined => (c.stream as net.Socket | undefined)?.remotePort;

test.after.always(async () => {
  for (const c of clients) c.disconnect();
  for (const p of procs) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
  }
  await master?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('SENTINEL FAILOVER: connectRedis clients and their subscribers are on the new master at once; a plain client is left on the old one', async (t) => {
  master = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'isthmus-switch-'));
  const replicaPort = await freePort();
  procs.push(spawnOwned('redis-server', ['--port', String(replicaPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
    '--replicaof', '127.0.0.1', String(master.port)], { stdio: 'ignore' }));
  const m = direct(master.port);
  await until('the replica in sync', async () => /slave0:.*state=online/.test(await m.info('replication')), 15_000);
  const sentinelPort = await freePort();
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, [`port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor sw 127.0.0.1 ${master.port} 1`,
    'sentinel down-after-milliseconds sw 1000', 'sentinel failover-timeout sw 10000', ''].join('\n'));
  procs.push(spawnOwned('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }));
  await until('the sentinel', () => new Promise<boolean>((r) => {
    const s = net.connect(sentinelPort, '127.0.0.1');
    s.once('connect', () => { s.destroy(); r(true); });
    s.once('error', () => r(false));
  }), 10_000);
  const sentinel = direct(sentinelPort);
  await until('the sentinel to know the replica', async () =>
    JSON.stringify(await sentinel.call('SENTINEL', 'replicas', 'sw')).includes('"master-link-status","ok"'), 30_000);

  const spec = redisSpecFrom({ sentinels: [`127.0.0.1:${sentinelPort}`], sentinelName: 'sw' });
  const ours = connectRedis(spec);
  const sub = ours.duplicate();
  const plain = new Redis({ sentinels: [{ host: '127.0.0.1', port: sentinelPort }], name: 'sw' });
  clients.push(ours, sub, plain);
  // Reconnect errors are expected here (the daemons log them through watchRedis); keep them quiet.
  for (const c of [ours, sub, plain]) c.on('error', () => {});
  const heard: string[] = [];
  sub.on('message', (_ch: string, msg: string) => heard.push(msg));
  await sub.subscribe('isthmus-switch-test');
  await until('all connected', () => [ours, sub, plain].every((c) => c.status === 'ready'), 10_000);
  // Before: everyone on the master, and a publish there reaches our subscriber (positive control).
  t.deepEqual([ours, sub, plain].map(remotePort), [master.port, master.port, master.port]);
  await m.publish('isthmus-switch-test', 'before');
  await until('the first message', () => heard.includes('before'), 5000);

  await sentinel.call('SENTINEL', 'FAILOVER', 'sw');
  await until('the switch', async () => (await sentinel.call('SENTINEL', 'get-master-addr-by-name', 'sw') as string[])[1] === String(replicaPort), 20_000);
  const switchedAt = Date.now();
  await until('our clients on the new master', () => remotePort(ours) === replicaPort && remotePort(sub) === replicaPort && ours.status === 'ready' && sub.status === 'ready', 5000);
  t.log(`our clients moved ${Date.now() - switchedAt} ms after the switch`);

  const fresh = direct(replicaPort);
  await ours.set('isthmus-switch-test:ours', '1');
  t.is(await fresh.get('isthmus-switch-test:ours'), '1', 'our write is on the new master');
  await fresh.publish('isthmus-switch-test', 'after');
  await until('the message published on the new master', () => heard.includes('after'), 5000);

  // The control, still inside the window: the plain client stays on the old master, which still
  // takes writes that the new master never sees.
  t.is(remotePort(plain), master.port);
  t.regex(String(await m.call('ROLE')), /^master/, 'the old master is still a master');
  await plain.set('isthmus-switch-test:plain', '1');
  t.is(await fresh.get('isthmus-switch-test:plain'), null, 'the plain client wrote into the hole');
  t.true(Date.now() - switchedAt < 6000, 'checked within the window (the sentinel converts the old master after some 8 s)');
});
