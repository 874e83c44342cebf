import test from 'ava';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { ManualClock } from '../../../common/clock';
import { silentLogger } from '../../../common/logger';
import { RelayClient } from '../../../node-agent/relay-client';
import { ChallengeIssuer } from '../../../relay/challenge';
import {
  AuthFailReason, FrameType, decodeAuth, decodePingSeq, encodeAuthFail, encodeAuthOk, encodeChallenge, encodeHeaderOnly,
  encodePing, writeRelayHeader,
} from '../../../protocol/relay-frame';
import { MemorySocket } from './memory-socket';

const RELAY = { addr: 0x0a000009, port: 7000 };
const VIP = 0x64400005;

function setup(opts: { keepaliveMs?: number; probeAfterMs?: number; probeIntervalMs?: number } = {}) {
  const clock = new ManualClock();
  const socket = new MemorySocket();
  const kp = nacl.box.keyPair();
  const client = new RelayClient({
    staticPrivate: kp.secretKey, staticPublic: kp.publicKey, relayAddr: RELAY.addr, relayPort: RELAY.port, vip: VIP,
    socket, clock, logger: silentLogger(), keepaliveMs: opts.keepaliveMs ?? 1000, authRetryMinMs: 100, authRetryMaxMs: 800, tickMs: 0,
    probeAfterMs: opts.probeAfterMs, probeIntervalMs: opts.probeIntervalMs, random: () => 0,
  });
  const feed = (f: Buffer) => client.handleFrame(f, 0, f.length);
  const sentTypes = () => socket.sent.map((s) => s.buf[0]);
  return { clock, socket, client, kp, feed, sentTypes };
}

/** Drive the client to ready with a real challenge issuer; returns the issuer. */
function authenticate(s: ReturnType<typeof setup>) {
  const issuer = new ChallengeIssuer(s.clock.now());
  s.client.start();
  const c = issuer.issue(1, 2, s.clock.now());
  s.feed(encodeChallenge(c));
  const authFrame = s.socket.sent.at(-1)!.buf;
  const a = decodeAuth(authFrame, 0, authFrame.length)!;
  if (issuer.verify(a.ephemeralPublic, a.nonce, a.staticPublic, a.proof, 1, 2, s.clock.now()) !== 'ok') throw new Error('proof');
  s.feed(encodeAuthOk({ version: 1, vip: VIP, keepaliveSeconds: 10, relayId: 'r9' }));
  return issuer;
}

test('HELLO → CHALLENGE → AUTH (valid proof, claimed vip) → AUTH_OK → ready', (t) => {
  const s = setup();
  let ready = 0;
  s.client.on('ready', (info) => { ready++; t.is(info.relayId, 'r9'); t.is(info.keepaliveMs, 1000); });
  authenticate(s);
  t.deepEqual(s.sentTypes(), [FrameType.HELLO, FrameType.AUTH]);
  t.true(s.socket.sent.every((x) => x.addr === RELAY.addr && x.port === RELAY.port));
  const auth = decodeAuth(s.socket.sent[1].buf, 0, s.socket.sent[1].buf.length)!;
  t.is(auth.claimedVip, VIP);
  t.true(s.client.isReady);
  t.is(ready, 1);
});

test('HELLO is retried with doubling backoff, capped, and unanswered HELLOs report the relay dead once', (t) => {
  const s = setup();
  let dead = 0;
  s.client.on('relay-dead', () => dead++);
  s.client.start();
  const times: number[] = [];
  for (let ms = 0; ms <= 4000; ms += 10) {
    const before = s.socket.sent.length;
    s.client.tick();
    if (s.socket.sent.length > before) times.push(s.clock.now());
    s.clock.advance(10);
  }
  t.deepEqual(times.slice(0, 5), [100, 300, 700, 1500, 2300]);
  t.true(s.sentTypes().every((x) => x === FrameType.HELLO));
  t.is(dead, 1);
});

test('HELLO retry delays are jittered down by at most a half', (t) => {
  const clock = new ManualClock();
  const socket = new MemorySocket();
  const kp = nacl.box.keyPair();
  const client = new RelayClient({
    staticPrivate: kp.secretKey, staticPublic: kp.publicKey, relayAddr: RELAY.addr, relayPort: RELAY.port, vip: VIP,
    socket, clock, logger: silentLogger(), authRetryMinMs: 1000, tickMs: 0, random: () => 0.999,
  });
  client.start();
  for (let ms = 0; ms < 501; ms++) { client.tick(); clock.advance(1); }
  t.is(socket.sent.length, 1, 'not before 501 ms');
  client.tick();
  t.is(socket.sent.length, 2, 'the first retry came after 501 ms, not 1000');
});

