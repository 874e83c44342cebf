/**
 * One process of simulated members for bench/scale.ts (forked by it; IPC messages below).
 * Each member is what an agent does on the control plane, without a TUN device:
 *   - joins through the real API (GET /v1/challenge, POST /v1/join with a key proof; the
 *     answer's signature is checked against the pinned coordinator key, as an agent does);
 *   - holds a real relay session: its own UDP socket (own loopback source address), the real
 *     member-side protocol (node-agent RelayClient: HELLO, CHALLENGE, AUTH with a key proof,
 *     PINGs at the real 10 s idle cadence), so the relay records its 4-tuple in Redis;
 *   - keeps a real peer-map watch (CoordinatorClient.watchPeers: one stream per member, its
 *     opening frame's signature checked, frames applied; see watchAll) over undici connections.
 * Probes: the parent names a member and a condition (present, absent, carries a tag); every
 * member of the given role reports when its map first satisfied it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import { CoordinatorClient, type Peer, type PeerMapUpdate } from '../coordinator';
import { RelayClient } from '../node-agent';
import { openDgramSocket, type DgramSocket } from '../native-bindings';
import { parseAddr, silentLogger, systemClock } from '../common';

export type Role = 'agent' | 'controller';

export interface WorkerInit {
  /** Every coordinator: member i watches at coordUrls[i % length] (they only carry watchers, apart from joins). */
  coordUrls: string[];
  /** The two coordinators joins go through (joinsPerSec is measured through exactly two). */
  joinUrls: string[];
  /** This worker's own loopback source address for its TCP connections (bound before connect), so
   *  the ephemeral ports of one (source, coordinator) pair do not run out. */
  sourceIp: string;
  relays: Array<{ ip: string; port: number }>;
  signingKey: string;
  tokens: Record<Role, string>;
  members: Array<{ i: number; role: Role }>;
  joinConcurrency: number;
}

export interface Probe {
  id: number;
  /** 'present' of a member that has not joined yet: named by its public key (its vip is not known). */
  publicKey?: string;
  vip: string;
  kind: 'present' | 'absent' | 'tag';
  tag?: string;
  watchers: Role;
}

export type ToWorker =
  | { cmd: 'init'; init: WorkerInit }
  | { cmd: 'join' }
  | { cmd: 'sessions'; timeoutMs: number; perSecond: number }
  | { cmd: 'watch' }
  | { cmd: 'probe'; probe: Probe }
  | { cmd: 'probe-result'; id: number }
  | { cmd: 'stats' }
  | { cmd: 'stop' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'joined'; latencies: number[]; errors: number; firstError?: string }
  | { type: 'sessions'; ready: number; total: number; errors: number; firstError?: string }
  | { type: 'watching' }
  | { type: 'probe-ack'; id: number }
  | { type: 'probe-result'; id: number; times: number[]; of: number }
  | { type: 'stats'; at: number; pingsSent: number; probesSent: number; pongs: number; ready: number; watchErrors: number; firstWatchError?: string; refusedAnswers: number; rssMb: number }
  | { type: 'stopped' };

interface Member {
  i: number;
  role: Role;
  priv: Uint8Array;
  pub: Uint8Array;
  /** Joins (challenge, join) at one of the two join coordinators, everything else (the peer-map
   *  watch) at its watch coordinator: see `routed`. */
  client: CoordinatorClient;
  vip?: string;
  session?: string;
  version?: number;
  map?: ReadonlyMap<string, Peer>;
  sock?: DgramSocket;
  relay?: RelayClient;
}

const now = () => performance.timeOrigin + performance.now();

function key(): { priv: Uint8Array; pub: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return {
    priv: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32)),
    pub: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)),
  };
}

/** Member i's original IP (inside the bench token's 10.0.0.0/8) and loopback source address. */
export function originalIpOf(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}
function sourceIpOf(i: number): string {
  return `127.${10 + ((i >> 16) & 127)}.${(i >> 8) & 255}.${i & 255}`;
}

let init: WorkerInit;
const members: Member[] = [];
const probes = new Map<number, { p: Probe; times: Map<number, number> }>();
const abort = new AbortController();
// Every member's watch listens on it (one listener per long-poll in flight).
setMaxListeners(0, abort.signal);
let tick: NodeJS.Timeout | undefined;
let watchErrors = 0;
let firstWatchError: string | undefined;
let dispatcher: UndiciAgent | undefined;

