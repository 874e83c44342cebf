/**
 * `isthmus node list` filters (issue 14.4), answered by a real coordinator from a real Redis:
 * members join with tagged tokens, two real relays (ids r1, r2) bind some of them and record
 * their sessions, and the real CLI (`node dist/cli/main.js`) asks with --tag, --online,
 * --offline, --relay and --original. Bad values are refused by the coordinator (400 naming the
 * parameter) or by the CLI (the flag named), never answered with an empty list.
 *
 *   a 10.1.0.5 tags agent,web   on r1
 *   b 10.2.0.5 tags agent       on r2
 *   c 10.1.0.9 tags controller  no session (offline)
 */
import test from 'ava';
import Redis from 'ioredis';
import { join } from 'node:path';
import { systemClock } from '../../common/clock';
import { silentLogger } from '../../common/logger';
import { parseAddr } from '../../common/ipv4';
import { DgramSocket } from '../../native-bindings';
import { createRelay, RedisMemberDirectory, RedisSessionRecorder, type Relay } from '../../relay';
import type { NodeView } from '../../coordinator/types';
import { startEnv, member, ADMIN, LAN, type Env } from './coordinator-helpers';
import { startMember, until, type Member } from './relay-harness';
import { spawnOwned } from '../harness/procs';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
let env: Env;
const stops: Array<() => void> = [];
const vips: Record<'a' | 'b' | 'c', string> = { a: '', b: '', c: '' };

async function startRedisRelay(id: string): Promise<{ relay: Relay; port: number }> {
  const redis = new Redis(env.redis.url, { maxRetriesPerRequest: 1 });
  const socket = await DgramSocket.open({ host: '127.0.0.1' });
  const port = socket.localAddress.port;
  const sessionListener = new RedisSessionRecorder(redis, { relayId: id, relayIp: '127.0.0.1', relayPort: port, ttlMs: 30_000, logger: silentLogger() });
  const relay = createRelay({ id, keepaliveSeconds: 1, tickMs: 50, sessionRefreshMs: 500 })({
    logger: silentLogger(), clock: systemClock, socket, directory: new RedisMemberDirectory(redis), sessionListener,
  });
  relay.start();
  stops.push(() => { relay.stop(); socket.close(); redis.disconnect(); });
  return { relay, port };
}

test.before(async () => {
  env = await startEnv(1);
  const tok = async (tags: string[]) => (await env.admin.createToken({ uses: 5, tags, originalCidrs: LAN })).token;
  const agentWeb = await tok(['agent', 'web']);
  const agent = await tok(['agent']);
  const controller = await tok(['controller']);
  const a = member('10.1.0.5', 'a');
  const b = member('10.2.0.5', 'b');
  const c = member('10.1.0.9', 'c');
  vips.a = (await env.client().join({ ...a, token: agentWeb })).vip;
  vips.b = (await env.client().join({ ...b, token: agent })).vip;
  vips.c = (await env.client().join({ ...c, token: controller })).vip;
  const r1 = await startRedisRelay('r1');
  const r2 = await startRedisRelay('r2');
  const bound: Member[] = [];
  for (const [m, vip, port] of [[a, vips.a, r1.port], [b, vips.b, r2.port]] as const) {
    bound.push(await startMember({ kp: { publicKey: m.publicKey, secretKey: m.privateKey }, vip: parseAddr(vip) }, port));
  }
  stops.push(() => { for (const m of bound) m.close(); });
  await until(() => bound.every((m) => m.client.isReady), 'relay sessions');
  // The session records are written by the relays' recorders; wait until both are in Redis.
  const deadline = Date.now() + 5000;
  while ((await env.admin.listNodes()).filter((n) => n.session).length < 2) {
    if (Date.now() > deadline) throw new Error('session records not written');
    await new Promise((r) => setTimeout(r, 50));
  }
});
test.after.always(async () => {
  for (const s of stops.reverse()) s();
  await env?.stop();
});

