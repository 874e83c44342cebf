/**
 * The latency and request/response goals as ratios of the first bench subject to the
 * best peer. Pure; bench/report.ts prints them, test/unit/testbed/bench-goals.test.ts checks them.
 */
import type { RrResult } from './rr';

/** Label of an RR case: 'RR 1' (one connection), 'RR 64', 'CRR 1', 'CRR 64'. */
export const rrLabel = (x: { mode: 'rr' | 'crr'; conns: number }): string => `${x.mode.toUpperCase()} ${x.conns}`;

/** What the goals read of a subject's results (bench/report.ts's SubjectResult has it). */
export interface GoalSubject {
  name: string;
  error?: string;
  ping?: { medianMs: number };
  coldPing?: { medianMs: number };
  loadedPing?: { medianMs: number };
  rr?: readonly RrResult[];
}

export interface BestPeerRatio {
  metric: string;
  unit: 'ms' | 'tps';
  better: 'higher' | 'lower';
  lead: number;
  best: number;
  bestName: string;
  ratio: number;
  /** The goal for this ratio. */
  goal: number;
  met: boolean;
}

/**
 * The first subject (none when it failed) against the best of the peers (subjects whose name does not start with
 * 'isthmus': the other isthmus shapes are not peers) for the latency and RR goals: idle
 * RTT ≤ 0.75× the lowest peer's (after the bench's warm-up, and right after setup), RTT under load ≤ 1× the lowest peer's, every RR/CRR case
 * ≥ 1.5× the highest peer's. Metrics the lead or every peer lacks are left out.
 */
export function bestPeerRatios(subjects: readonly GoalSubject[]): BestPeerRatio[] {
  const lead = subjects[0];
  const peers = subjects.slice(1).filter((s) => !s.error && !s.name.startsWith('isthmus'));
  if (!lead || lead.error || peers.length === 0) return [];
  const out: BestPeerRatio[] = [];
  const add = (metric: string, unit: BestPeerRatio['unit'], better: BestPeerRatio['better'], goal: number,
    get: (s: GoalSubject) => number | undefined) => {
    const l = get(lead);
    const vals = peers.map((p) => ({ name: p.name, v: get(p) })).filter((x): x is { name: string; v: number } => x.v !== undefined && Number.isFinite(x.v) && x.v > 0);
    if (l === undefined || !Number.isFinite(l) || vals.length === 0) return;
    const b = vals.reduce((acc, x) => ((better === 'higher' ? x.v > acc.v : x.v < acc.v) ? x : acc));
    const ratio = l / b.v;
    out.push({ metric, unit, better, lead: l, best: b.v, bestName: b.name, ratio, goal, met: better === 'higher' ? ratio >= goal : ratio <= goal });
  };
  add('idle RTT median', 'ms', 'lower', 0.75, (s) => s.ping?.medianMs);
  add('idle RTT median, cold start', 'ms', 'lower', 0.75, (s) => s.coldPing?.medianMs);
  add('RTT under load median', 'ms', 'lower', 1, (s) => s.loadedPing?.medianMs);
  for (const c of lead.rr ?? []) {
    add(`${rrLabel(c)} transactions/s`, 'tps', 'higher', 1.5, (s) => s.rr?.find((x) => rrLabel(x) === rrLabel(c))?.transactionsPerSec);
  }
  return out;
}