function send(m: FromWorker): void {
  process.send!(m);
}

function holds(p: Probe, map: ReadonlyMap<string, Peer> | undefined, u?: PeerMapUpdate): boolean {
  if (p.publicKey !== undefined) {
    // Only what this answer brought (a full map: all of it), not a scan of the map per answer.
    const list = u ? (u.full ? u.peers.values() : u.upserts) : [];
    for (const e of list) if (e.publicKey === p.publicKey) return true;
    return false;
  }
  const e = map?.get(p.vip);
  if (p.kind === 'absent') return e === undefined;
  if (p.kind === 'present') return e !== undefined;
  return e !== undefined && e.tags.includes(p.tag!);
}

function check(m: Member, u: PeerMapUpdate): void {
  for (const { p, times } of probes.values()) {
    if (p.watchers !== m.role || times.has(m.i)) continue;
    if (holds(p, m.map, u)) times.set(m.i, now());
  }
}

async function joinAll(): Promise<void> {
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  await Promise.all(Array.from({ length: init.joinConcurrency }, async () => {
    while (next < members.length) {
      const m = members[next++];
      const t0 = performance.now();
      try {
        // A cursor-only join: the member's map comes with its stream's opening frame (watchAll).
        const j = await m.client.join({ privateKey: m.priv, publicKey: m.pub, token: init.tokens[m.role], originalIp: originalIpOf(m.i), hostname: `scale-${m.role}-${m.i}`, map: 'none' });
        lat.push(performance.now() - t0);
        m.vip = j.vip;
        m.session = j.sessionToken;
      } catch (err) {
        errors++;
        firstError ??= errorText(err);
      }
    }
  }));
  send({ type: 'joined', latencies: lat, errors, firstError });
}

/** An error as the run should print it: its code (EMFILE, EADDRNOTAVAIL, ...) and message, and its cause's. */
function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const one = (x: NodeJS.ErrnoException) => (x.code && !x.message.includes(x.code) ? `${x.code}: ${x.message}` : x.message);
  return e.cause ? `${one(e)} (cause: ${one(e.cause)})` : one(e);
}

