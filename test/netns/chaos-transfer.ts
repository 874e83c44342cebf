/**
 * A paced TCP transfer through the overlay whose receiver reports progress, for the chaos
 * tests: the sink prints {"t","bytes"} every 50 ms and {"bytes","sha256"} at the end, the
 * source sends `bytes` of pseudo-random data at `rate` bytes/s and prints its SHA-256.
 * stallMs() is the longest time the sink went without new bytes while the transfer ran.
 */
import type { Topology } from '../harness/netns';

const SINK = `
const net = require('node:net'); const { createHash } = require('node:crypto');
const [host, port] = process.argv.slice(1);
let bytes = 0; const h = createHash('sha256');
const srv = net.createServer((s) => {
  const timer = setInterval(() => process.stdout.write(JSON.stringify({ t: Date.now(), bytes }) + '\\n'), 50);
  s.on('data', (d) => { h.update(d); bytes += d.length; });
  s.on('end', () => { clearInterval(timer); process.stdout.write(JSON.stringify({ t: Date.now(), bytes }) + '\\n');
    process.stdout.write(JSON.stringify({ done: true, bytes, sha256: h.digest('hex') }) + '\\n'); s.end(); srv.close(); });
});
srv.listen(Number(port), host, () => process.stdout.write('listening\\n'));`;

const SOURCE = `
const net = require('node:net'); const { createHash, randomBytes } = require('node:crypto');
const [host, port, total, rate] = process.argv.slice(1).map((x, i) => i < 2 ? x : Number(x));
const h = createHash('sha256'); let sent = 0; const start = Date.now();
const s = net.connect(Number(port), host, () => {
  const pump = () => {
    const due = Math.min(total, Math.floor((Date.now() - start) / 1000 * rate) + 65536);
    while (sent < due) {
      const n = Math.min(65536, total - sent); const b = randomBytes(n); h.update(b); sent += n;
      if (!s.write(b)) { s.once('drain', pump); return; }
    }
    if (sent >= total) { s.end(); return; }
    setTimeout(pump, 10);
  };
  pump();
});
s.on('close', () => process.stdout.write(JSON.stringify({ bytes: sent, sha256: h.digest('hex') }) + '\\n'));
s.on('error', (e) => { process.stderr.write(e.message + '\\n'); process.exit(1); });`;

export interface TransferResult {
  sent: { bytes: number; sha256: string };
  received: { bytes: number; sha256: string };
  samples: { t: number; bytes: number }[];
}

export interface Transfer {
  /** Resolves when the sink has everything (or rejects on timeout). */
  done: Promise<TransferResult>;
  /** Bytes the sink has so far. */
  progress(): number;
}

export async function startTransfer(topo: Topology, o: { dstVip: string; port: number; bytes: number; rate: number; timeoutMs?: number }): Promise<Transfer> {
  const sink = topo.spawn(topo.ns.vpc2, process.execPath, ['-e', SINK, o.dstVip, String(o.port)], { name: 'chaos-sink' });
  await sink.waitForLine(/listening/);
  const source = topo.exec(topo.ns.vpc1, process.execPath, ['-e', SOURCE, o.dstVip, String(o.port), String(o.bytes), String(o.rate)],
    { timeoutMs: o.timeoutMs ?? 120_000 });
  const samples = (): { t: number; bytes: number }[] => sink.output().split('\n').filter((l) => l.startsWith('{"t"'))
    .map((l) => JSON.parse(l) as { t: number; bytes: number });
  const done = (async () => {
    const src = await source;
    const sent = JSON.parse(src.stdout.trim().split('\n').pop()!) as { bytes: number; sha256: string };
    const received = JSON.parse(await sink.waitForLine(/"done":true/, 30_000)) as { bytes: number; sha256: string };
    await sink.stop();
    return { sent, received, samples: samples() };
  })();
  return { done, progress: () => samples().pop()?.bytes ?? 0 };
}

/** Longest interval without new bytes at the sink, after the first byte and before the last. */
export function stallMs(samples: { t: number; bytes: number }[]): { stallMs: number; at: number } {
  let lastChange: { t: number; bytes: number } | undefined;
  let worst = { stallMs: 0, at: 0 };
  for (const s of samples) {
    if (s.bytes === 0) continue;
    if (!lastChange) {
      lastChange = s;
      continue;
    }
    if (s.bytes > lastChange.bytes) {
      const gap = s.t - lastChange.t;
      if (gap > worst.stallMs) worst = { stallMs: gap, at: lastChange.t };
      lastChange = s;
    }
  }
  return worst;
}

/** Resolve once the sink has at least `bytes`. */
export async function waitForProgress(tr: Transfer, bytes: number, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (tr.progress() < bytes) {
    if (Date.now() > until) throw new Error(`transfer stuck at ${tr.progress()} bytes (< ${bytes})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
