/**
 * A relay failover of many members, simulated on the injectable clock: every member loses its
 * relay at the same instant (the worst case; in reality detection spreads them over 0.9 s for
 * active members and a keepalive for idle ones) and re-authenticates through the VIP to a
 * surviving relay whose AUTH work limiter (relay/rate-limit.ts) admits `authPerSecond`.
 *
 * Scaled 1:20 to keep the client-side proofs (one X25519 each) cheap: 500 members against a
 * budget of 15 AUTH/s drain exactly like 10,000 members against the default 300/s. Bound:
 * members / budget + the agent's HELLO backoff cap (RELAY_FAILOVER_TIMING.authRetryMaxMs),
 * each member bound once (one `P:session` write and one `session-up` event each: no storm).
 */
import test from 'ava';
import nacl from 'tweetnacl';
import { ManualClock } from '../../../common/clock';
import { silentLogger } from '../../../common/logger';
import { RelayClient } from '../../../node-agent/relay-client';
import { RELAY_FAILOVER_TIMING } from '../../../node-agent';
import { ChallengeIssuer } from '../../../relay/challenge';
import { WorkLimiter } from '../../../relay/rate-limit';
import { FrameType, decodePingSeq, encodeAuthOk, encodeChallenge, encodePing } from '../../../protocol/relay-frame';
import { MemorySocket } from './memory-socket';

const MEMBERS = 500;
const AUTH_PER_SECOND = 15;
const TICK_MS = 100;

/** A small seeded PRNG (mulberry32) so the run is reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

test(`${MEMBERS} members fail over onto a relay admitting ${AUTH_PER_SECOND} AUTH/s: all bound within members/budget + backoff cap`, (t) => {
  const clock = new ManualClock();
  const kp = nacl.box.keyPair();
  const issuer = new ChallengeIssuer(0);
  const limiter = new WorkLimiter(0, { perKeyPerSecond: 50, perKeyBurst: 100, globalPerSecond: AUTH_PER_SECOND, globalBurst: AUTH_PER_SECOND });
  const members = Array.from({ length: MEMBERS }, (_, i) => {
    const socket = new MemorySocket();
    const vip = 0x64400000 + i + 1;
    const client = new RelayClient({
      staticPrivate: kp.secretKey, staticPublic: kp.publicKey, relayAddr: 0x0a000009, relayPort: 7000, vip,
      socket, clock, logger: silentLogger(), ...RELAY_FAILOVER_TIMING, tickMs: 0, random: seeded(i + 1),
    });
    return { client, socket, vip, addr: 0x0b000000 + i, readyAt: NaN };
  });
  let auths = 0;
  let binds = 0;
  let dead = 0;
  /** The surviving relay, answering at once: HELLO → CHALLENGE; AUTH → budget → AUTH_OK or silence; PING → PONG. */
  const serve = (m: (typeof members)[number]): void => {
    while (m.socket.sent.length > 0) {
      const f = m.socket.sent.shift()!.buf;
      const now = clock.now();
      if (f[0] === FrameType.HELLO) {
        const c = encodeChallenge(issuer.issue(m.addr, 7000, now));
        m.client.handleFrame(c, 0, c.length);
      } else if (f[0] === FrameType.AUTH) {
        auths++;
        if (!limiter.take(m.addr, now)) continue;
        binds++;
        const ok = encodeAuthOk({ version: 1, vip: m.vip, keepaliveSeconds: 10, relayId: 'r2' });
        m.client.handleFrame(ok, 0, ok.length);
      } else if (f[0] === FrameType.PING) {
        const pong = encodePing(FrameType.PONG, decodePingSeq(f, 0, f.length)!);
        m.client.handleFrame(pong, 0, pong.length);
      }
    }
  };
  for (const m of members) {
    m.client.on('relay-dead', () => dead++);
    m.client.once('ready', () => { m.readyAt = clock.now(); });
    m.client.start(); // the rebind after 'relay-dead': a fresh client, HELLO at once
    serve(m);
  }
  const boundMs = (MEMBERS / AUTH_PER_SECOND) * 1000 + RELAY_FAILOVER_TIMING.authRetryMaxMs;
  while (clock.now() < 2 * boundMs && members.some((m) => Number.isNaN(m.readyAt))) {
    clock.advance(TICK_MS);
    for (const m of members) {
      m.client.tick();
      serve(m);
    }
  }
  const last = Math.max(...members.map((m) => m.readyAt));
  t.log(`${MEMBERS} members bound after ${(last / 1000).toFixed(1)} s (bound ${(boundMs / 1000).toFixed(1)} s); ${auths} AUTHs for ${binds} binds`);
  t.true(members.every((m) => m.client.isReady));
  t.true(last <= boundMs, `last member bound after ${last} ms > ${boundMs} ms`);
  t.is(binds, MEMBERS, 'each member bound exactly once: one session write and one event each');
  t.is(dead, 0, 'a relay that answers HELLO is never reported dead, however long AUTH waits');
  // Retries are cheap for the relay (dropped before the X25519) and bounded: each pending
  // member retries at most every authRetryMinMs..authRetryMaxMs.
  t.true(auths < MEMBERS * (last / RELAY_FAILOVER_TIMING.authRetryMaxMs + 8), `${auths} AUTHs`);
});