/** Open every member's relay session; `perSecond` > 0 paces the starts (0: all at once). */
async function openSessions(timeoutMs: number, perSecond: number): Promise<void> {
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  let started = 0;
  // One timer for every member (an agent has one per relay client): HELLO retries, keepalives.
  tick = setInterval(() => { for (const m of members) m.relay?.tick(); }, 250);
  for (const m of members) {
    if (!m.vip) continue;
    if (perSecond > 0) {
      const due = t0 + (started++ * 1000) / perSecond;
      if (performance.now() < due) await new Promise((r) => setTimeout(r, due - performance.now()));
    }
    const r = init.relays[m.i % init.relays.length];
    let sock: DgramSocket;
    try {
      sock = await openDgramSocket({ host: sourceIpOf(m.i), port: 0 });
    } catch (err) {
      // EMFILE here is this process's fd limit (ulimit -n): the run prints it as what limits N.
      errors++;
      firstError ??= `UDP socket on ${sourceIpOf(m.i)}: ${errorText(err)}`;
      continue;
    }
    const relayAddr = parseAddr(r.ip);
    const rc = new RelayClient({
      staticPrivate: m.priv, staticPublic: m.pub, relayAddr, relayPort: r.port, vip: parseAddr(m.vip), socket: sock,
      clock: systemClock, logger: silentLogger(), tickMs: 0,
    });
    sock.onReceive((b) => {
      for (let k = 0; k < b.count; k++) if (b.addrs[k] === relayAddr && b.ports[k] === r.port) rc.handleFrame(b.data, b.offsets[k], b.lengths[k]);
    });
    m.sock = sock;
    m.relay = rc;
    rc.start();
  }
  const until = Date.now() + timeoutMs;
  let ready = 0;
  while (Date.now() < until) {
    ready = members.filter((m) => m.relay?.isReady).length;
    if (ready === members.filter((m) => m.relay).length) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  send({ type: 'sessions', ready, total: members.filter((m) => m.vip).length, errors, firstError });
}

function watchAll(): void {
  for (const m of members) {
    if (!m.session) continue;
    m.map = new Map();
    const loop = async () => {
      while (!abort.signal.aborted) {
        try {
          // The stream (opening frame: the full map; then frames). Frames' signatures are not
          // checked here (bench/README.md: CPU a real fleet spends on its own hosts); the opening
          // frame's is, and the real agent checks every frame.
          await m.client.watchPeers(m.session!, m.version, (u: PeerMapUpdate) => {
            m.map = u.peers;
            m.version = u.version;
            check(m, u);
          }, abort.signal, { initial: [...(m.map ?? new Map<string, Peer>()).values()], verifyFrames: false });
        } catch (err) {
          if (abort.signal.aborted) return;
          watchErrors++;
          firstWatchError ??= errorText(err);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    };
    void loop();
  }
  send({ type: 'watching' });
}

/**
 * One client per member (it keeps what its join answer told it), its requests split: joins
 * (/v1/challenge, /v1/join) to `joinUrl` (one of the two join coordinators), the rest (the watch,
 * leave, renewals) to `watchUrl` (any coordinator: they are stateless, all state is in Redis).
 */
function routed(joinUrl: string, watchUrl: string): typeof fetch {
  return ((url: string, i: RequestInit) => {
    const path = url.slice(joinUrl.length);
    const to = url.startsWith(joinUrl) && !/^\/v1\/(challenge|join)\b/.test(path) ? watchUrl + path : url;
    return undiciFetch(to, { ...i, dispatcher } as never);
  }) as unknown as typeof fetch;
}

process.on('message', (msg: ToWorker) => {
  void (async () => {
    switch (msg.cmd) {
      case 'init': {
        init = msg.init;
        // Connections: one per stream (each member holds one) plus joins in flight.
        // Bound to this worker's own loopback address: each (source, coordinator) pair has its own
        // ~28k ephemeral ports (bind-before-connect picks the port at bind time, per source address).
        dispatcher = new UndiciAgent({ localAddress: init.sourceIp, connections: null, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 120_000, headersTimeout: 0, bodyTimeout: 0 });
        const fetches = new Map<string, typeof fetch>();
        for (const { i, role } of init.members) {
          const k = key();
          const joinUrl = init.joinUrls[i % init.joinUrls.length];
          const watchUrl = init.coordUrls[i % init.coordUrls.length];
          let f = fetches.get(`${joinUrl} ${watchUrl}`);
          if (!f) fetches.set(`${joinUrl} ${watchUrl}`, f = routed(joinUrl, watchUrl));
          members.push({ i, role, ...k, client: new CoordinatorClient({ url: joinUrl, insecure: true, fetch: f, answers: { pinned: init.signingKey } }) });
        }
        send({ type: 'ready' });
        break;
      }
      case 'join': await joinAll(); break;
      case 'sessions': await openSessions(msg.timeoutMs, msg.perSecond); break;
      case 'watch': watchAll(); break;
      case 'probe': {
        const times = new Map<number, number>();
        probes.set(msg.probe.id, { p: msg.probe, times });
        send({ type: 'probe-ack', id: msg.probe.id });
        break;
      }
      case 'probe-result': {
        const pr = probes.get(msg.id);
        const times = pr ? [...pr.times.values()] : [];
        send({ type: 'probe-result', id: msg.id, times, of: members.filter((m) => m.session && pr && m.role === pr.p.watchers).length });
        break;
      }
      case 'stats': {
        let pingsSent = 0;
        let probesSent = 0;
        let pongs = 0;
        let ready = 0;
        let refusedAnswers = 0;
        for (const m of members) {
          pingsSent += m.relay?.stats.pingsSent ?? 0;
          probesSent += m.relay?.stats.probesSent ?? 0;
          pongs += m.relay?.stats.pongsReceived ?? 0;
          if (m.relay?.isReady) ready++;
          refusedAnswers += m.client.refusedAnswers;
        }
        send({ type: 'stats', at: now(), pingsSent, probesSent, pongs, ready, watchErrors, firstWatchError, refusedAnswers, rssMb: process.memoryUsage().rss / 2 ** 20 });
        break;
      }
      case 'stop': {
        abort.abort();
        if (tick) clearInterval(tick);
        for (const m of members) {
          m.relay?.stop();
          m.sock?.close();
        }
        await dispatcher?.destroy().catch(() => undefined);
        send({ type: 'stopped' });
        process.exit(0);
      }
    }
  })().catch((err: unknown) => {
    process.stderr.write(`scale worker: ${(err as Error).stack}\n`);
    process.exit(1);
  });
});
// The parent going away ends us too.
process.on('disconnect', () => process.exit(0));
