import test from 'ava';
import fc from 'fast-check';
import { ManualClock } from '../../../common/clock';
import {
  TimerStateMachine, DEFAULT_TIMER_CONFIG, TimerAction, shouldRekeyOnSend, shouldRekeyOnReceive, isKeypairExpired,
  isKeypairExpiredForReceive, type TimerConfig,
} from '../../../protocol/timers';

function make(opts: { rng?: () => number; config?: Partial<TimerConfig>; persistentKeepaliveMs?: number } = {}) {
  const clock = new ManualClock();
  const timers = new TimerStateMachine(opts.config, { clock, rng: opts.rng ?? (() => 0), persistentKeepaliveMs: opts.persistentKeepaliveMs });
  return { clock, timers };
}

/** Send an initiation the way the owner does (wireguard-go SendHandshakeInitiation). */
function sendInitiation(timers: TimerStateMachine): void {
  timers.anyAuthenticatedPacketTraversal();
  timers.anyAuthenticatedPacketSent();
  timers.handshakeInitiated();
}

test('defaults are the spec values', (t) => {
  t.is(DEFAULT_TIMER_CONFIG.rekeyAfterTimeMs, 120_000);
  t.is(DEFAULT_TIMER_CONFIG.rejectAfterTimeMs, 180_000);
  t.is(DEFAULT_TIMER_CONFIG.rekeyAttemptTimeMs, 90_000);
  t.is(DEFAULT_TIMER_CONFIG.rekeyTimeoutMs, 5_000);
  t.is(DEFAULT_TIMER_CONFIG.keepaliveTimeoutMs, 10_000);
  t.is(DEFAULT_TIMER_CONFIG.rekeyAfterMessages, 2 ** 60);
});

test('initiation retransmits every REKEY_TIMEOUT and gives up after REKEY_ATTEMPT_TIME', (t) => {
  const { clock, timers } = make();
  t.is(timers.nextDeadline(), undefined);
  sendInitiation(timers);
  let sent = 1;
  let gaveUpAt = -1;
  for (let guard = 0; guard < 100 && gaveUpAt < 0; guard++) {
    const d = timers.nextDeadline()!;
    t.deepEqual(timers.poll(d - 1), [], 'nothing before the deadline');
    clock.advance(d - clock.now());
    const actions = timers.poll();
    if (actions.includes(TimerAction.GIVE_UP)) gaveUpAt = clock.now();
    else { t.deepEqual(actions, [TimerAction.SEND_INITIATION]); sendInitiation(timers); sent++; }
  }
  t.is(sent, 18, 'MaxTimerHandshakes + 2 initiations in total, as wireguard-go');
  t.is(gaveUpAt, 90_000);
  // After giving up, the key material is zeroed REJECT_AFTER_TIME*3 later.
  t.is(timers.nextDeadline(), 90_000 + 540_000);
  clock.advance(540_000);
  t.deepEqual(timers.poll(), [TimerAction.ZERO_KEYS]);
  t.is(timers.nextDeadline(), undefined);
});

test('handshakeComplete cancels the retransmission and resets attempts', (t) => {
  const { clock, timers } = make();
  sendInitiation(timers);
  clock.advance(5000);
  t.deepEqual(timers.poll(), ['send-initiation']);
  sendInitiation(timers);
  t.is(timers.handshakeAttempts, 1);
  clock.advance(100);
  timers.handshakeComplete();
  timers.sessionDerived();
  t.is(timers.handshakeAttempts, 0);
  t.is(timers.lastHandshakeMs, 5100);
  t.is(timers.nextDeadline(), 5100 + 540_000, 'only zero-keys remains');
});

test('jitter comes from the injected rng', (t) => {
  const { timers } = make({ rng: () => 0.999 });
  timers.handshakeInitiated();
  t.is(timers.nextDeadline(), 5000 + 333);
  const b = make({ rng: () => 0.5 }).timers;
  b.dataSent();
  t.is(b.nextDeadline(), 15_000 + 167);
});

test('keepalive after receiving data without sending; cancelled by any send', (t) => {
  const { clock, timers } = make();
  timers.dataReceived();
  t.is(timers.nextDeadline(), 10_000);
  clock.advance(9_999);
  t.deepEqual(timers.poll(), []);
  clock.advance(1);
  t.deepEqual(timers.poll(), ['send-keepalive']);
  timers.anyAuthenticatedPacketSent();
  t.is(timers.nextDeadline(), undefined);

  timers.dataReceived();
  clock.advance(3000);
  timers.anyAuthenticatedPacketSent(); // we answered with data: no keepalive needed
  clock.advance(20_000);
  t.deepEqual(timers.poll(), []);
});

test('more data received while a keepalive is pending keeps one more keepalive armed', (t) => {
  const { clock, timers } = make();
  timers.dataReceived();
  clock.advance(1000);
  timers.dataReceived(); // needAnotherKeepalive
  clock.advance(9000);
  t.deepEqual(timers.poll(), ['send-keepalive']);
  timers.anyAuthenticatedPacketSent(); // the keepalive itself
  t.is(timers.nextDeadline(), 20_000);
  clock.advance(10_000);
  t.deepEqual(timers.poll(), ['send-keepalive']);
  timers.anyAuthenticatedPacketSent();
  t.is(timers.nextDeadline(), undefined);
});

