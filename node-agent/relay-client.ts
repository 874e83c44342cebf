/**
 * The member side of the relay protocol (docs/PROTOCOL.md): authenticate to one relay,
 * keep the 4-tuple binding alive, frame outgoing WireGuard messages, unframe incoming ones.
 *
 * The agent owns the socket (shared with its WireGuard traffic) and hands every datagram
 * from the relay's address to `handleFrame`; control frames are consumed here, DATA frames
 * come back as a view of the inner WireGuard message. Outgoing: the agent leaves
 * RELAY_HEADER_LEN bytes of headroom, calls `writeDataHeader(buf, off, dstVip)` and sends
 * `buf[off .. off + 8 + wgLen]` to (relayAddr, relayPort).
 *
 * States: idle → authenticating (HELLO → CHALLENGE → AUTH → AUTH_OK, HELLO retried with
 * jittered exponential backoff) → ready → on REAUTH: authenticating at once. `deadAfterPings`
 * unanswered HELLOs, or the probe rule below, emit 'relay-dead' once; the client keeps trying
 * the same relay, failover is the agent's decision.
 *
 * Liveness while ready (in the spirit of WireGuard's passive keepalive and its "sent data,
 * heard nothing back" rule):
 *
 *   idle      nothing sent for `keepaliveMs` (10 s) → one PING. It keeps the relay session
 *             (idle expiry 3 keepalives) and the NAT/LB UDP state alive; DATA does the same,
 *             so a member that sends needs no keepalive PINGs at all.
 *   awaiting  traffic is in flight: we sent DATA or a PING, or DATA arrived (its sender may be
 *             waiting on us), and nothing has been heard from the relay since. PONG, or any
 *             other frame from the relay, ends it; DATA arriving starts a new wait.
 *   probing   awaiting for `probeAfterMs` (300 ms) → PING every `probeIntervalMs` (200 ms);
 *             `deadAfterPings` (3) PINGs unanswered → 'relay-dead'. With traffic in flight a
 *             dead relay is reported 0.9 s after the last frame heard from it (+ ≤ 2 ticks).
 *
 * Cost: a two-way flow (TCP and its ACKs, even a bulk upload whose peer only ACKs) hears the
 * relay all the time and sends no PING; a flow that pauses costs one PING; a one-way flow that
 * hears nothing back costs one PING per ~probeAfterMs; an idle member one PING per keepaliveMs.
 *
 * The hot path only sets a flag per DATA frame (`writeDataHeader`, `handleFrame`); `tick()`
 * turns the flags into times, so timings have the tick's granularity.
 *
 * Timers: one coarse interval calls `tick()`, which reads the injected clock; with
 * `tickMs: 0` tests drive `tick()` themselves.
 */
import { EventEmitter } from 'node:events';
import { type Clock, type Logger, type DatagramSocket, formatAddr } from '../common';
import { proveKey, FrameType, RELAY_HEADER_LEN, RELAY_OFFSET_PAYLOAD, RELAY_OFFSET_VIP, RELAY_PROOF_CONTEXT, RELAY_PROTOCOL_VERSION, decodeAuthFail, decodeAuthOk, decodeChallenge, decodePingSeq, encodeAuth, encodeHello, encodePing, isRelayFrameType, readU32, writeRelayHeader } from '../protocol';

export interface RelayClientInit {
  staticPrivate: Uint8Array;
  staticPublic: Uint8Array;
  /** relay IPv4 (host-order uint32) and UDP port */
  relayAddr: number;
  relayPort: number;
  /** the overlay address this member claims (must match the relay's directory) */
  vip: number;
  socket: DatagramSocket;
  clock: Clock;
  logger: Logger;
  /** Idle keepalive: a PING after this long without sending anything; the relay's advertised
   *  interval wins when shorter. @default DEFAULT_RELAY_CLIENT_TIMING.keepaliveMs */
  keepaliveMs?: number;
  /** Traffic in flight and nothing heard from the relay for this long → start probing.
   *  @default DEFAULT_RELAY_CLIENT_TIMING.probeAfterMs */
  probeAfterMs?: number;
  /** PING period while probing. @default DEFAULT_RELAY_CLIENT_TIMING.probeIntervalMs */
  probeIntervalMs?: number;
  /** Unanswered PINGs (or HELLOs) before 'relay-dead'. @default DEFAULT_RELAY_CLIENT_TIMING.deadAfterPings */
  deadAfterPings?: number;
  /** First HELLO retry delay, doubled per retry up to authRetryMaxMs. @default 500 */
  authRetryMinMs?: number;
  /** @default 30_000 */
  authRetryMaxMs?: number;
  /** Uniform [0, 1) source for the HELLO retry jitter (each delay is 50–100 % of the backoff,
   *  so members that lost their relay together do not retry in lockstep). @default Math.random */
  random?: () => number;
  /** Period of the internal timer calling tick(); 0 = no timer. @default 100 */
  tickMs?: number;
}

