/**
 * The measurements, identical for every subject: iperf3 TCP throughput (client in vpc1, server in
 * vpc2, warm-up omitted), ping RTT, and CPU time (whole machine from /proc/stat, and the
 * subject's own processes plus both iperf3 ends).
 */
import { readFileSync } from 'node:fs';
import type { Topology } from './topology';
import type { RunResult } from './procs';

export interface IperfCase {
  streams: number;
  /** true: vpc2 → vpc1 (iperf3 -R). */
  reverse: boolean;
}

export interface IperfResult extends IperfCase {
  bitsPerSecond: number;
  bytes: number;
  seconds: number;
  retransmits: number;
  /** Whole-machine busy CPU seconds per GB moved (includes whatever else runs on the machine). */
  machineCpuSPerGB: number;
  /** Subject processes + iperf3 client and server, CPU seconds per GB. */
  procCpuSPerGB: number;
}

export interface IperfOptions {
  durationS: number;
  omitS: number;
  port: number;
}

const CLK_TCK = 100; // USER_HZ on Linux: /proc/stat and /proc/<pid>/stat count in 1/100 s.

/** Busy and total jiffies of the whole machine. */
export function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guests are inside user.
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/** utime+stime jiffies of the live PIDs in `pids` (a vanished PID counts 0). */
export function processJiffies(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      sum += Number(f[11]) + Number(f[12]); // fields 14 and 15 (utime, stime), 0-based after ')'
    } catch { /* exited */ }
  }
  return sum;
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bytes: number; seconds: number; bits_per_second: number };
    sum_sent?: { retransmits?: number };
    cpu_utilization_percent?: { host_total: number; remote_total: number };
  };
}

/**
 * Run the iperf3 client in vpc1. The server accepts one test at a time and may still be
 * closing the previous one ("the server is busy"): retry that a few times, a second apart.
 */
async function execIperf(topo: Topology, args: string[], timeoutMs: number): Promise<RunResult> {
  for (let attempt = 0; ; attempt++) {
    const r = await topo.exec(topo.ns.vpc1, 'iperf3', args, { check: false, timeoutMs });
    if (attempt >= 5 || !/server is busy/.test(r.stdout + r.stderr)) return r;
    await new Promise((res) => setTimeout(res, 1000));
  }
}

/** One iperf3 client run from vpc1 against the server already listening on serverAddr in vpc2. */
export async function runIperf(topo: Topology, serverAddr: string, clientAddr: string, c: IperfCase,
  opts: IperfOptions, subjectPids: () => number[]): Promise<IperfResult> {
  const args = ['-c', serverAddr, '-B', clientAddr, '-p', String(opts.port), '-t', String(opts.durationS),
    '-O', String(opts.omitS), '-P', String(c.streams), '-J'];
  if (c.reverse) args.push('-R');
  const m0 = machineJiffies();
  const p0 = processJiffies(subjectPids());
  const t0 = performance.now();
  const r = await execIperf(topo, args, (opts.durationS + opts.omitS + 30) * 1000);
  const wallS = (performance.now() - t0) / 1000;
  const m1 = machineJiffies();
  const p1 = processJiffies(subjectPids());
  let j: IperfJson;
  try {
    j = JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 ${args.join(' ')}: no JSON (exit ${r.code}): ${r.stderr.slice(-300)}`);
  }
  if (j.error || !j.end?.sum_received) throw new Error(`iperf3 ${args.join(' ')}: ${j.error ?? 'no summary'}`);
  const recv = j.end.sum_received;
  // Rates over the whole wall time (warm-up included) divided by the measured GB/s: CPU-s per GB.
  const gbPerS = recv.bits_per_second / 8e9;
  const machineCpuPerS = (m1.busy - m0.busy) / CLK_TCK / wallS;
  const iperfCores = ((j.end.cpu_utilization_percent?.host_total ?? 0) + (j.end.cpu_utilization_percent?.remote_total ?? 0)) / 100;
  const procCpuPerS = (p1 - p0) / CLK_TCK / wallS + iperfCores;
  return {
    ...c,
    bitsPerSecond: recv.bits_per_second,
    bytes: recv.bytes,
    seconds: recv.seconds,
    retransmits: j.end.sum_sent?.retransmits ?? 0,
    machineCpuSPerGB: gbPerS > 0 ? machineCpuPerS / gbPerS : Infinity,
    procCpuSPerGB: gbPerS > 0 ? procCpuPerS / gbPerS : Infinity,
  };
}

export interface PingResult {
  sent: number;
  received: number;
  avgMs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
}

export function parsePing(out: string, sent: number): PingResult {
  const times = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  if (times.length === 0) throw new Error(`ping: no replies: ${out.slice(-300)}`);
  return {
    sent,
    received: times.length,
    avgMs: times.reduce((a, b) => a + b, 0) / times.length,
    medianMs: median(times),
    minMs: times[0]!,
    maxMs: times[times.length - 1]!,
  };
}

/** ping from vpc1 to addr; `count` echoes `intervalS` apart (below 0.2 s needs root). */
export async function runPing(topo: Topology, addr: string, count = 20, intervalS = 0.05): Promise<PingResult> {
  const r = await topo.exec(topo.ns.vpc1, 'ping', ['-n', '-c', String(count), '-i', String(intervalS), '-W', '2', addr],
    { check: false, timeoutMs: (count * intervalS + 10) * 1000 });
  return parsePing(r.stdout, count);
}

/** Wait until vpc1 gets a ping answer from addr (tunnel up, handshakes done). */
export async function waitForPing(topo: Topology, addr: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await topo.exec(topo.ns.vpc1, 'ping', ['-n', '-c', '1', '-W', '1', addr], { check: false });
    if (r.code === 0) return;
    if (Date.now() > until) throw new Error(`no ping answer from ${addr} within ${timeoutMs} ms`);
  }
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface UdpPpsResult {
  payloadBytes: number;
  sentPps: number;
  receivedPps: number;
  lossPercent: number;
}

interface IperfUdpJson {
  error?: string;
  end?: { sum?: { packets: number; lost_packets: number; seconds: number; lost_percent: number } };
}

/** Small-packet rate: iperf3 UDP, `payloadBytes` per datagram, unlimited send rate (-b 0). */
export async function runUdpPps(topo: Topology, serverAddr: string, clientAddr: string, opts: IperfOptions,
  payloadBytes = 64): Promise<UdpPpsResult> {
  const args = ['-c', serverAddr, '-B', clientAddr, '-p', String(opts.port), '-u', '-l', String(payloadBytes), '-b', '0',
    '-t', String(opts.durationS), '-J'];
  // No -O here: iperf3 3.12 counts the omitted datagrams as lost (loss > 100 %).
  const r = await execIperf(topo, args, (opts.durationS + 30) * 1000);
  let j: IperfUdpJson;
  try {
    j = JSON.parse(r.stdout) as IperfUdpJson;
  } catch {
    throw new Error(`iperf3 ${args.join(' ')}: no JSON (exit ${r.code}): ${r.stderr.slice(-300)}`);
  }
  const s = j.end?.sum;
  if (j.error || !s || !(s.seconds > 0)) throw new Error(`iperf3 ${args.join(' ')}: ${j.error ?? 'no summary'}`);
  return {
    payloadBytes,
    sentPps: s.packets / s.seconds,
    receivedPps: (s.packets - s.lost_packets) / s.seconds,
    lossPercent: s.lost_percent,
  };
}