/** The real CLI, async (the coordinator under test serves from this process). */
function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const e: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ISTHMUS_')) e[k] = v;
    const child = spawnOwned(process.execPath, [CLI, 'node', 'list', '--coordinator', env.urls[0], '--insecure-coordinator', ...args],
      { env: { ...e, ISTHMUS_ADMIN_TOKEN: ADMIN }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += String(d); });
    child.stderr.on('data', (d) => { err += String(d); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

async function listed(args: string[]): Promise<string[]> {
  const r = await cli([...args, '--json']);
  if (r.code !== 0) throw new Error(`node list ${args.join(' ')}: ${r.err}`);
  return (JSON.parse(r.out) as NodeView[]).map((n) => n.hostname).sort();
}

test('no filter lists every member (the positive control for each filter below)', async (t) => {
  t.deepEqual(await listed([]), ['a', 'b', 'c']);
});

test('--tag: every given tag must match', async (t) => {
  t.deepEqual(await listed(['--tag', 'agent']), ['a', 'b']);
  t.deepEqual(await listed(['--tag', 'agent', '--tag', 'web']), ['a']);
  t.deepEqual(await listed(['--tag', 'web', '--tag', 'controller']), []);
  t.deepEqual(await listed(['--tag', 'nosuchtag']), []);
});

test('--online / --offline: a relay session or none', async (t) => {
  t.deepEqual(await listed(['--online']), ['a', 'b']);
  t.deepEqual(await listed(['--offline']), ['c']);
  t.deepEqual(await listed(['--online', '--tag', 'web']), ['a']);
});

test('--relay: by relay id or by the relay address the member sends to', async (t) => {
  t.deepEqual(await listed(['--relay', 'r1']), ['a']);
  t.deepEqual(await listed(['--relay', 'r2']), ['b']);
  t.deepEqual(await listed(['--relay', 'r3']), []);
  const nodes = JSON.parse((await cli(['--json'])).out) as NodeView[];
  const b = nodes.find((n) => n.hostname === 'b')!;
  t.deepEqual(await listed(['--relay', `127.0.0.1:${b.session!.relayPort}`]), ['b']);
  t.deepEqual(await listed(['--relay', '127.0.0.1']), ['a', 'b']);
});

test('--original: a CIDR (or one IP) the original IP lies in', async (t) => {
  t.deepEqual(await listed(['--original', '10.1.0.0/16']), ['a', 'c']);
  t.deepEqual(await listed(['--original', '10.0.0.0/8']), ['a', 'b', 'c']);
  t.deepEqual(await listed(['--original', '10.2.0.5']), ['b']);
  t.deepEqual(await listed(['--original', '10.1.0.0/16', '--offline']), ['c']);
  t.deepEqual(await listed(['--original', '192.168.0.0/16']), []);
});

test('bad filter values: the coordinator answers 400 naming the parameter; the CLI prints it and exits non-zero', async (t) => {
  for (const [args, re] of [
    [['--original', '10.1.0.1/16'], /400 invalid-filter original: host bits set/],
    [['--original', '10.1.0/16'], /400 invalid-filter original: not an IPv4 prefix/],
    [['--original', '300.1.0.0/16'], /400 invalid-filter original:/],
    [['--tag', 'bad tag!'], /400 invalid-filter tag "bad tag!"/],
    [['--relay', 'r1;drop'], /400 invalid-filter relay "r1;drop"/],
  ] as const) {
    const r = await cli([...args]);
    t.is(r.code, 1, `${args.join(' ')}: ${r.out}`);
    t.regex(r.err, re, args.join(' '));
    t.is(r.out, '', 'no list printed');
  }
  const both = await cli(['--online', '--offline']);
  t.is(both.code, 2);
  t.regex(both.err, /--online or --offline, not both/);
  // The API directly: the same reasons, and unknown parameters are refused too.
  const get = async (q: string) => {
    const res = await fetch(`${env.urls[0]}/v1/nodes${q}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    return { status: res.status, body: await res.json() as { error?: string; message?: string; nodes?: NodeView[] } };
  };
  t.is((await get('?online=true')).status, 200, 'positive control');
  t.like(await get('?online=yes'), { status: 400, body: { error: 'invalid-filter', message: 'online: want true or false, got "yes"' } });
  t.like(await get('?online=true&online=false'), { status: 400, body: { error: 'invalid-filter' } });
  t.like(await get('?colour=blue'), { status: 400, body: { error: 'invalid-request' } });
  t.is((await get('?tag=agent&tag=web')).body.nodes?.length, 1, 'repeated tag: all must match');
});
