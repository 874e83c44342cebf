/**
 * The handshake flood through the whole overlay in one process (test/harness/testnet.ts):
 * real relay, real Agents, real timers. Member c floods member b with handshake initiations
 * at 5,000/s through the relay, which stamps c's overlay address on every frame (the source
 * b rate-limits by); c reads the cookie replies b sends it (snooped off the memory network)
 * and sends valid mac2, as a malicious member could. Meanwhile a ↔ b must still handshake
 * and carry a packet (positive control). The node-agent engine test
 * (test/unit/node-agent/handshake-flood.test.ts) does the exact accounting on a fake clock;
 * this one proves the wiring: relay-stamped source, agent drop counters, agent metrics.
 *
 *   a (100.64.0.1) ─┐
 *   b (100.64.0.2) ─┼─ relay ── c → b: 50 initiations every 10 ms (as due on the real clock)
 *   c (100.64.0.3) ─┘
 */
import test from 'ava';
import { Registry } from 'prom-client';
import { parseAddr } from '../../common/ipv4';
import { registerAgentMetrics } from '../../node-agent/metrics';
import { Endpoint } from '../../node-agent/endpoint';
import { CookieGenerator } from '../../protocol/cookie';
import { MSG_COOKIE_REPLY } from '../../protocol/constants';
import { createInitiation, createLocalIdentity, createPeerCrypto } from '../../protocol/handshake';
import { generatePrivateKey, keyFromBase64, x25519Operations } from '../../protocol/keys';
import { RATE_LIMIT_BURST, RATE_LIMIT_PER_SECOND } from '../../protocol/ratelimiter';
import { FrameType, RELAY_HEADER_LEN } from '../../protocol/relay-frame';
import { icmpEcho } from '../harness/packets';
import { startTestnet } from '../harness/testnet';

const RATE = 5000;
const FLOOD_MS = 7000;

/** The agent's own relay send path (private): what its engine calls for a relayed message. */
type Sender = { sendOutside(ep: Endpoint, buf: Uint8Array, off: number, len: number, inPlace: boolean): void; flushAll(): void };

test.serial('a member flooding initiations at 5,000/s through the relay: the victim spends ~20 X25519/s on it, and another member still handshakes with it', async (t) => {
  const n = await startTestnet({ agents: ['a', 'b', 'c'] });
  t.teardown(() => n.stop());
  await n.ready();
  const a = n.agent('a');
  const b = n.agent('b');
  const c = n.agent('c');

  // c's ammunition: one initiation from c's member key would do; here a fresh key is enough to
  // reach b's DH (mac1 needs only b's public key; an unknown static fails after the DH).
  const bPub = keyFromBase64(b.publicKey);
  const attacker = createLocalIdentity(generatePrivateKey());
  const template = createInitiation(attacker, createPeerCrypto(attacker, bPub), 1, Date.now()).message;
  const clock = { now: () => performance.now() };
  let cookies = new CookieGenerator(bPub, clock);
  // c reads the cookie replies b sends it (a DATA frame to c's host carrying type 3); each is
  // bound to the mac1 of the message it answers, found by its receiver index.
  const sent = new Map<number, Buffer>();
  let replies = 0;
  const cHost = parseAddr(c.host);
  n.net.dropIf = (d) => {
    if (d.dstIp === cHost && d.bytes[0] === FrameType.DATA && d.bytes[RELAY_HEADER_LEN] === MSG_COOKIE_REPLY) {
      replies++;
      const reply = d.bytes.subarray(RELAY_HEADER_LEN);
      const answered = sent.get(reply.readUInt32LE(4));
      if (answered) {
        const g = new CookieGenerator(bPub, clock);
        g.addMacs(Buffer.from(answered)); // the same bytes: the same mac1
        if (g.consumeReply(reply)) cookies = g;
      }
      return true; // c's own engine would only count it as unknown-index
    }
    return false;
  };
  const send = c.agent as unknown as Sender;
  const toB = Endpoint.relay(parseAddr(b.vip));
  let index = 2;

  const drops = b.agent.device.drops;
  const x0 = x25519Operations();
  const t0 = performance.now();
  let offered = 0;
  let pkt: Buffer | undefined;
  let delivered: Promise<Buffer> | undefined;
  while (performance.now() - t0 < FLOOD_MS) {
    const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
    for (; offered < due; offered++) {
      const m = Buffer.from(template);
      m.writeUInt32LE(index++ >>> 0, 4);
      cookies.addMacs(m);
      sent.set(index - 1, m);
      send.sendOutside(toB, m, 0, m.length, false);
    }
    send.flushAll();
    if (!pkt && performance.now() - t0 > 500) {
      // Positive control, inside the flood: a's first packet to b (a handshake first).
      pkt = icmpEcho(a.vip, b.vip, { seq: 1 });
      delivered = b.tun.next({ match: (p) => p.equals(pkt!), timeoutMs: FLOOD_MS + 3000 });
      a.tun.inject(pkt);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const seconds = (performance.now() - t0) / 1000;
  const spent = x25519Operations() - x0;
  t.log(`offered ${offered} in ${seconds.toFixed(1)} s; X25519 ${spent}; cookie replies to c ${replies}; b drops: ratelimited ${drops['handshake-ratelimited']}, cookie-required ${drops['cookie-required']}, handshake-failed ${drops['handshake-failed']}`);

  t.true(replies > 0 && cookies.hasCookie(), 'b went under load; c holds a cookie and sends valid mac2');
  t.true(drops['handshake-failed'] > 0, 'admitted copies cost b a DH (they fail only after it): the attack is real');
  // Admitted copies: ≤ burst + rate × seconds, one X25519 each; a ↔ b: ≤ 3 initiations (2
  // each) + the response consumed (2) + b's consume and response (4); slack for timers.
  const bound = RATE_LIMIT_BURST + RATE_LIMIT_PER_SECOND * seconds + 3 * 2 + 2 + 4 + 10;
  t.true(spent <= bound, `X25519 ${spent} ≤ ${Math.round(bound)} (without the limit: one per message read, up to ${offered})`);
  t.true(drops['handshake-ratelimited'] > offered / 2, 'dropped before any X25519, by the per-source limit (the source: c\'s overlay address, stamped by the relay)');

  t.deepEqual(await delivered, pkt, 'a\'s packet reached b during the flood');
  t.true(n.handshakes('a', 'b') >= 1);

  const registry = new Registry();
  registerAgentMetrics(registry, b.agent);
  const text = await registry.metrics();
  t.regex(text, /isthmus_agent_drops_total\{reason="handshake-ratelimited"\} [1-9]/);
  t.regex(text, /isthmus_agent_x25519_operations_total [1-9]/);
  t.regex(text, /isthmus_agent_handshake_rate_limit_sources [0-9]/);
});
