/**
 * The relay: wires the session table, the forwarder (hot path), the control handler (auth,
 * keepalive) and timers (idle expiry, challenge rotation, stats log) onto one DatagramSocket.
 *
 *   const relay = createRelay({ id: 'r1' })({ logger, clock, socket, directory })
 *   relay.start() ... relay.stats() ... relay.stop()
 */
import { hostname } from 'node:os';
import { type Clock, type Logger, type DatagramSocket, formatAddr } from '../common';
import { ChallengeIssuer } from './challenge';
import { ControlHandlerImpl, type SessionListener } from './control';
import { FastPath } from './fast-path';
import { Forwarder } from './forward';
import type { MemberDirectory } from './member-directory';
import type { Mesh } from './mesh';
import { HeldPort } from './policy-held';
import { PolicyGate, type PolicyGateInit } from './policy-gate';
import type { PolicySource } from './policy-source';
import { RateLimiter, WorkLimiter } from './rate-limit';
import { SessionTable, type Session } from './session-table';
import { RelayStats, type RelayStatsSnapshot } from './stats';

export interface RelayInit {
  /** Relay id sent in AUTH_OK and logs. @default `${hostname()}:${socket port}` */
  id?: string;
  /** Keepalive interval advertised to members, seconds. @default 10 */
  keepaliveSeconds?: number;
  /** A session with no frame for this many keepalive intervals is unbound. @default 3 */
  idleIntervals?: number;
  /** Challenge key rotation, ms (a challenge lives 1-2 rotations). @default 10_000 */
  challengeRotateMs?: number;
  /** Minimum interval between REAUTH/UNREACHABLE replies to one 4-tuple/destination, ms. @default 1000 */
  replyIntervalMs?: number;
  /** Global REAUTH/UNREACHABLE replies per second. @default 200 */
  replyPerSecond?: number;
  /** AUTHs waiting for the directory at once. @default 1024 */
  maxPendingAuth?: number;
  /** AUTH proof checks (an X25519 each, ~1 ms in JS) per second per source IP. @default 50 */
  authPerIpPerSecond?: number;
  /** AUTH proof checks per second for the whole relay. @default 300 */
  authPerSecond?: number;
  /** Housekeeping timer period, ms. @default 1000 */
  tickMs?: number;
  /** Log a stats line this often, ms; 0 = never. @default 0 */
  statsLogIntervalMs?: number;
  /** How often sessionListener.refresh() runs, ms. @default 10_000 */
  sessionRefreshMs?: number;
  /** Access policy cache bounds (with a `policy` component). @default see PolicyGateInit */
  policy?: PolicyGateInit;
  /**
   * Forward local DATA in the native addon, before JS (fast-path.ts), when the socket has it
   * (the native UDP socket; node:dgram has not). Off: every frame through the JS forwarder.
   * @default true
   */
  fastPath?: boolean;
}

export const DEFAULT_RELAY_OPTIONS = {
  keepaliveSeconds: 10,
  idleIntervals: 3,
  challengeRotateMs: 10_000,
  replyIntervalMs: 1000,
  replyPerSecond: 200,
  maxPendingAuth: 1024,
  authPerIpPerSecond: 50,
  authPerSecond: 300,
  tickMs: 1000,
  statsLogIntervalMs: 0,
  sessionRefreshMs: 10_000,
  policy: {},
  fastPath: true,
} as const;

export interface RelayComponents {
  logger: Logger;
  clock: Clock;
  socket: DatagramSocket;
  directory: MemberDirectory;
  /** Told about binds and unbinds (the Redis `session:<vip>` writer plugs in here). */
  sessionListener?: SessionListener;
  /** The relay mesh (cluster behind a VIP); started and stopped with the relay. */
  mesh?: Mesh;
  /** The access policy and members' tags (policy-gate.ts); without it the relay forwards between any members. */
  policy?: PolicySource;
}

export interface SessionInfo {
  vip: string;
  udpAddr: string;
  publicKey: string;
  since: number;
  lastSeen: number;
}

