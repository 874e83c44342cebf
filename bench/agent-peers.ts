/**
 * An agent whose directory holds N peers (a controller's case: it may talk to everyone): what
 * does a peer cost while idle, how long does applying one peer-map change take, and what does
 * the idle agent burn? In process, one real `Agent` with a fake TUN and socket (no traffic:
 * every peer stays a directory record), real clock and timers.
 *
 *   npm run bench:agent-peers   (or: node --expose-gc dist/bench/agent-peers.js [--peers 1000,10000,100000])
 *
 * Per N:
 *   agentRssMbPerPeer   (RSS after the N upserts − RSS before) / N, after a full GC; heap per peer too
 *   agentLoadMs         time to upsert all N peers (the first map)
 *   agentApplyDeltaMs   median of 50 applications of one change at N peers: an upsert of a new
 *                       peer, a removal, a tag change (a known peer's entry with other inbound
 *                       ports), through Agent.upsertPeer / removePeer as the membership client calls them
 *   idleCpuMsPerSec     process CPU over 5 s of the started, idle agent (its timer tick)
 * Each N runs in a fresh child process, so one N's garbage does not inflate the next.
 * First, X25519 per operation (process CPU time, so other load on the machine does not count):
 * tweetnacl against node:crypto (protocol/x25519.ts), DH and public-key derivation.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { silentLogger, systemClock, type DatagramBatch, type DatagramSocket, type PacketBatch, type TunDevice, parsePrefix } from '../common';
import { Agent, DEVICE_HEADROOM, Endpoint } from '../node-agent';
import { PortSet, parsePortSpec } from '../policy';
import { X25519_IMPLEMENTATION, tweetnaclX25519, x25519 as scalarMult, x25519Base as scalarMultBase } from '../protocol';

interface Result {
  peers: number;
  agentRssMbPerPeer: number;
  agentHeapMbPerPeer: number;
  agentLoadMs: number;
  agentApplyDeltaMs: { upsertNew: number; remove: number; tagChange: number };
  idleCpuMsPerSec: number;
}

class NullSocket implements DatagramSocket {
  readonly localAddress = { ip: '127.0.0.1', port: 40000 };
  onReceive(_h: (b: DatagramBatch) => void): void {}
  send(): void {}
  sendInPlace(): void {}
  flush(): void {}
  close(): void {}
}

class NullTun implements TunDevice {
  readonly name = 'bench0';
  readonly mtu = 1420;
  readonly headroom = DEVICE_HEADROOM;
  onReceive(_h: (b: PacketBatch) => void): void {}
  write(): void {}
  writeInPlace(): void {}
  flush(): void {}
  close(): void {}
}

const gc = (globalThis as { gc?: () => void }).gc;
function settle(): void {
  if (!gc) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) gc();
}

/** Random 32-byte keys: X25519 takes any (clamping is the private side's); the bench needs no private keys. */
function randomKey(): string {
  return randomBytes(32).toString('base64');
}

const SSH = PortSet.of([parsePortSpec('tcp/22')]);
const WEB = PortSet.of([parsePortSpec('tcp/443')]);