/** Liveness timing (see the file comment). */
export const DEFAULT_RELAY_CLIENT_TIMING = {
  /** 10 s: a third of the smallest common UDP state timeout on the path (Linux conntrack's
   *  30 s for a flow it has not seen replied; its `udp_timeout_stream` is 120 s, cloud NLBs
   *  120–350 s) and of the relay's idle expiry (3 × its advertised 10 s), so two lost PINGs
   *  in a row still lose nothing. */
  keepaliveMs: 10_000,
  /** Above a relay round trip plus a delayed ACK (≤ 200 ms on Linux), so a live flow rarely probes. */
  probeAfterMs: 300,
  probeIntervalMs: 200,
  deadAfterPings: 3,
} as const;

const NONE = -1;

export type RelayClientState = 'idle' | 'authenticating' | 'ready' | 'stopped';

/** A DATA frame's inner WireGuard message: `buf[offset .. offset + length]`. Reused per call. */
export interface RelayDataFrame {
  srcVip: number;
  offset: number;
  length: number;
}

export interface RelayReadyInfo {
  relayId: string;
  vip: number;
  keepaliveMs: number;
}

export interface RelayClientStats {
  authAttempts: number;
  authOk: number;
  authFailed: number;
  reauthReceived: number;
  /** every PING: idle keepalives plus probes */
  pingsSent: number;
  /** PINGs sent because traffic was in flight and the relay had gone quiet */
  probesSent: number;
  pongsReceived: number;
  unreachable: number;
  dataReceived: number;
  unknownFrames: number;
  /** last PING round trip, ms (NaN before the first PONG) */
  lastRttMs: number;
}

export interface RelayClient {
  on(event: 'ready', l: (info: RelayReadyInfo) => void): this;
  on(event: 'unreachable', l: (dstVip: number) => void): this;
  on(event: 'relay-dead', l: () => void): this;
  on(event: 'auth-failed', l: (reason: number) => void): this;
  once(event: 'ready', l: (info: RelayReadyInfo) => void): this;
  once(event: 'relay-dead', l: () => void): this;
  once(event: 'auth-failed', l: (reason: number) => void): this;
}

export class RelayClient extends EventEmitter {
  readonly relayAddr: number;
  readonly relayPort: number;
  readonly vip: number;
  state: RelayClientState = 'idle';
  relayId = '';
  readonly stats: RelayClientStats = {
    authAttempts: 0, authOk: 0, authFailed: 0, reauthReceived: 0, pingsSent: 0, probesSent: 0, pongsReceived: 0,
    unreachable: 0, dataReceived: 0, unknownFrames: 0, lastRttMs: NaN,
  };

  private readonly i: Required<Omit<RelayClientInit, 'logger'>>;
  private readonly log: Logger;
  private keepaliveMs: number;
  private backoffMs: number;
  private nextHelloAt = 0;
  private unansweredHellos = 0;
  private lastPingAt = 0;
  private pingSeq = 0;
  /** PINGs sent since anything was last heard from the relay */
  private pingsOutstanding = 0;
  /** a DATA frame was sent / received since the last tick (set per frame, no clock read) */
  private dataSent = false;
  private dataReceived = false;
  /** last time anything was sent to the relay (DATA or PING), at tick granularity */
  private lastSentAt = 0;
  /** since when traffic has been in flight with nothing heard from the relay; NONE when not */
  private awaitingSince = NONE;
  private deadReported = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly data: RelayDataFrame = { srcVip: 0, offset: 0, length: 0 };