export interface Relay {
  readonly id: string;
  /** Attach to the socket and start the housekeeping timer. */
  start(): void;
  /** Stop timers and ignore further datagrams. The socket is the caller's to close. */
  stop(): void;
  stats(): RelayStatsSnapshot;
  sessions(): SessionInfo[];
  /** Housekeeping now (idle expiry, challenge rotation); the timer calls this every tickMs. */
  tick(): void;
  /** Unbind a member the coordinator removed; false if it had no session here. */
  removeMember(vip: number): boolean;
  /**
   * Re-assert every live session to the session listener now instead of at the next
   * `sessionRefreshMs` (Redis came back, or a Sentinel failover promoted a replica that may
   * lack the newest records).
   */
  refreshSessions(): void;
  /**
   * Settles when start() has loaded the access policy (at once without a `policy` component);
   * rejects if it could not be read. Until then DATA between members is dropped as 'policy-pending'.
   */
  policyReady(): Promise<void>;
  /** Rules of the access policy in force: -1 none set (or no `policy` component). */
  policyRules(): number;
}

export function createRelay(init: RelayInit = {}): (c: RelayComponents) => Relay {
  return (c) => new RelayImpl(init, c);
}

class RelayImpl implements Relay {
  readonly id: string;
  private readonly opts: Required<Omit<RelayInit, 'id'>>;
  private readonly table = new SessionTable();
  private readonly counters = new RelayStats();
  private readonly challenges: ChallengeIssuer;
  private readonly forwarder: Forwarder;
  private readonly gate: PolicyGate | undefined;
  /** the C mirror that forwards local DATA before JS; undefined when off or not native */
  private readonly fast: FastPath | undefined;
  private policyLoad: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastStatsLog: number;
  private lastRefresh: number;
  private readonly log: Logger;

  constructor(init: RelayInit, private readonly c: RelayComponents) {
    this.opts = { ...DEFAULT_RELAY_OPTIONS, ...stripUndefined(init) };
    this.id = init.id ?? `${hostname()}:${c.socket.localAddress.port}`;
    this.log = c.logger.child({ relay: this.id });
    const now = c.clock.now();
    this.lastStatsLog = now;
    this.lastRefresh = now;
    this.challenges = new ChallengeIssuer(now, { rotateMs: this.opts.challengeRotateMs });
    const replyLimiter = new RateLimiter(now, { intervalMs: this.opts.replyIntervalMs, perSecond: this.opts.replyPerSecond });
    const nowFn = (): number => c.clock.now();
    let forwarder: Forwarder | undefined;
    const fast = this.opts.fastPath ? FastPath.open(c.socket) : undefined;
    this.fast = fast;
    this.table.setMirror(fast);
    if (fast && !c.policy) fast.policyOff();
    const gate = c.policy ? new PolicyGate(this.opts.policy, {
      source: c.policy, sessions: this.table, stats: this.counters, log: this.log, mirror: fast,
      rerun: (f) => {
        if (this.closed) return;
        if (f.port === HeldPort.MESH) c.mesh?.rerun(f.buf, f.addr, f.udpPort);
        else forwarder!.rerun(f.buf, f.addr, f.udpPort);
      },
    }) : undefined;
    this.gate = gate;
    const control = new ControlHandlerImpl({
      sessions: this.table, socket: c.socket, stats: this.counters, challenges: this.challenges,
      directory: c.directory, policy: gate, log: this.log, listener: c.sessionListener, relayId: this.id,
      keepaliveSeconds: this.opts.keepaliveSeconds, maxPendingAuth: this.opts.maxPendingAuth, now: nowFn,
      authLimiter: new WorkLimiter(now, {
        perKeyPerSecond: this.opts.authPerIpPerSecond, perKeyBurst: 2 * this.opts.authPerIpPerSecond,
        globalPerSecond: this.opts.authPerSecond, globalBurst: this.opts.authPerSecond,
      }),
      // Its own limiter: an AUTH_FAIL must not use up the REAUTH/UNREACHABLE allowance of a 4-tuple.
      replyLimiter: new RateLimiter(now, { intervalMs: this.opts.replyIntervalMs, perSecond: this.opts.replyPerSecond }),
      isClosed: () => this.closed, sendReauth: (a, p, n) => forwarder!.sendReauth(a, p, n),
    });
    forwarder = new Forwarder({
      sessions: this.table, socket: c.socket, stats: this.counters, replyLimiter, control: control.handle, now: nowFn,
      mesh: c.mesh, policy: gate,
    });
    c.mesh?.attach({ sessions: this.table, memberSocket: c.socket, stats: this.counters, policy: gate });
    this.forwarder = forwarder;
  }