test('keepalive PINGs; PONG clears them; unanswered PINGs → relay-dead and re-authentication', (t) => {
  const s = setup();
  authenticate(s);
  let dead = 0;
  s.client.on('relay-dead', () => dead++);
  s.socket.sent = [];
  s.clock.advance(1000);
  s.client.tick();
  t.deepEqual(s.sentTypes(), [FrameType.PING]);
  const seq = decodePingSeq(s.socket.sent[0].buf, 0, 12)!;
  s.clock.advance(7);
  s.feed(encodePing(FrameType.PONG, seq));
  t.is(s.client.stats.lastRttMs, 7);
  for (let i = 0; i < 3; i++) { s.clock.advance(1000); s.client.tick(); }
  t.is(dead, 0);
  s.clock.advance(1000);
  s.client.tick();
  t.is(dead, 1);
  t.false(s.client.isReady);
  t.is(s.sentTypes().at(-1), FrameType.HELLO);
});

test('REAUTH makes a ready client re-authenticate at once', (t) => {
  const s = setup();
  authenticate(s);
  s.socket.sent = [];
  s.feed(encodeHeaderOnly(FrameType.REAUTH, 0));
  t.false(s.client.isReady);
  t.deepEqual(s.sentTypes(), [FrameType.HELLO]);
  s.feed(encodeHeaderOnly(FrameType.REAUTH, 0));
  t.is(s.socket.sent.length, 1, 'a second REAUTH while authenticating does not add a HELLO');
});

test('DATA frames come back as a view with the source vip; header writing; UNREACHABLE and AUTH_FAIL events', (t) => {
  const s = setup();
  authenticate(s);
  const f = Buffer.alloc(8 + 40, 0xcd);
  writeRelayHeader(f, 0, FrameType.DATA, 0x64400009);
  const d = s.feed(f)!;
  t.deepEqual({ ...d }, { srcVip: 0x64400009, offset: 8, length: 40 });
  const out = Buffer.alloc(20, 0xee);
  t.is(s.client.writeDataHeader(out, 4, 0x01020304), 8);
  t.deepEqual([...out.subarray(4, 12)], [0x10, 0, 0, 0, 1, 2, 3, 4]);
  t.is(out[3], 0xee);
  const unreachable: number[] = [];
  s.client.on('unreachable', (v) => unreachable.push(v));
  s.feed(encodeHeaderOnly(FrameType.UNREACHABLE, 0x64400077));
  t.deepEqual(unreachable, [0x64400077]);

  const s2 = setup();
  const fails: number[] = [];
  s2.client.on('auth-failed', (r) => fails.push(r));
  s2.client.start();
  s2.feed(encodeAuthFail(AuthFailReason.UNKNOWN_KEY));
  t.deepEqual(fails, [AuthFailReason.UNKNOWN_KEY]);
});

test('AUTH_OK for another vip is ignored', (t) => {
  const s = setup();
  s.client.start();
  s.feed(encodeAuthOk({ version: 1, vip: VIP + 1, keepaliveSeconds: 10, relayId: 'x' }));
  t.false(s.client.isReady);
});

test('random frames never make handleFrame throw', (t) => {
  const s = setup();
  s.client.start();
  fc.assert(fc.property(fc.uint8Array({ maxLength: 160 }), fc.integer({ min: 0x10, max: 0x1f }), fc.nat(4), (b, ty, off) => {
    const buf = new Uint8Array(b.length + off);
    buf.set(b, off);
    if (b.length > 0 && b[0] & 1) buf[off] = ty;
    s.client.handleFrame(buf, off, b.length);
    s.client.handleFrame(buf, 0, buf.length + 3);
    return true;
  }), { numRuns: 5000 });
  t.pass();
});

/** Tick every `step` ms for `ms`, feeding PONGs when `pong` says so; the times PINGs left. */
function run(s: ReturnType<typeof setup>, ms: number, o: { step?: number; pong?: boolean; each?: (now: number) => void } = {}): number[] {
  const pings: number[] = [];
  const step = o.step ?? 100;
  for (let i = 0; i < ms; i += step) {
    s.clock.advance(step);
    o.each?.(s.clock.now());
    const before = s.socket.sent.length;
    s.client.tick();
    for (const x of s.socket.sent.slice(before)) {
      if (x.buf[0] !== FrameType.PING) continue;
      pings.push(s.clock.now());
      if (o.pong) s.feed(encodePing(FrameType.PONG, decodePingSeq(x.buf, 0, x.buf.length)!));
    }
  }
  return pings;
}

