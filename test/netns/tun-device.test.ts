/**
 * Root-only: the native TUN device in a real network namespace.
 *
 *   netns itn1XXXXXX
 *   ┌──────────────────────────────────────────────────────────────┐
 *   │  ping / dgram 10.77.0.1 ──route 10.77.0.0/24──> itn1tXXXX (TUN)│
 *   │                                                   │   ▲        │
 *   │                         tun-echo-child.ts: read batch, write   │
 *   │                         ICMP echo replies / UDP echoes back    │
 *   └──────────────────────────────────────────────────────────────┘
 *
 * A TUN belongs to the namespace of the process that creates it, so the device work
 * runs in a child (`ip netns exec NS node --import=tsx native-bindings/tools/tun-echo-child.ts`)
 * that prints JSON lines. The namespace is removed in after.always, also on failure.
 */
import test from 'ava';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { forRoot } from '../harness/root';
import { spawnOwned } from '../harness/procs';

const ROOT = join(__dirname, '..', '..');
const CHILD = join(ROOT, 'native-bindings', 'tools', 'tun-echo-child.ts');
const SUFFIX = randomBytes(3).toString('hex');
const NS = `itn1${SUFFIX}`;
const TUN = `itn1t${SUFFIX}`;

const t = forRoot(test, __filename, { tools: ['ip', 'ping', 'setpriv', 'ethtool'], why: 'creates a netns and a TUN device' });

const children = new Set<ChildProcess>();

/** Runs the child in the namespace; resolves each JSON line through `onLine`. */
function runChild(args: string[], prefix: string[] = []): { lines: Promise<unknown[]>; ready: Promise<void> } {
  const cp = spawnOwned('ip', ['netns', 'exec', NS, ...prefix, process.execPath, '--import=tsx', CHILD, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(cp);
  let buf = '';
  let stderr = '';
  const lines: unknown[] = [];
  let onReady: () => void = () => {};
  const ready = new Promise<void>((r) => (onReady = r));
  cp.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const o = JSON.parse(buf.slice(0, nl)) as { ready?: boolean };
      buf = buf.slice(nl + 1);
      lines.push(o);
      if (o.ready) onReady();
    }
  });
  cp.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<unknown[]>((resolve, reject) => {
    cp.on('exit', (code) => {
      children.delete(cp);
      if (code === 0) resolve(lines);
      else reject(new Error(`child exited ${code}: ${stderr}`));
    });
  });
  done.catch(() => onReady());
  return { lines: done, ready };
}

function inNs(cmd: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const cp = spawnOwned('ip', ['netns', 'exec', NS, ...cmd], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(cp);
    let stdout = '';
    cp.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    cp.on('exit', (code) => {
      children.delete(cp);
      resolve({ code, stdout });
    });
  });
}