  constructor(init: RelayClientInit) {
    super();
    this.i = {
      ...DEFAULT_RELAY_CLIENT_TIMING, authRetryMinMs: 500, authRetryMaxMs: 30_000, tickMs: 100, random: Math.random,
      ...definedOnly(init),
    } as Required<Omit<RelayClientInit, 'logger'>>;
    this.relayAddr = init.relayAddr >>> 0;
    this.relayPort = init.relayPort;
    this.vip = init.vip >>> 0;
    this.keepaliveMs = this.i.keepaliveMs;
    this.backoffMs = this.i.authRetryMinMs;
    this.log = init.logger.child({ relay: `${formatAddr(this.relayAddr)}:${this.relayPort}`, vip: formatAddr(this.vip) });
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  /** Begin authenticating (idempotent). */
  start(): void {
    if (this.state !== 'idle' && this.state !== 'stopped') return;
    if (this.i.tickMs > 0) {
      this.timer = setInterval(() => this.tick(), this.i.tickMs);
      this.timer.unref();
    }
    this.reauthenticate();
  }

  stop(): void {
    this.state = 'stopped';
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Write a DATA header for `dstVip` at `buf[off .. off + 8]`; the WireGuard message follows. */
  writeDataHeader(buf: Uint8Array, off: number, dstVip: number): number {
    this.dataSent = true;
    writeRelayHeader(buf, off, FrameType.DATA, dstVip);
    return RELAY_HEADER_LEN;
  }

  /**
   * Handle one datagram that came from the relay's address. Returns the inner WireGuard
   * message of a DATA frame (the same object every call), undefined for anything else.
   * Never throws.
   */
  handleFrame(buf: Uint8Array, off: number, len: number): RelayDataFrame | undefined {
    if (len < RELAY_HEADER_LEN || off + len > buf.length || !isRelayFrameType(buf[off])) {
      this.stats.unknownFrames++;
      return undefined;
    }
    const type = buf[off];
    if (type === FrameType.DATA) {
      if (len <= RELAY_HEADER_LEN) return undefined;
      this.stats.dataReceived++;
      this.dataReceived = true;
      this.data.srcVip = readU32(buf, off + RELAY_OFFSET_VIP);
      this.data.offset = off + RELAY_OFFSET_PAYLOAD;
      this.data.length = len - RELAY_HEADER_LEN;
      return this.data;
    }
    if (this.state === 'stopped') return undefined;
    const now = this.i.clock.now();
    this.unansweredHellos = 0;
    switch (type) {
      case FrameType.CHALLENGE: this.onChallenge(buf, off, len); break;
      case FrameType.AUTH_OK: this.onAuthOk(buf, off, len, now); break;
      case FrameType.AUTH_FAIL: this.onAuthFail(buf, off, len); break;
      case FrameType.PONG: this.onPong(buf, off, len, now); break;
      case FrameType.REAUTH:
        this.stats.reauthReceived++;
        if (this.state === 'ready') {
          this.log.info('relay asked to re-authenticate');
          this.reauthenticate();
        }
        break;
      case FrameType.UNREACHABLE:
        this.stats.unreachable++;
        if (this.state === 'ready') this.heard();
        this.emit('unreachable', readU32(buf, off + RELAY_OFFSET_VIP));
        break;
      default:
        this.stats.unknownFrames++;
    }
    return undefined;
  }

  /** Timers: HELLO retries, keepalive and probe PINGs, dead-relay detection. Called by the internal interval. */
  tick(): void {
    const now = this.i.clock.now();
    if (this.state === 'authenticating') {
      if (now < this.nextHelloAt) return;
      if (this.unansweredHellos >= this.i.deadAfterPings) this.reportDead();
      this.backoffMs = Math.min(this.backoffMs * 2, this.i.authRetryMaxMs);
      this.sendHello(now);
    } else if (this.state === 'ready') {
      if (this.dataReceived) {
        // The relay is alive, and the flow's other end may now be waiting on it.
        this.dataReceived = false;
        this.heard();
        this.awaitingSince = now;
      }
      if (this.dataSent) {
        this.dataSent = false;
        this.lastSentAt = now;
        if (this.awaitingSince === NONE) this.awaitingSince = now;
      }
      const probing = this.awaitingSince !== NONE && now - this.awaitingSince >= this.i.probeAfterMs;
      const due = probing ? now - this.lastPingAt >= this.i.probeIntervalMs : now - this.lastSentAt >= this.keepaliveMs;
      if (!due) return;
      if (this.pingsOutstanding >= this.i.deadAfterPings) {
        this.reportDead();
        this.reauthenticate();
        return;
      }
      if (probing) this.stats.probesSent++;
      this.sendPing(now);
    }
  }

  private sendPing(now: number): void {
    this.lastPingAt = now;
    this.lastSentAt = now;
    if (this.awaitingSince === NONE) this.awaitingSince = now;
    this.pingSeq = (this.pingSeq + 1) >>> 0;
    this.pingsOutstanding++;
    this.stats.pingsSent++;
    this.sendControl(encodePing(FrameType.PING, this.pingSeq));
  }

  /** Something came from the relay: it is alive, nothing is awaited any more. */
  private heard(): void {
    this.awaitingSince = NONE;
    this.pingsOutstanding = 0;
  }

  private reauthenticate(): void {
    this.state = 'authenticating';
    this.backoffMs = this.i.authRetryMinMs;
    this.sendHello(this.i.clock.now());
  }

  private sendHello(now: number): void {
    this.nextHelloAt = now + this.backoffMs - Math.floor(this.backoffMs * 0.5 * this.i.random());
    this.unansweredHellos++;
    this.stats.authAttempts++;
    this.sendControl(encodeHello(RELAY_PROTOCOL_VERSION));
  }

  private onChallenge(buf: Uint8Array, off: number, len: number): void {
    if (this.state !== 'authenticating') return;
    const c = decodeChallenge(buf, off, len);
    if (!c) return;
    const proof = proveKey(this.i.staticPrivate, this.i.staticPublic, c.ephemeralPublic, c.nonce, RELAY_PROOF_CONTEXT);
    this.sendControl(encodeAuth({
      version: RELAY_PROTOCOL_VERSION, claimedVip: this.vip, staticPublic: this.i.staticPublic,
      ephemeralPublic: c.ephemeralPublic, nonce: c.nonce, proof,
    }));
  }

  private onAuthOk(buf: Uint8Array, off: number, len: number, now: number): void {
    const ok = decodeAuthOk(buf, off, len);
    if (!ok || ok.vip !== this.vip) {
      this.log.warn({ got: ok ? formatAddr(ok.vip) : 'malformed' }, 'AUTH_OK for another overlay address, ignored');
      return;
    }
    const wasReady = this.state === 'ready';
    this.state = 'ready';
    this.relayId = ok.relayId;
    this.stats.authOk++;
    this.backoffMs = this.i.authRetryMinMs;
    this.keepaliveMs = ok.keepaliveSeconds > 0 ? Math.min(this.i.keepaliveMs, ok.keepaliveSeconds * 1000) : this.i.keepaliveMs;
    this.lastPingAt = now;
    this.lastSentAt = now;
    this.pingsOutstanding = 0;
    this.awaitingSince = NONE;
    this.dataSent = false;
    this.dataReceived = false;
    this.deadReported = false;
    if (wasReady) return;
    this.log.info({ relayId: ok.relayId, keepaliveMs: this.keepaliveMs }, 'authenticated to relay');
    this.emit('ready', { relayId: ok.relayId, vip: this.vip, keepaliveMs: this.keepaliveMs } satisfies RelayReadyInfo);
  }

  private onAuthFail(buf: Uint8Array, off: number, len: number): void {
    const reason = decodeAuthFail(buf, off, len);
    if (reason === undefined || this.state !== 'authenticating') return;
    this.stats.authFailed++;
    this.log.warn({ reason }, 'relay refused authentication');
    this.emit('auth-failed', reason);
  }

  private onPong(buf: Uint8Array, off: number, len: number, now: number): void {
    const seq = decodePingSeq(buf, off, len);
    if (seq === undefined || this.state !== 'ready') return;
    this.stats.pongsReceived++;
    this.heard();
    if (seq === this.pingSeq) this.stats.lastRttMs = now - this.lastPingAt;
  }

  private reportDead(): void {
    if (this.deadReported) return;
    this.deadReported = true;
    this.log.warn('relay not answering');
    this.emit('relay-dead');
  }

  private sendControl(frame: Buffer): void {
    this.i.socket.send(frame, 0, frame.length, this.relayAddr, this.relayPort);
    this.i.socket.flush();
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