test('new handshake when sent data gets no reply within KEEPALIVE + REKEY_TIMEOUT', (t) => {
  const { clock, timers } = make();
  timers.dataSent();
  clock.advance(5000);
  timers.dataSent(); // not re-armed while pending
  t.is(timers.nextDeadline(), 15_000);
  clock.advance(10_000);
  t.deepEqual(timers.poll(), ['new-handshake']);

  timers.dataSent();
  clock.advance(14_000);
  timers.anyAuthenticatedPacketReceived();
  clock.advance(10_000);
  t.deepEqual(timers.poll(), []);
});

test('persistent keepalive re-armed by every authenticated traversal', (t) => {
  const { clock, timers } = make({ persistentKeepaliveMs: 25_000 });
  timers.anyAuthenticatedPacketTraversal();
  clock.advance(20_000);
  timers.anyAuthenticatedPacketTraversal();
  clock.advance(24_999);
  t.deepEqual(timers.poll(), []);
  clock.advance(1);
  t.deepEqual(timers.poll(), ['persistent-keepalive']);
  const off = make().timers;
  off.anyAuthenticatedPacketTraversal();
  t.is(off.nextDeadline(), undefined);
});

test('explicit nowMs on events overrides the clock', (t) => {
  const timers = new TimerStateMachine({ keepaliveTimeoutMs: 1000 }, { rng: () => 0 });
  timers.dataReceived(50_000);
  t.is(timers.nextDeadline(), 51_000);
  t.deepEqual(timers.poll(50_999), []);
  t.deepEqual(timers.poll(51_000), ['send-keepalive']);
});

test('stop disarms everything and ignores events', (t) => {
  const { clock, timers } = make({ persistentKeepaliveMs: 1000 });
  timers.dataSent(); timers.dataReceived(); timers.sessionDerived(); timers.handshakeInitiated();
  timers.stop();
  t.is(timers.nextDeadline(), undefined);
  timers.dataSent();
  clock.advance(1e9);
  t.deepEqual(timers.poll(), []);
  timers.start();
  timers.dataSent();
  t.not(timers.nextDeadline(), undefined);
});

test('initiation rate limit', (t) => {
  const { clock, timers } = make();
  t.true(timers.initiationAllowed());
  sendInitiation(timers);
  clock.advance(4999);
  t.false(timers.initiationAllowed());
  clock.advance(1);
  t.true(timers.initiationAllowed());
});

test('rekey predicates, with defaults and a shortened config', (t) => {
  const kp = { isInitiator: true, createdMs: 1000, sendCounter: 5 };
  t.false(shouldRekeyOnSend(kp, 1000 + 120_000));
  t.true(shouldRekeyOnSend(kp, 1000 + 120_001));
  t.false(shouldRekeyOnSend({ ...kp, isInitiator: false }, 1e9), 'responder does not rekey on time');
  t.true(shouldRekeyOnSend({ ...kp, isInitiator: false, sendCounter: 2 ** 60 + 2 ** 10 }, 0));
  t.false(shouldRekeyOnReceive(kp, 1000 + 165_000));
  t.true(shouldRekeyOnReceive(kp, 1000 + 165_001));
  t.false(shouldRekeyOnReceive({ ...kp, isInitiator: false }, 1e9));
  t.false(isKeypairExpired(kp, 1000 + 179_999));
  t.true(isKeypairExpired(kp, 1000 + 180_000));
  t.true(isKeypairExpired({ ...kp, sendCounter: DEFAULT_TIMER_CONFIG.rejectAfterMessages }, 0));
  const fast: TimerConfig = { ...DEFAULT_TIMER_CONFIG, rekeyAfterTimeMs: 3000 };
  t.true(shouldRekeyOnSend(kp, 4001, fast));
  const { timers } = make({ config: { rekeyAfterTimeMs: 3000, rejectAfterTimeMs: 20_000 } });
  t.is(timers.config.rekeyAfterTimeMs, 3000);
  t.true(timers.rekeyOnReceive(kp, 1000 + 5_001), '20s - 10s - 5s');
  t.false(timers.rekeyOnReceive(kp, 1000 + 6_000), 'only once until the handshake completes');
  timers.handshakeComplete();
  t.true(timers.rekeyOnReceive(kp, 1000 + 6_000));
});

