/**
 * WireGuard's per-peer timers (paper §6, wireguard-go device/timers.go) as a pure state
 * machine: the owner reports events, calls `poll(now)` when `nextDeadline()` passes (one
 * setTimeout per peer), and performs the returned actions. No I/O, no real timers.
 *
 * Timers (deadline = absolute clock.now() ms, or NONE):
 *   retransmitHandshake  armed by handshakeInitiated(): REKEY_TIMEOUT + jitter. Fires
 *                        'send-initiation' (a retry) until the attempts exceed
 *                        REKEY_ATTEMPT_TIME / REKEY_TIMEOUT - 2, then 'give-up' (flush
 *                        staged packets) and arms zeroKeyMaterial.
 *   sendKeepalive        armed by dataReceived() (KEEPALIVE_TIMEOUT) unless pending, cleared by
 *                        anyAuthenticatedPacketSent(); fires 'send-keepalive'.
 *   newHandshake         armed by dataSent() (KEEPALIVE + REKEY_TIMEOUT + jitter) unless
 *                        pending, cleared by anyAuthenticatedPacketReceived(); fires
 *                        'new-handshake' (we sent data and heard nothing back).
 *   zeroKeyMaterial      armed by sessionDerived() (REJECT_AFTER_TIME × 3); fires 'zero-keys'.
 *   persistentKeepalive  re-armed by anyAuthenticatedPacketTraversal() when the interval > 0;
 *                        fires 'persistent-keepalive'.
 *
 * Owner loop: `for (const a of timers.poll(now)) perform(a)`, where performing an action
 * reports its own events (sending an initiation calls anyAuthenticatedPacketTraversal,
 * anyAuthenticatedPacketSent, handshakeInitiated), then re-arm setTimeout at nextDeadline().
 *
 * Event contract (as wireguard-go calls them):
 *   dataSent                       after sending an authenticated data packet (not keepalive)
 *   dataReceived                   after receiving an authenticated data packet (not keepalive)
 *   anyAuthenticatedPacketSent     after sending keepalive, data or handshake
 *   anyAuthenticatedPacketReceived after receiving keepalive, data or handshake
 *   anyAuthenticatedPacketTraversal before sending / after receiving any of those
 *   handshakeInitiated             after sending an initiation
 *   handshakeComplete              after a response is processed, or on the first data
 *                                  message under a new responder keypair (key confirmation)
 *   sessionDerived                 when transport keys are derived (either side)
 *
 * Keypair policy, asked by the owner (wireguard-go send.go / receive.go):
 *   requestInitiation(isRetry)     before sending an initiation: a new handshake resets the
 *                                  attempts; false = rate limited, send nothing
 *   canSendWith / canReceiveWith   REJECT_AFTER_TIME and REJECT_AFTER_MESSAGES
 *   rekeyOnSend                    after sending (keepKeyFreshSending), with the current keypair
 *   rekeyOnReceive                 after receiving (keepKeyFreshReceiving), with the current keypair
 * A true rekey answer means: requestInitiation(false), and send if that allows it.
 */
import { systemClock, type Clock } from '../common';
import {
  KEEPALIVE_TIMEOUT_MS, REJECT_AFTER_TIME_MS, REKEY_AFTER_TIME_MS, REKEY_ATTEMPT_TIME_MS, REKEY_TIMEOUT_MS,
  REKEY_AFTER_MESSAGES,
} from './constants';
import { REJECT_AFTER_MESSAGES_NUM } from './replay';

/** Every duration the timers use; tests shorten them (e.g. rekeyAfterTimeMs to force a rekey). */
export interface TimerConfig {
  /** @default 120_000 */
  rekeyAfterTimeMs: number;
  /** @default 180_000 */
  rejectAfterTimeMs: number;
  /** @default 90_000 */
  rekeyAttemptTimeMs: number;
  /** @default 5_000 */
  rekeyTimeoutMs: number;
  /** @default 10_000 */
  keepaliveTimeoutMs: number;
  /** Upper bound (exclusive) of the random jitter added to handshake timers. @default 334 */
  rekeyTimeoutJitterMaxMs: number;
  /**
   * @default 2^60 (spec). Counters are exact JS numbers only below 2^53, where sending stops
   * (rejectAfterMessages), so with the defaults that limit comes first; tests lower this one.
   */
  rekeyAfterMessages: number;
  /** @default min(REJECT_AFTER_MESSAGES, 2^53) */
  rejectAfterMessages: number;
}

