/**
 * Bench results: the JSON shape written to bench/results/latest.json, the text table printed at
 * the end of a run (the first subject's ratio to each other subject), and an SVG bar chart.
 * Pure: no I/O here.
 */
import { bestPeerRatios, rrLabel, type BestPeerRatio, type IperfResult, type PingResult, type RrResult, type UdpPpsResult } from '../testbed';

export interface CaseSummary {
  streams: number;
  reverse: boolean;
  /** Median over runs. */
  gbps: number;
  machineCpuSPerGB: number;
  procCpuSPerGB: number;
  runs: IperfResult[];
}

export interface SubjectResult {
  name: string;
  description: string;
  cases: CaseSummary[];
  /** Idle RTT after a warm-up of the path (3000 echoes, not counted). */
  ping?: PingResult;
  /** Idle RTT right after setup, before that warm-up. */
  coldPing?: PingResult;
  /** Ping while the first iperf3 case runs. */
  loadedPing?: PingResult;
  /** Resident memory (MiB) mid-way through the first loaded run: the hub process (relay) and the largest member. */
  rssMiB?: { hub: number; memberMax: number };
  /** 64-byte UDP datagrams, unlimited rate. */
  udp64?: UdpPpsResult;
  /** Why the 64-byte UDP figure is missing (the TCP results still count). */
  udp64Error?: string;
  /** iperf3 cases that failed (their columns show '-'); the subject's other figures still count. */
  caseErrors?: string[];
  /** Request/response rates (TCP_RR / TCP_CRR style), one entry per case. */
  rr?: RrResult[];
  /** Why the RR figures are missing (the other results still count). */
  rrError?: string;
  /** Set when the subject failed; the other subjects still run. */
  error?: string;
}

export interface BenchReport {
  date: string;
  host: { cores: number; cpuModel: string; kernel: string; node: string };
  settings: { durationS: number; omitS: number; runs: number; pingCount: number; pingIntervalS: number; vethMtu: number };
  subjects: SubjectResult[];
}

const caseLabel = (c: { streams: number; reverse: boolean }) => `${c.streams}x ${c.reverse ? 'vpc2→vpc1' : 'vpc1→vpc2'}`;
const f2 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2));
const f3 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(3));
const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);