test('message-count rekey: strictly more than REKEY_AFTER_MESSAGES sent, either side', (t) => {
  const R = DEFAULT_TIMER_CONFIG.rekeyAfterMessages;
  for (const isInitiator of [true, false]) {
    const kp = { isInitiator, createdMs: 0, sendCounter: R };
    t.false(shouldRekeyOnSend(kp, 1), 'exactly REKEY_AFTER_MESSAGES sent');
    t.true(shouldRekeyOnSend({ ...kp, sendCounter: 2 ** 61 }, 1));
  }
  const cfg: TimerConfig = { ...DEFAULT_TIMER_CONFIG, rekeyAfterMessages: 1000 };
  t.false(shouldRekeyOnSend({ isInitiator: false, createdMs: 0, sendCounter: 1000 }, 1, cfg));
  t.true(shouldRekeyOnSend({ isInitiator: false, createdMs: 0, sendCounter: 1001 }, 1, cfg));
  const { timers } = make({ config: { rekeyAfterMessages: 1000 } });
  t.false(timers.rekeyOnSend({ isInitiator: true, createdMs: 0, sendCounter: 1000 }, 1));
  t.true(timers.rekeyOnSend({ isInitiator: true, createdMs: 0, sendCounter: 1001 }, 1));
  t.true(timers.rekeyOnSend({ isInitiator: true, createdMs: 0, sendCounter: 0 }, 120_001), 'time, under the config');
});

test('reject limits: sending stops at REJECT_AFTER_TIME (>=), receiving only after it (>)', (t) => {
  const kp = { isInitiator: true, createdMs: 1000, sendCounter: 0 };
  const { timers } = make();
  t.true(timers.canSendWith(kp, 1000 + 179_999));
  t.false(timers.canSendWith(kp, 1000 + 180_000));
  t.false(timers.canSendWith({ ...kp, sendCounter: DEFAULT_TIMER_CONFIG.rejectAfterMessages }, 1000));
  t.true(timers.canSendWith({ ...kp, sendCounter: DEFAULT_TIMER_CONFIG.rejectAfterMessages - 1 }, 1000));
  t.false(isKeypairExpiredForReceive(kp, 1000 + 180_000));
  t.true(timers.canReceiveWith(kp, 1000 + 180_000));
  t.true(isKeypairExpiredForReceive(kp, 1000 + 180_001));
  t.false(timers.canReceiveWith(kp, 1000 + 180_001));
  t.true(make({ config: { rejectAfterTimeMs: 20_000 } }).timers.canSendWith(kp, 1000 + 19_999));
  t.false(make({ config: { rejectAfterTimeMs: 20_000 } }).timers.canReceiveWith(kp, 1000 + 20_001));
});

test('requestInitiation: a new handshake resets the attempts (even when rate limited); a retry keeps them and is never rate limited', (t) => {
  const { clock, timers } = make();
  t.true(timers.requestInitiation(false));
  sendInitiation(timers);
  for (let i = 0; i < 3; i++) {
    clock.advance(timers.nextDeadline()! - clock.now());
    t.deepEqual(timers.poll(), [TimerAction.SEND_INITIATION]);
    t.true(timers.requestInitiation(true), 'retries are sent');
    sendInitiation(timers);
  }
  t.is(timers.handshakeAttempts, 3);
  clock.advance(1000);
  t.false(timers.requestInitiation(false), 'within REKEY_TIMEOUT of the last initiation: not sent');
  t.is(timers.handshakeAttempts, 0, 'but the attempts count from zero again');
  clock.advance(4000);
  t.true(timers.requestInitiation(false));
  // The give-up now comes MaxTimerHandshakes + 1 retries later.
  sendInitiation(timers);
  let retries = 0;
  for (;;) {
    clock.advance(timers.nextDeadline()! - clock.now());
    const actions = timers.poll();
    if (actions.includes(TimerAction.GIVE_UP)) break;
    t.true(timers.requestInitiation(true));
    sendInitiation(timers);
    retries++;
  }
  t.is(retries, 17);
});

test('random event sequences: poll fires exactly at nextDeadline, never before', (t) => {
  const events = ['dataSent', 'dataReceived', 'anyAuthenticatedPacketSent', 'anyAuthenticatedPacketReceived',
    'anyAuthenticatedPacketTraversal', 'handshakeInitiated', 'handshakeComplete', 'sessionDerived'] as const;
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.constantFrom(...events), fc.nat(30_000)), { minLength: 1, maxLength: 60 }),
    fc.double({ min: 0, max: 0.999, noNaN: true }),
    (steps, r) => {
      const { clock, timers } = make({ rng: () => r, persistentKeepaliveMs: 7_000 });
      for (const [ev, wait] of steps) {
        timers[ev]();
        const target = clock.now() + wait;
        // Walk deadlines up to target: nothing may fire strictly before a deadline.
        for (let d = timers.nextDeadline(); d !== undefined && d <= target; d = timers.nextDeadline()) {
          if (d < clock.now()) return false;
          if (d > clock.now() && timers.poll(d - 1).length !== 0) return false;
          clock.advance(d - clock.now());
          if (timers.poll().length === 0) return false;
          const after = timers.nextDeadline();
          if (after !== undefined && after <= clock.now()) return false;
        }
        clock.advance(target - clock.now());
      }
      return true;
    }), { numRuns: 500 });
  t.pass();
});