/** wireguard-go's RekeyTimeoutJitterMaxMs: an implementation constant, not in the paper. */
export const REKEY_TIMEOUT_JITTER_MAX_MS = 334;

export const DEFAULT_TIMER_CONFIG: Readonly<TimerConfig> = Object.freeze({
  rekeyAfterTimeMs: REKEY_AFTER_TIME_MS,
  rejectAfterTimeMs: REJECT_AFTER_TIME_MS,
  rekeyAttemptTimeMs: REKEY_ATTEMPT_TIME_MS,
  rekeyTimeoutMs: REKEY_TIMEOUT_MS,
  keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS,
  rekeyTimeoutJitterMaxMs: REKEY_TIMEOUT_JITTER_MAX_MS,
  rekeyAfterMessages: Number(REKEY_AFTER_MESSAGES),
  rejectAfterMessages: REJECT_AFTER_MESSAGES_NUM,
});

export const TimerAction = {
  SEND_INITIATION: 'send-initiation',
  GIVE_UP: 'give-up',
  SEND_KEEPALIVE: 'send-keepalive',
  NEW_HANDSHAKE: 'new-handshake',
  ZERO_KEYS: 'zero-keys',
  PERSISTENT_KEEPALIVE: 'persistent-keepalive',
} as const;
export type TimerAction = (typeof TimerAction)[keyof typeof TimerAction];

/** The keypair facts the predicates need (structurally satisfied by transport.ts Keypair). */
export interface KeypairAge {
  isInitiator: boolean;
  createdMs: number;
  sendCounter: number;
}

/**
 * Send side (wireguard-go keepKeyFreshSending): anyone rekeys once more than
 * REKEY_AFTER_MESSAGES were sent on the keypair, the initiator also once it is older than
 * REKEY_AFTER_TIME. Both comparisons are strict, as in the spec. `sendCounter` is the number of
 * messages sent so far (the next counter), like wireguard-go's sendNonce.
 */
export function shouldRekeyOnSend(kp: KeypairAge, nowMs: number, cfg: TimerConfig = DEFAULT_TIMER_CONFIG): boolean {
  return kp.sendCounter > cfg.rekeyAfterMessages || (kp.isInitiator && nowMs - kp.createdMs > cfg.rekeyAfterTimeMs);
}

/**
 * Receive side: the initiator's keypair is older than REJECT_AFTER_TIME − KEEPALIVE − REKEY_TIMEOUT,
 * so start a handshake before it must be rejected (only once: see TimerStateMachine.rekeyOnReceive).
 */
export function shouldRekeyOnReceive(kp: KeypairAge, nowMs: number, cfg: TimerConfig = DEFAULT_TIMER_CONFIG): boolean {
  return kp.isInitiator && nowMs - kp.createdMs > cfg.rejectAfterTimeMs - cfg.keepaliveTimeoutMs - cfg.rekeyTimeoutMs;
}

/** Send side: never seal with a keypair that sent REJECT_AFTER_MESSAGES or is REJECT_AFTER_TIME old. */
export function isKeypairExpired(kp: KeypairAge, nowMs: number, cfg: TimerConfig = DEFAULT_TIMER_CONFIG): boolean {
  return kp.sendCounter >= cfg.rejectAfterMessages || nowMs - kp.createdMs >= cfg.rejectAfterTimeMs;
}

/**
 * Receive side: drop transport messages under a keypair strictly older than REJECT_AFTER_TIME
 * (wireguard-go: created + RejectAfterTime before now). Received counters are bounded by the
 * replay window (replay.ts), not here.
 */
export function isKeypairExpiredForReceive(kp: Pick<KeypairAge, 'createdMs'>, nowMs: number, cfg: TimerConfig = DEFAULT_TIMER_CONFIG): boolean {
  return nowMs - kp.createdMs > cfg.rejectAfterTimeMs;
}

const NONE = Number.POSITIVE_INFINITY;

export interface TimerStateMachineOptions {
  /** Read only when an event or poll is called without `nowMs`. @default systemClock */
  clock?: Clock;
  /** Uniform in [0, 1), for jitter. @default Math.random */
  rng?: () => number;
  /** 0 disables. @default 0 */
  persistentKeepaliveMs?: number;
}

/**
 * One peer's timers. Every event takes an optional `nowMs` (default `clock.now()`), so an
 * owner that already read the clock for a packet passes it along.
 */
