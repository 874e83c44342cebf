/**
 * Request/response measurements, identical for every subject (client in vpc1, server in vpc2):
 *
 * - RR over one connection: `sockperf ping-pong --tcp` (Debian's sockperf; its smallest message
 *   is 14 bytes, so "1 byte each way" is 14 here), round-trip percentiles (`--full-rtt`);
 * - RR over N concurrent connections and CRR (connect, 1 byte each way, close; N in flight):
 *   `bench/native/tcp-rr.c`, compiled with the system `cc` at bench time (netperf is not in
 *   Debian main; sockperf 3.7's ping-pong over a 64-connection feed file hung here, and it has
 *   no connection-per-transaction mode).
 *
 * Both are C programs blocking in the kernel (no busy polling), so what is measured is the
 * overlay, not a runtime. The parsers are pure and unit-tested (test/unit/bench-rr.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atProcessEnd, run } from './procs';
import type { Topology } from './topology';

export interface RrResult {
  /** 'rr': one request in flight per connection; 'crr': a new connection per transaction. */
  mode: 'rr' | 'crr';
  /** Connections (rr) or transactions (crr) in flight. */
  conns: number;
  /** Which client measured it. */
  tool: 'sockperf' | 'tcp-rr';
  /** Bytes each way per transaction (sockperf's minimum is 14). */
  messageBytes: number;
  transactionsPerSec: number;
  p50Us: number;
  p99Us: number;
  /** Broken connections or failed transactions during the run (0 on a healthy path). */
  errors: number;
}

/** Parse `sockperf ping-pong --full-rtt` output: valid-duration message count and RTT percentiles (µs). */
export function parseSockperf(out: string): { transactionsPerSec: number; p50Us: number; p99Us: number } {
  const valid = /\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)/.exec(out);
  const p50 = /percentile 50\.000 =\s*([\d.]+)/.exec(out);
  const p99 = /percentile 99\.000 =\s*([\d.]+)/.exec(out);
  if (!valid || !p50 || !p99) throw new Error(`sockperf: no statistics in its output: ${out.slice(-400)}`);
  const seconds = Number(valid[1]);
  if (!(seconds > 0)) throw new Error(`sockperf: valid duration ${valid[1]} s`);
  return { transactionsPerSec: Number(valid[3]) / seconds, p50Us: Number(p50[1]), p99Us: Number(p99[1]) };
}

interface TcpRrJson { mode: string; conns: number; transactions: number; tps: number; p50Us: number; p99Us: number; errors: number }

/** Parse the one JSON line tcp-rr prints. */
export function parseTcpRr(out: string): Omit<RrResult, 'tool' | 'messageBytes'> {
  const line = out.split('\n').find((l) => l.startsWith('{'));
  let j: TcpRrJson;
  try {
    j = JSON.parse(line ?? '') as TcpRrJson;
  } catch {
    throw new Error(`tcp-rr: no JSON line in its output: ${out.slice(-300)}`);
  }
  if ((j.mode !== 'rr' && j.mode !== 'crr') || !Number.isFinite(j.tps)) throw new Error(`tcp-rr: unexpected output ${line}`);
  return { mode: j.mode, conns: j.conns, transactionsPerSec: j.tps, p50Us: j.p50Us, p99Us: j.p99Us, errors: j.errors };
}

/** Compiles tcp-rr.c into a private temp dir; `dispose()` removes it (so does the process's end, however it ends). */
export async function buildTcpRr(sourcePath: string): Promise<{ bin: string; dispose: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-tcp-rr-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const unregister = atProcessEnd(remove);
  const dispose = () => {
    unregister();
    remove();
  };
  const bin = join(dir, 'tcp-rr');
  try {
    await run('cc', ['-O2', '-Wall', '-o', bin, sourcePath], { timeoutMs: 60_000 });
  } catch (err) {
    dispose();
    throw err;
  }
  return { bin, dispose };
}

export interface RrOptions {
  durationS: number;
  /** Warm-up seconds not counted (tcp-rr; sockperf has its own 0.4 s warm-up). */
  omitS: number;
}

/** sockperf ping-pong over one TCP connection from vpc1 to a `sockperf server` on serverAddr:port. */
export async function runSockperfRr(topo: Topology, serverAddr: string, clientAddr: string, port: number, opts: RrOptions): Promise<RrResult> {
  const args = ['ping-pong', '--tcp', '-i', serverAddr, '-p', String(port), '--client_ip', clientAddr,
    '-t', String(opts.durationS + opts.omitS), '-m', '14', '--full-rtt'];
  const r = await topo.exec(topo.ns.vpc1, 'sockperf', args, { check: false, timeoutMs: (opts.durationS + opts.omitS + 30) * 1000 });
  const out = r.stdout + r.stderr;
  const p = parseSockperf(out);
  const dropped = /# dropped messages = (\d+)/.exec(out);
  return { mode: 'rr', conns: 1, tool: 'sockperf', messageBytes: 14, ...p, errors: dropped ? Number(dropped[1]) : 0 };
}

/** tcp-rr client from vpc1 against a `tcp-rr server` on serverAddr:port. */
export async function runTcpRr(topo: Topology, bin: string, mode: 'rr' | 'crr', conns: number, serverAddr: string,
  clientAddr: string, port: number, opts: RrOptions): Promise<RrResult> {
  const args = ['client', mode, serverAddr, String(port), clientAddr, String(conns), String(opts.durationS), String(opts.omitS)];
  const r = await topo.exec(topo.ns.vpc1, bin, args, { check: false, timeoutMs: (opts.durationS + opts.omitS + 30) * 1000 });
  if (r.code !== 0) throw new Error(`tcp-rr ${args.join(' ')}: exit ${r.code}: ${r.stderr.slice(-300)}`);
  return { ...parseTcpRr(r.stdout), tool: 'tcp-rr', messageBytes: 1 };
}