test.before(() => {
  const r = spawnSync('ip', ['netns', 'add', NS], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip netns add ${NS}: ${r.stderr}`);
});

test.after.always(() => {
  for (const cp of children) if (cp.pid) process.kill(cp.pid, 'SIGKILL');
  spawnSync('ip', ['netns', 'del', NS]);
});

interface Pkt { len: number; version: number; totalLength: number; proto: number; type: number; src: string; dst: string; offsetOk: boolean }
interface EchoResult {
  done: boolean; reason: string; name: string; mtu: number; headroom: number; replied: number;
  udpSizes: number[]; udpEchoes: number[]; packets: Pkt[]; batchCounts: number[]; goneAfterClose: boolean;
  stats: { readPackets: number; readBatches: number; writePackets: number; writeDrops: number };
  link: { mtu: number; flags: string[]; addr_info: { family: string; local: string; prefixlen: number }[] }[];
}

t('ping through the TUN: batched reads, echo replies written back, device gone on close', async (tt) => {
  const child = runChild(['echo', TUN, '10.77.0.1/24', '3']);
  await child.ready;
  const ping = await inNs(['ping', '-c', '3', '-i', '0.2', '-W', '1', '10.77.0.2']);
  const lines = await child.lines;
  const r = lines.find((l) => (l as EchoResult).done) as EchoResult;
  tt.truthy(r, JSON.stringify(lines));

  tt.is(ping.code, 0, ping.stdout);
  tt.regex(ping.stdout, /3 packets transmitted, 3 received/);
  tt.is(r.reason, 'count');
  tt.is(r.name, TUN);

  // Interface configuration as the kernel sees it.
  const link = r.link[0]!;
  tt.is(link.mtu, 1420);
  tt.true(link.flags.includes('UP'));
  tt.deepEqual(link.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), ['10.77.0.1/24']);

  // Every packet is a well-formed IP packet at slot start + headroom.
  tt.true(r.packets.every((p) => p.offsetOk));
  const v4 = r.packets.filter((p) => p.version === 4);
  tt.true(v4.every((p) => p.totalLength === p.len && p.src === '10.77.0.1' && p.dst === '10.77.0.2'));

  // The UDP datagrams queued before polling started came up as one batch.
  const udp = v4.filter((p) => p.proto === 17).map((p) => p.len);
  tt.deepEqual(udp, r.udpSizes.map((s) => s + 28));
  tt.true(r.batchCounts[0]! >= r.udpSizes.length, `first batch ${r.batchCounts[0]}`);
  tt.true(r.batchCounts.every((c) => c >= 1 && c <= 16));
  tt.deepEqual(r.udpEchoes, r.udpSizes, 'UDP echoes written in one flush arrived');

  const icmp = v4.filter((p) => p.proto === 1 && p.type === 8);
  tt.is(icmp.length, 3);
  tt.true(icmp.every((p) => p.len === 84));

  tt.is(r.stats.readPackets, r.packets.length);
  tt.is(r.stats.readBatches, r.batchCounts.length);
  tt.is(r.stats.writePackets, 3 + r.udpSizes.length);
  tt.is(r.stats.writeDrops, 0);
  tt.true(r.goneAfterClose, 'interface removed when the fd closed');
  const after = await inNs(['ip', '-o', 'link', 'show']);
  tt.false(after.stdout.includes(TUN));
});

t('bad options, a taken name and kernel-chosen names', async (tt) => {
  const prefix = `itn1e${SUFFIX.slice(0, 4)}`;
  const [r] = (await runChild(['errors', prefix]).lines) as {
    errors: Record<string, { code?: string; name?: string; message?: string }>;
    patternName: string; patternMtu1280: boolean; leftovers: number;
    offload: { defaultOn: boolean; defaultTso: boolean; offOn: boolean; offTso: boolean };
  }[];
  tt.like(r!.errors.badAddress, { code: 'EINVAL', name: 'InvalidOptionError' });
  tt.like(r!.errors.badAddress2, { code: 'EINVAL', name: 'InvalidOptionError' });
  tt.like(r!.errors.longName, { code: 'EINVAL' });
  tt.like(r!.errors.badMtu, { code: 'EINVAL' });
  tt.like(r!.errors.busy, { code: 'EBUSY', name: 'NativeIoError' });
  tt.is(r!.patternName, `${prefix}0`);
  tt.true(r!.patternMtu1280);
  tt.is(r!.leftovers, 0, 'no interface left after close()');
  tt.deepEqual(r!.offload, { defaultOn: true, defaultTso: true, offOn: false, offTso: false }, 'TUN offloads: on by default, off with offload: false');
});

t('without CAP_NET_ADMIN: EPERM/EACCES with a message that says what to do', async (tt) => {
  const [r] = (await runChild(['eperm'], [
    'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
  ]).lines) as { code?: string; name?: string; message?: string }[];
  tt.true(r!.code === 'EPERM' || r!.code === 'EACCES', JSON.stringify(r));
  tt.is(r!.name, 'NativeIoError');
  tt.is(r!.message, 'creating a TUN device needs CAP_NET_ADMIN: run as root');
});