export function formatReport(r: BenchReport): string {
  const lines: string[] = [];
  lines.push(`isthmus bench  ${r.date}`);
  lines.push(`machine: ${r.host.cores} cores (${r.host.cpuModel}), kernel ${r.host.kernel}, node ${r.host.node}`);
  lines.push(`iperf3 TCP -t ${r.settings.durationS} -O ${r.settings.omitS} (warm-up omitted), median of ${r.settings.runs} run(s); ` +
    `ping -c ${r.settings.pingCount} -i ${r.settings.pingIntervalS}; veth MTU ${r.settings.vethMtu}`);
  lines.push('');
  const cases = r.subjects.find((s) => s.cases.length > 0)?.cases.map((c) => ({ streams: c.streams, reverse: c.reverse })) ?? [];
  const w = Math.max(14, ...r.subjects.map((s) => s.name.length + 2));
  lines.push(pad('subject', w) + cases.map((c) => lpad(caseLabel(c), 15)).join('') + lpad('RTT med ms', 12) + lpad('RTT avg ms', 12) +
    lpad('CPU-s/GB', 10) + lpad('(procs)', 9));
  lines.push(pad('', w) + cases.map(() => lpad('Gbit/s', 15)).join('') + lpad('', 24) + lpad('machine', 10) + lpad('', 9));
  for (const s of r.subjects) {
    if (s.error) {
      lines.push(pad(s.name, w) + `FAILED: ${s.error}`);
      continue;
    }
    const first = s.cases[0];
    lines.push(pad(s.name, w) + cases.map((c) => lpad(f2(findCase(s, c)?.gbps), 15)).join('') +
      lpad(f3(s.ping?.medianMs), 12) + lpad(f3(s.ping?.avgMs), 12) + lpad(f2(first?.machineCpuSPerGB), 10) + lpad(f2(first?.procCpuSPerGB), 9));
  }
  for (const s of r.subjects) for (const e of s.caseErrors ?? []) lines.push(`${s.name}: case failed: ${e}`);
  lines.push('(RTT idle: after 3000 uncounted echoes 0.2 ms apart; "cold": the same ping right after setup, before them)');
  lines.push('(CPU-s/GB for the first column; "machine" counts every process on the shared machine, "procs" the subject\'s daemons and both iperf3 ends)');
  lines.push('');
  lines.push(pad('subject', w) + lpad('RTT idle med', 14) + lpad('(cold)', 8) + lpad('RTT loaded med', 16) + lpad('64B UDP kpps rx', 17) + lpad('lost %', 8) + lpad('RSS MiB hub/member', 20) + '  description');
  for (const s of r.subjects.filter((x) => !x.error)) {
    lines.push(pad(s.name, w) + lpad(f3(s.ping?.medianMs), 14) + lpad(f3(s.coldPing?.medianMs), 8) + lpad(f3(s.loadedPing?.medianMs), 16) +
      lpad(f2(s.udp64 ? s.udp64.receivedPps / 1000 : undefined), 17) + lpad(f2(s.udp64?.lossPercent), 8) +
      lpad(s.rssMiB ? `${f2(s.rssMiB.hub)}/${f2(s.rssMiB.memberMax)}` : '-', 20) + `  ${s.description}`);
  }
  lines.push(...formatRr(r.subjects, w));
  const [lead, ...peers] = r.subjects.filter((s) => !s.error);
  if (lead && peers.length > 0) {
    lines.push('');
    lines.push(`${lead.name} ÷ peer (throughput: higher is better; RTT and CPU: lower is better)`);
    for (const p of peers) {
      const tput = cases.map((c) => lpad(ratio(findCase(lead, c)?.gbps, findCase(p, c)?.gbps), 15)).join('');
      lines.push(pad(`vs ${p.name}`, w) + tput + lpad(ratio(lead.ping?.medianMs, p.ping?.medianMs), 12) +
        lpad(ratio(lead.ping?.avgMs, p.ping?.avgMs), 12) + lpad(ratio(lead.cases[0]?.machineCpuSPerGB, p.cases[0]?.machineCpuSPerGB), 10) +
        lpad(ratio(lead.cases[0]?.procCpuSPerGB, p.cases[0]?.procCpuSPerGB), 9) +
        `   loaded RTT ${ratio(lead.loadedPing?.medianMs, p.loadedPing?.medianMs)}, 64B pps ${ratio(lead.udp64?.receivedPps, p.udp64?.receivedPps)}`);
    }
  }
  const best = bestPeerRatios(r.subjects);
  if (r.subjects[0]?.error) {
    lines.push('', `${r.subjects[0].name} failed: no ratios to the best peer`);
  } else if (best.length > 0) {
    lines.push('');
    lines.push(`${r.subjects[0]!.name} ÷ best peer (the issue's goals; the best of the subjects other than isthmus*)`);
    for (const b of best) {
      lines.push(`  ${pad(b.metric, 26)}${lpad(fmtValue(b.lead, b.unit), 12)} vs ${lpad(fmtValue(b.best, b.unit), 10)} (${b.bestName})` +
        `  = ${b.ratio.toFixed(2)}x   goal ${b.better === 'higher' ? '≥' : '≤'} ${b.goal}x ${b.met ? 'met' : 'NOT met'}`);
    }
  }
  return lines.join('\n');
}

function rrCases(subjects: readonly SubjectResult[]): { mode: 'rr' | 'crr'; conns: number }[] {
  const seen = new Map<string, { mode: 'rr' | 'crr'; conns: number }>();
  for (const s of subjects) for (const x of s.rr ?? []) seen.set(rrLabel(x), { mode: x.mode, conns: x.conns });
  return [...seen.values()];
}