export class TimerStateMachine {
  readonly config: TimerConfig;
  persistentKeepaliveMs: number;
  /** Retries since the last completed handshake (wireguard-go handshakeAttempts). */
  handshakeAttempts = 0;
  /** clock.now() of the last completed handshake, or undefined. */
  lastHandshakeMs: number | undefined;
  /** clock.now() of the last initiation sent (rate limit: initiationAllowed). */
  lastInitiationSentMs: number | undefined;

  private retransmitHandshakeAt = NONE;
  private sendKeepaliveAt = NONE;
  private newHandshakeAt = NONE;
  private zeroKeyMaterialAt = NONE;
  private persistentKeepaliveAt = NONE;
  private needAnotherKeepalive = false;
  private rearmKeepaliveOnSend = false;
  private sentLastMinuteHandshake = false;
  private active = true;
  private readonly clock: Clock;
  private readonly rng: () => number;
  private readonly maxHandshakeRetries: number;

  constructor(config: Partial<TimerConfig> = {}, opts: TimerStateMachineOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.rng = opts.rng ?? Math.random;
    this.config = { ...DEFAULT_TIMER_CONFIG, ...config };
    this.persistentKeepaliveMs = opts.persistentKeepaliveMs ?? 0;
    this.maxHandshakeRetries = Math.floor(this.config.rekeyAttemptTimeMs / this.config.rekeyTimeoutMs) - 2;
  }

  private jitter(): number {
    return Math.floor(this.rng() * this.config.rekeyTimeoutJitterMaxMs);
  }

  dataSent(nowMs: number = this.clock.now()): void {
    if (this.active && this.newHandshakeAt === NONE) {
      this.newHandshakeAt = nowMs + this.config.keepaliveTimeoutMs + this.config.rekeyTimeoutMs + this.jitter();
    }
  }

  dataReceived(nowMs: number = this.clock.now()): void {
    if (!this.active) return;
    if (this.sendKeepaliveAt === NONE) this.sendKeepaliveAt = nowMs + this.config.keepaliveTimeoutMs;
    else this.needAnotherKeepalive = true;
  }

  anyAuthenticatedPacketSent(nowMs: number = this.clock.now()): void {
    if (!this.active) return;
    this.sendKeepaliveAt = NONE;
    if (this.rearmKeepaliveOnSend) {
      // 'send-keepalive' fired while more data had arrived: keep one more keepalive armed
      // past the one just sent (wireguard-go re-arms after SendKeepalive).
      this.rearmKeepaliveOnSend = false;
      this.sendKeepaliveAt = nowMs + this.config.keepaliveTimeoutMs;
    }
  }

  anyAuthenticatedPacketReceived(nowMs: number = this.clock.now()): void {
    if (this.active) this.newHandshakeAt = NONE;
  }

  anyAuthenticatedPacketTraversal(nowMs: number = this.clock.now()): void {
    if (this.active && this.persistentKeepaliveMs > 0) this.persistentKeepaliveAt = nowMs + this.persistentKeepaliveMs;
  }

  handshakeInitiated(nowMs: number = this.clock.now()): void {
    this.lastInitiationSentMs = nowMs;
    if (this.active) this.retransmitHandshakeAt = nowMs + this.config.rekeyTimeoutMs + this.jitter();
  }

  handshakeComplete(nowMs: number = this.clock.now()): void {
    if (this.active) this.retransmitHandshakeAt = NONE;
    this.handshakeAttempts = 0;
    this.sentLastMinuteHandshake = false;
    this.lastHandshakeMs = nowMs;
  }

  sessionDerived(nowMs: number = this.clock.now()): void {
    if (this.active) this.zeroKeyMaterialAt = nowMs + this.config.rejectAfterTimeMs * 3;
  }

  /**
   * A new (non-retry) initiation may be sent only REKEY_TIMEOUT after the previous one
   * (wireguard-go SendHandshakeInitiation). Retries from 'send-initiation' skip this check.
   */
  initiationAllowed(nowMs: number = this.clock.now()): boolean {
    return this.lastInitiationSentMs === undefined || nowMs - this.lastInitiationSentMs >= this.config.rekeyTimeoutMs;
  }