  start(): void {
    this.closed = false;
    this.c.socket.onReceive((batch) => {
      if (!this.closed) this.forwarder.onBatch(batch);
    });
    this.timer = setInterval(() => this.tick(), this.opts.tickMs);
    this.timer.unref();
    this.fast?.enable(true);
    this.c.mesh?.start();
    if (this.gate) {
      this.policyLoad = this.gate.start();
      this.policyLoad.catch((err: Error) => this.log.error({ err: err.message }, 'cannot read the access policy'));
    }
    const a = this.c.socket.localAddress;
    this.log.info({ udpAddr: `${a.ip}:${a.port}`, keepaliveSeconds: this.opts.keepaliveSeconds, fastPath: this.fast !== undefined }, 'relay started');
  }

  stop(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.fast?.enable(false);
    this.c.mesh?.stop();
    this.gate?.stop();
    for (const s of this.table.sessions()) this.c.sessionListener?.sessionDown?.(s, 'closed');
    this.table.clear();
    this.log.info(this.stats(), 'relay stopped');
  }

  /** The coordinator removed this member: drop its binding now, so nothing more is forwarded
   *  for it. Its next frame gets REAUTH, and its AUTH fails because its key is gone. */
  removeMember(vip: number): boolean {
    const s = this.table.unbindVip(vip);
    if (!s) return false;
    this.log.info({ vip: formatAddr(vip), udpAddr: `${formatAddr(s.addr)}:${s.port}` }, 'member removed by the coordinator: unbound');
    this.c.sessionListener?.sessionDown?.(s, 'removed');
    return true;
  }

  policyReady(): Promise<void> {
    return this.policyLoad;
  }

  refreshSessions(): void {
    if (!this.c.sessionListener?.refresh || this.closed) return;
    this.lastRefresh = this.c.clock.now();
    this.c.sessionListener.refresh(this.table.sessions());
  }

  policyRules(): number {
    return this.gate?.rules ?? -1;
  }

  tick(): void {
    const now = this.c.clock.now();
    this.challenges.rotate(now);
    this.gate?.tick(now);
    const idleMs = this.opts.keepaliveSeconds * 1000 * this.opts.idleIntervals;
    this.markSeen(now);
    for (const s of this.table.expire(now, idleMs)) {
      this.log.info({ vip: formatAddr(s.vip), udpAddr: `${formatAddr(s.addr)}:${s.port}` }, 'member session expired');
      this.c.sessionListener?.sessionDown?.(s, 'expired');
    }
    if (now - this.lastRefresh >= this.opts.sessionRefreshMs) this.refreshSessions();
    if (this.opts.statsLogIntervalMs > 0 && now - this.lastStatsLog >= this.opts.statsLogIntervalMs) {
      this.lastStatsLog = now;
      this.log.info(this.stats(), 'relay stats');
    }
  }

  stats(): RelayStatsSnapshot {
    const s = this.counters.snapshot(this.table.size);
    if (this.fast) {
      // What C forwarded or refused never reached the JS counters.
      const f = this.fast.stats;
      s.framesReceived += f.forwarded + f.policyDrops;
      s.framesForwarded += f.forwarded;
      s.bytesForwarded += f.bytes;
      s.drops.policy += f.policyDrops;
      s.dropped += f.policyDrops;
    }
    return s;
  }

  /** Senders whose frames C handled since the last call were seen by now (a tick's precision). */
  private markSeen(now: number): void {
    this.fast?.drainSeen((vip) => {
      const s = this.table.byOverlay(vip);
      if (s) s.lastSeen = now;
    });
  }

  sessions(): SessionInfo[] {
    this.markSeen(this.c.clock.now());
    return [...this.table.sessions()].map((s: Session) => ({
      vip: formatAddr(s.vip), udpAddr: `${formatAddr(s.addr)}:${s.port}`,
      publicKey: Buffer.from(s.publicKey).toString('base64'), since: s.since, lastSeen: s.lastSeen,
    }));
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