function formatRr(subjects: readonly SubjectResult[], w: number): string[] {
  const cases = rrCases(subjects);
  if (cases.length === 0 && !subjects.some((s) => s.rrError)) return [];
  const lines = ['', 'request/response: transactions/s (p50/p99 µs); RR = one request in flight per connection, CRR = connect + 1 byte each way + close',
    '  (RR 1: sockperf ping-pong --tcp, 14-byte messages; the rest: bench/native/tcp-rr.c, 1 byte each way)'];
  lines.push(pad('subject', w) + cases.map((c) => lpad(rrLabel(c), 24)).join(''));
  for (const s of subjects.filter((x) => !x.error)) {
    if (s.rrError) {
      lines.push(pad(s.name, w) + `FAILED: ${s.rrError}`);
      continue;
    }
    lines.push(pad(s.name, w) + cases.map((c) => {
      const x = s.rr?.find((y) => rrLabel(y) === rrLabel(c));
      return lpad(x ? `${x.transactionsPerSec.toFixed(0)} (${x.p50Us.toFixed(0)}/${x.p99Us.toFixed(0)})${x.errors ? '!' : ''}` : '-', 24);
    }).join(''));
  }
  if (subjects.some((s) => s.rr?.some((x) => x.errors > 0))) lines.push('  (! = the run counted broken connections or failed transactions)');
  return lines;
}

const fmtValue = (v: number, unit: BestPeerRatio['unit']) => (unit === 'ms' ? `${v.toFixed(3)} ms` : `${v.toFixed(0)}/s`);

function findCase(s: SubjectResult, c: { streams: number; reverse: boolean }): CaseSummary | undefined {
  return s.cases.find((x) => x.streams === c.streams && x.reverse === c.reverse);
}

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '-';
  return `${(a / b).toFixed(2)}x`;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Grouped bars: one group per iperf3 case, one bar per subject, Gbit/s. */
export function renderSvg(r: BenchReport): string {
  const subjects = r.subjects.filter((s) => !s.error && s.cases.length > 0);
  const cases = subjects[0]?.cases ?? [];
  const colors = ['#2b6cb0', '#dd6b20', '#38a169', '#805ad5', '#d53f8c'];
  const max = Math.max(0.001, ...subjects.flatMap((s) => s.cases.map((c) => c.gbps)));
  const W = 760, H = 360, left = 60, bottom = 60, top = 50, plotH = H - top - bottom;
  const groupW = (W - left - 20) / Math.max(1, cases.length);
  const barW = Math.min(40, (groupW - 20) / Math.max(1, subjects.length));
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14">${esc(`TCP throughput through the hub, Gbit/s (${r.host.cores} cores, ${r.date.slice(0, 10)})`)}</text>`];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, y = top + plotH - (plotH * i) / 4;
    out.push(`<line x1="${left}" x2="${W - 20}" y1="${y}" y2="${y}" stroke="#ddd"/><text x="${left - 6}" y="${y + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  cases.forEach((c, gi) => {
    const gx = left + gi * groupW + 10;
    subjects.forEach((s, si) => {
      const v = findCase(s, c)?.gbps ?? 0, h = (plotH * v) / max;
      const x = gx + si * barW, y = top + plotH - h;
      out.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${colors[si % colors.length]}"/>`);
      out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y - 3).toFixed(1)}" text-anchor="middle" font-size="10">${f2(v)}</text>`);
    });
    out.push(`<text x="${(gx + (subjects.length * barW) / 2).toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${esc(caseLabel(c))}</text>`);
  });
  subjects.forEach((s, si) => {
    const x = left + si * 160;
    out.push(`<rect x="${x}" y="${H - 22}" width="12" height="12" fill="${colors[si % colors.length]}"/><text x="${x + 16}" y="${H - 12}">${esc(s.name)}${s.ping ? esc(` (RTT ${f3(s.ping.medianMs)} ms)`) : ''}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
