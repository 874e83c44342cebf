/**
 * The controller's view for bench/scale.ts (forked by it, run with --expose-gc): the real agent
 * control-plane code (node-agent MembershipClient: join, signature pinning, peer-claim checks,
 * state-dir persistence) applying the real coordinator's peer map into the real data-path peer
 * directory (node-agent PeerSet, what Agent uses), as a controller that sees every agent.
 *
 * Reports the RSS the directory costs per peer (after a GC, before and after the full map) and
 * how long each delta takes to apply: the whole callback MembershipClient runs per answer
 * (claims, PeerSet upserts/removals, state-dir write, log), timed around it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MembershipClient, PeerSet, StateDir } from '../node-agent';
import { createLocalIdentity, DEFAULT_TIMER_CONFIG } from '../protocol';
import { silentLogger, systemClock } from '../common';
import type { PeerMapUpdate } from '../coordinator';

export type ToAgent = { cmd: 'start'; coordUrl: string; signingKey: string; token: string; originalIp: string } | { cmd: 'report' } | { cmd: 'stop' };
export type FromAgent =
  | { type: 'started'; peers: number; fullApplyMs: number; rssPerPeerMb: number; heapPerPeerMb: number; rssMb: number }
  | { type: 'report'; deltaMs: number[]; peers: number; cpuMs: number; rssMb: number }
  | { type: 'error'; message: string };

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
/** RSS and V8 heap in use, MB, after a full GC. */
const mem = () => { gc(); gc(); const u = process.memoryUsage(); return { rss: u.rss / 2 ** 20, heap: u.heapUsed / 2 ** 20 }; };
const deltaMs: number[] = [];
let dir: string | undefined;
let membership: MembershipClient | undefined;
let peers: PeerSet | undefined;

function send(m: FromAgent): void {
  process.send!(m);
}

async function start(m: Extract<ToAgent, { cmd: 'start' }>): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'isthmus-scale-agent-'));
  const state = new StateDir(dir);
  membership = new MembershipClient({ coordinatorUrl: m.coordUrl, coordinatorPubkey: m.signingKey, token: m.token, originalIp: m.originalIp, hostname: 'scale-probe-controller', insecureCoordinator: true },
    state, silentLogger());
  const ps = new PeerSet(createLocalIdentity(membership.key), systemClock, DEFAULT_TIMER_CONFIG);
  peers = ps;
  const sink = {
    upsertPeer: (s: Parameters<PeerSet['upsert']>[0]) => { ps.upsert(s); },
    removePeer: (k: string) => { ps.remove(k); },
    peerKeys: () => [...ps.all()].map((p) => p.publicKeyBase64),
  };
  const before = mem();
  const initial = await membership.join();
  const t0 = performance.now();
  membership.applyFull(initial.peers, sink);
  const fullApplyMs = performance.now() - t0;
  const after = mem();
  // Time MembershipClient's own per-answer callback (everything it does with a delta).
  const c = membership.client;
  const orig = c.watchPeers.bind(c);
  c.watchPeers = (tok, since, cb, signal, opts) => orig(tok, since, (u: PeerMapUpdate) => {
    const s = performance.now();
    cb(u);
    if (!u.full) deltaMs.push(performance.now() - s);
  }, signal, opts);
  void membership.run(initial, sink).catch((err: unknown) => send({ type: 'error', message: (err as Error).message }));
  send({ type: 'started', peers: ps.size, fullApplyMs, rssPerPeerMb: ps.size ? (after.rss - before.rss) / ps.size : 0,
    heapPerPeerMb: ps.size ? (after.heap - before.heap) / ps.size : 0, rssMb: after.rss });
}

process.on('message', (m: ToAgent) => {
  void (async () => {
    if (m.cmd === 'start') await start(m);
    else if (m.cmd === 'report') {
      const u = process.cpuUsage();
      send({ type: 'report', deltaMs: deltaMs.splice(0), peers: peers?.size ?? 0, cpuMs: (u.user + u.system) / 1000, rssMb: process.memoryUsage().rss / 2 ** 20 });
    } else {
      membership?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    }
  })().catch((err: unknown) => send({ type: 'error', message: (err as Error).stack ?? String(err) }));
});
process.on('disconnect', () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  process.exit(0);
});