function spec(key: string, i: number, inbound: PortSet) {
  const vip = (0x64400000 + 2 + i) >>> 0;
  const orig = (0x0a000000 + 2 + i) >>> 0;
  return { publicKey: key, allowedIps: [{ addr: vip, bits: 32 }, { addr: orig, bits: 32 }], endpoint: Endpoint.relay(vip), inbound };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function runOne(n: number): Promise<Result> {
  const agent = new Agent({ privateKey: randomKey(), address: parsePrefix('100.64.0.1/10'), mtu: 1420, peers: [] },
    { clock: systemClock, logger: silentLogger(), openTun: () => new NullTun(), openUdpSocket: () => new NullSocket(), aead: null });
  const keys = Array.from({ length: n }, randomKey);
  settle();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) agent.upsertPeer(spec(keys[i], i, SSH));
  const agentLoadMs = performance.now() - t0;
  settle();
  const rss1 = process.memoryUsage().rss;
  const heap1 = process.memoryUsage().heapUsed;

  const REPS = 50;
  const upsertNew: number[] = [];
  const remove: number[] = [];
  const tagChange: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const key = randomKey();
    let s = performance.now();
    agent.upsertPeer(spec(key, n + r, SSH));
    upsertNew.push(performance.now() - s);
    const known = keys[(r * 7919) % n];
    s = performance.now();
    agent.upsertPeer(spec(known, (r * 7919) % n, r % 2 ? SSH : WEB));
    tagChange.push(performance.now() - s);
    s = performance.now();
    agent.removePeer(key);
    remove.push(performance.now() - s);
  }

  await agent.start();
  await new Promise((r) => setTimeout(r, 500));
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, 5000));
  const c1 = process.cpuUsage(c0);
  const idleCpuMsPerSec = ((c1.user + c1.system) / 1000) / ((performance.now() - w0) / 1000);
  await agent.stop();
  return {
    peers: n,
    agentRssMbPerPeer: (rss1 - rss0) / 1048576 / n,
    agentHeapMbPerPeer: (heap1 - heap0) / 1048576 / n,
    agentLoadMs,
    agentApplyDeltaMs: { upsertNew: median(upsertNew), remove: median(remove), tagChange: median(tagChange) },
    idleCpuMsPerSec,
  };
}

/** CPU µs per call of `f` (process.cpuUsage: user + system). */
function cpuMicros(f: () => void, n: number): number {
  f();
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

function x25519Costs(): Record<string, number> {
  const priv = randomBytes(32);
  const pub = tweetnaclX25519.scalarMultBase(randomBytes(32));
  return {
    tweetnaclDhUs: cpuMicros(() => tweetnaclX25519.scalarMult(priv, pub), 200),
    opensslDhUs: cpuMicros(() => scalarMult(priv, pub), 2000),
    opensslDhFreshPrivateUs: cpuMicros(() => scalarMult(randomBytes(32), pub), 2000),
    tweetnaclBaseUs: cpuMicros(() => tweetnaclX25519.scalarMultBase(priv), 200),
    opensslBaseUs: cpuMicros(() => scalarMultBase(randomBytes(32)), 2000),
  };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--one');
  if (i >= 0) {
    process.stdout.write(JSON.stringify(await runOne(Number(process.argv[i + 1]))) + '\n');
    return;
  }
  const x = x25519Costs();
  console.log(`X25519 (${X25519_IMPLEMENTATION} in use), CPU µs/op: DH tweetnacl ${x.tweetnaclDhUs.toFixed(0)} / node:crypto ${x.opensslDhUs.toFixed(0)} ` +
    `(fresh private key ${x.opensslDhFreshPrivateUs.toFixed(0)}); public key tweetnacl ${x.tweetnaclBaseUs.toFixed(0)} / node:crypto ${x.opensslBaseUs.toFixed(0)}`);
  const j = process.argv.indexOf('--peers');
  const ns = (j >= 0 ? process.argv[j + 1] : '1000,10000,100000').split(',').map(Number);
  if (ns.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error('--peers wants a comma-separated list of positive integers');
  const results: Result[] = [];
  for (const n of ns) {
    const out = execFileSync(process.execPath, ['--expose-gc', process.argv[1], '--one', String(n)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const r = JSON.parse(out) as Result;
    results.push(r);
    const d = r.agentApplyDeltaMs;
    console.log(`N=${n}: rss/peer ${(r.agentRssMbPerPeer * 1024).toFixed(2)} KB (heap ${(r.agentHeapMbPerPeer * 1024).toFixed(2)} KB), ` +
      `load ${r.agentLoadMs.toFixed(0)} ms, delta ms: upsert ${d.upsertNew.toFixed(3)} / remove ${d.remove.toFixed(3)} / tag change ${d.tagChange.toFixed(3)}, ` +
      `idle CPU ${r.idleCpuMsPerSec.toFixed(2)} ms/s`);
  }
  console.log(JSON.stringify(results));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