function dataFrame(srcVip = 0x64400009): Buffer {
  const f = Buffer.alloc(8 + 32, 0);
  writeRelayHeader(f, 0, FrameType.DATA, srcVip);
  f[8] = 4;
  return f;
}

/** Defaults of the client (10 s keepalive, probe after 300 ms, every 200 ms, 3 → dead). */
function setupDefaults() {
  const s = setup({ keepaliveMs: 10_000 });
  authenticate(s);
  s.socket.sent = [];
  return s;
}

test('idle: exactly one PING per 10 s over a minute, never dead while the relay answers', (t) => {
  const s = setupDefaults();
  let dead = 0;
  s.client.on('relay-dead', () => dead++);
  const pings = run(s, 60_000, { pong: true });
  t.deepEqual(pings, [10_000, 20_000, 30_000, 40_000, 50_000, 60_000]);
  t.is(s.client.stats.probesSent, 0);
  t.is(dead, 0);
});

test('idle: a relay that stops answering is dead 0.7 s after the unanswered keepalive', (t) => {
  const s = setupDefaults();
  let deadAt = NaN;
  s.client.on('relay-dead', () => { deadAt = s.clock.now(); });
  const pings = run(s, 12_000);
  t.deepEqual(pings, [10_000, 10_300, 10_500], 'keepalive, then two probes');
  t.is(deadAt, 10_700);
});

test('active, relay dead: sending DATA with nothing heard back → dead within 0.9 s (+ one tick)', (t) => {
  const s = setupDefaults();
  let deadAt = NaN;
  s.client.on('relay-dead', () => { deadAt = s.clock.now(); });
  const out = Buffer.alloc(64);
  // Two-way traffic for 5 s, then the relay dies at 5 s: the member keeps sending.
  run(s, 5000, { step: 10, pong: true, each: (now) => { s.client.writeDataHeader(out, 0, 7); if (now % 50 === 0) s.feed(dataFrame()); } });
  t.is(s.client.stats.pingsSent, 0, 'no PING while data flows both ways');
  const killedAt = s.clock.now();
  const pings = run(s, 3000, { step: 10, each: () => s.client.writeDataHeader(out, 0, 7) });
  t.is(pings.length, 3);
  t.true(deadAt - killedAt <= 900 + 100, `dead after ${deadAt - killedAt} ms`);
  t.true(deadAt - killedAt >= 900, `dead after ${deadAt - killedAt} ms`);
  t.false(s.client.isReady);
});

test('active, relay dead: a receiver whose data stopped arriving (sends nothing) is dead within 1 s', (t) => {
  const s = setupDefaults();
  let deadAt = NaN;
  s.client.on('relay-dead', () => { deadAt = s.clock.now(); });
  run(s, 2000, { step: 10, each: () => s.feed(dataFrame()) });
  t.is(s.client.stats.pingsSent, 0);
  const killedAt = s.clock.now();
  run(s, 3000, { step: 10 });
  t.true(deadAt - killedAt <= 1000, `dead after ${deadAt - killedAt} ms`);
});

test('active, relay live: a bulk upload whose peer only ACKs through the relay sends no PING', (t) => {
  const s = setupDefaults();
  let dead = 0;
  s.client.on('relay-dead', () => dead++);
  const out = Buffer.alloc(1500);
  // 1 data frame per ms out, one ACK per 20 ms back.
  const pings = run(s, 60_000, { step: 10, pong: true, each: (now) => {
    for (let k = 0; k < 10; k++) s.client.writeDataHeader(out, 0, 7);
    if (now % 20 === 0) s.feed(dataFrame());
  } });
  t.deepEqual(pings, []);
  t.is(dead, 0);
});

test('active, relay live: one-way sending costs at most one probe per 300 ms; a pause costs one PING', (t) => {
  const s = setupDefaults();
  let dead = 0;
  s.client.on('relay-dead', () => dead++);
  const out = Buffer.alloc(1500);
  const pings = run(s, 10_000, { step: 10, pong: true, each: () => s.client.writeDataHeader(out, 0, 7) });
  t.true(pings.length <= 10_000 / 300 + 1, `${pings.length} PINGs in 10 s`);
  t.true(pings.length >= 10, 'probes do run');
  for (let i = 1; i < pings.length; i++) t.true(pings[i] - pings[i - 1] >= 300);
  t.is(dead, 0);
  // Two-way burst, then silence: one probe, then idle keepalives only.
  run(s, 1000, { step: 10, pong: true, each: () => { s.client.writeDataHeader(out, 0, 7); s.feed(dataFrame()); } });
  const quiet = run(s, 25_000, { pong: true });
  t.is(quiet.length, 3, `one probe after the burst, then keepalives: ${quiet.join(' ')}`);
  t.is(dead, 0);
});