  /**
   * The owner wants to send an initiation: true if it should now. A new (non-retry) handshake
   * resets the attempt count, even when rate limited (wireguard-go SendHandshakeInitiation),
   * so the give-up after REKEY_ATTEMPT_TIME counts from the latest reason to handshake; it is
   * then sent only if initiationAllowed(). A retry (after 'send-initiation') is always sent and
   * keeps the count. After sending, the owner reports handshakeInitiated().
   */
  requestInitiation(isRetry: boolean, nowMs: number = this.clock.now()): boolean {
    if (isRetry) return true;
    this.handshakeAttempts = 0;
    return this.initiationAllowed(nowMs);
  }

  /** !isKeypairExpired under this peer's config. */
  canSendWith(kp: KeypairAge, nowMs: number = this.clock.now()): boolean {
    return !isKeypairExpired(kp, nowMs, this.config);
  }

  /** !isKeypairExpiredForReceive under this peer's config. */
  canReceiveWith(kp: Pick<KeypairAge, 'createdMs'>, nowMs: number = this.clock.now()): boolean {
    return !isKeypairExpiredForReceive(kp, nowMs, this.config);
  }

  /** shouldRekeyOnSend under this peer's config (pass the current keypair, after sending). */
  rekeyOnSend(kp: KeypairAge, nowMs: number = this.clock.now()): boolean {
    return shouldRekeyOnSend(kp, nowMs, this.config);
  }

  /** shouldRekeyOnReceive, at most once per handshake (wireguard-go sentLastMinuteHandshake). */
  rekeyOnReceive(kp: KeypairAge, nowMs: number = this.clock.now()): boolean {
    if (this.sentLastMinuteHandshake || !shouldRekeyOnReceive(kp, nowMs, this.config)) return false;
    this.sentLastMinuteHandshake = true;
    return true;
  }

  /** The earliest armed deadline (absolute ms), or undefined when nothing is armed. */
  nextDeadline(): number | undefined {
    const d = Math.min(this.retransmitHandshakeAt, this.sendKeepaliveAt, this.newHandshakeAt,
      this.zeroKeyMaterialAt, this.persistentKeepaliveAt);
    return d === NONE ? undefined : d;
  }

  /**
   * Fire every timer due at `nowMs`, in wireguard-go's order of concern, and return the
   * actions. Timers that fire are disarmed (or re-armed where wireguard-go re-arms them).
   */
  poll(nowMs: number = this.clock.now()): TimerAction[] {
    const actions: TimerAction[] = [];
    if (!this.active) return actions;
    if (this.retransmitHandshakeAt <= nowMs) {
      this.retransmitHandshakeAt = NONE;
      if (this.handshakeAttempts > this.maxHandshakeRetries) {
        this.sendKeepaliveAt = NONE;
        actions.push(TimerAction.GIVE_UP);
        if (this.zeroKeyMaterialAt === NONE) this.zeroKeyMaterialAt = nowMs + this.config.rejectAfterTimeMs * 3;
      } else {
        this.handshakeAttempts++;
        // The owner sends the retry and then calls handshakeInitiated(), which re-arms us.
        actions.push(TimerAction.SEND_INITIATION);
      }
    }
    if (this.sendKeepaliveAt <= nowMs) {
      this.sendKeepaliveAt = NONE;
      actions.push(TimerAction.SEND_KEEPALIVE);
      if (this.needAnotherKeepalive) {
        this.needAnotherKeepalive = false;
        // Armed now and again after the owner reports the keepalive as sent.
        this.sendKeepaliveAt = nowMs + this.config.keepaliveTimeoutMs;
        this.rearmKeepaliveOnSend = true;
      }
    }
    if (this.newHandshakeAt <= nowMs) {
      this.newHandshakeAt = NONE;
      actions.push(TimerAction.NEW_HANDSHAKE);
    }
    if (this.zeroKeyMaterialAt <= nowMs) {
      this.zeroKeyMaterialAt = NONE;
      actions.push(TimerAction.ZERO_KEYS);
    }
    if (this.persistentKeepaliveAt <= nowMs) {
      this.persistentKeepaliveAt = NONE;
      if (this.persistentKeepaliveMs > 0) actions.push(TimerAction.PERSISTENT_KEEPALIVE);
    }
    return actions;
  }

  /** Disarm everything (peer removed / device down); events are ignored until start(). */
  stop(): void {
    this.active = false;
    this.retransmitHandshakeAt = this.sendKeepaliveAt = this.newHandshakeAt = NONE;
    this.zeroKeyMaterialAt = this.persistentKeepaliveAt = NONE;
    this.needAnotherKeepalive = false;
    this.rearmKeepaliveOnSend = false;
  }

  start(): void {
    this.active = true;
  }
}
