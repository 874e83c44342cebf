/**
 * Whole Agents and relays in one process, without root (test/harness/testnet.ts): relay
 * framing, authentication and re-authentication, failover, the WireGuard handshake (retry,
 * rekey) and the data path, over memory TUNs and a memory UDP network. The netns tests
 * (test/netns/) stay the real proof on kernel TUNs and sockets; these run everywhere, in a
 * few seconds.
 *
 *   a ─┐                         ┌─ r1 ─┐
 *   b ─┼─ VIP (round-robin DNAT) ┤      ├─ mesh      (one relay: no VIP, no mesh)
 *   c ─┘                         └─ r2 ─┘
 *
 * No sleep is an assertion: every wait polls a condition with a deadline.
 */
import test, { type ExecutionContext } from 'ava';
import { nativeAvailable } from '../../native-bindings';
import { FrameType, RELAY_HEADER_LEN } from '../../protocol/relay-frame';
import { MSG_INITIATION } from '../../protocol/constants';
import { icmpEcho, udpPacket } from '../harness/packets';
import { startTestnet, waitFor, type TestAgent, type Testnet, type TestnetOptions } from '../harness/testnet';

async function net(t: ExecutionContext, o: TestnetOptions): Promise<Testnet> {
  const n = await startTestnet(o);
  t.teardown(() => n.stop());
  await n.ready();
  return n;
}

/** `from` sends `pkt` into its TUN; it must come out of `to`'s TUN byte for byte. */
async function deliver(t: ExecutionContext, from: TestAgent, to: TestAgent, pkt: Buffer, what: string): Promise<void> {
  from.tun.inject(pkt);
  const got = await to.tun.next({ match: (p) => p.equals(pkt), timeoutMs: 2000 }).catch((e: Error) => {
    throw new Error(`${what}: ${e.message}; batch-contract violations: sockets ${from.net.violations}, TUNs ${from.tun.violations}/${to.tun.violations}`);
  });
  t.deepEqual(got, pkt, what);
}

/** No engine used a batch's memory after its handler returned, on any TUN or socket. */
function assertContractKept(t: ExecutionContext, n: Testnet): void {
  for (const a of n.agents) t.is(a.tun.violations, 0, `${a.name}: in-place TUN writes flushed after their batch ended`);
  t.is(n.net.violations, 0, 'in-place socket sends flushed after their batch ended');
  t.is(n.net.stats.dropped['no-socket'], 0, 'no datagram went to an unbound address');
}

const aeads: NonNullable<TestnetOptions['aead']>[] = nativeAvailable() ? ['default', 'node'] : ['node'];

for (const aead of aeads) {
  test.serial(`handshake and data both ways through the relay (${aead === 'node' ? 'node:crypto' : 'native batched'} AEAD)`, async (t) => {
    const n = await net(t, { aead });
    const a = n.agent('a');
    const b = n.agent('b');
    await deliver(t, a, b, icmpEcho(a.vip, b.vip, { seq: 1 }), 'echo request a → b');
    await deliver(t, b, a, icmpEcho(b.vip, a.vip, { seq: 1, reply: true }), 'echo reply b → a');
    // A batch of several packets of different sizes in one TUN read, and back.
    const burst = (from: TestAgent, to: TestAgent) => Array.from({ length: 20 }, (_, i) =>
      udpPacket(from.vip, 5000 + i, to.vip, 53, Buffer.alloc(1 + i * 67, i)));
    for (const [from, to] of [[a, b], [b, a]] as const) {
      const pkts = burst(from, to);
      from.tun.inject(pkts);
      for (const p of pkts) t.deepEqual(await to.tun.next({ timeoutMs: 2000 }), p);
    }
    t.true(Object.values(a.agent.device.drops).every((v) => v === 0), `a dropped nothing: ${JSON.stringify(a.agent.device.drops)}`);
    t.true(Object.values(b.agent.device.drops).every((v) => v === 0), `b dropped nothing: ${JSON.stringify(b.agent.device.drops)}`);
    t.true(n.relays[0].relay.stats().framesForwarded >= 42);
    assertContractKept(t, n);
  });
}

test.serial('cryptokey routing: b delivers what a owns, drops and counts a source a does not own', async (t) => {
  const n = await net(t, { extraAllowedIps: { a: ['10.10.0.0/16'] } });
  const a = n.agent('a');
  const b = n.agent('b');
  // Positive controls: a's overlay address, and an original address in a prefix a owns.
  await deliver(t, a, b, icmpEcho(a.vip, b.vip, { seq: 1 }), 'from a\'s overlay address');
  await deliver(t, a, b, icmpEcho('10.10.3.4', b.vip, { seq: 2 }), 'from a prefix a owns');
  t.is(b.agent.device.drops['source-not-allowed'], 0);
  // The same tunnel carrying a source a does not own (b's own address, another prefix):
  // a seals whatever its TUN gives it; b must refuse it after decryption.
  const forged = [icmpEcho('10.20.0.5', b.vip, { seq: 3 }), icmpEcho(b.vip, b.vip, { seq: 4 })];
  const marker = icmpEcho(a.vip, b.vip, { seq: 5 });
  b.tun.clearWritten();
  a.tun.inject([...forged, marker]);
  // The marker travels behind the forged packets on the same path: once it is out, they were handled.
  await b.tun.next({ match: (p) => p.equals(marker), timeoutMs: 2000 });
  t.deepEqual(b.tun.written(), [marker], 'only the marker reached b\'s TUN');
  t.is(b.agent.device.drops['source-not-allowed'], 2);
  t.is(a.agent.device.drops['source-not-allowed'], 0);
  assertContractKept(t, n);
});

test.serial('the relay forgets the members (restart): REAUTH, the agents re-authenticate, traffic resumes', async (t) => {
  const n = await net(t, {});
  const a = n.agent('a');
  const b = n.agent('b');
  await deliver(t, a, b, icmpEcho(a.vip, b.vip, { seq: 1 }), 'before the restart');
  n.restartRelay(n.relays[0]);
  const fresh = n.relays[0];
  t.is(fresh.relay.sessions().length, 0);
  // a's next frame comes from a 4-tuple the new relay never bound: it answers REAUTH.
  a.tun.inject(icmpEcho(a.vip, b.vip, { seq: 2 }));
  await n.ready();
  const s = fresh.relay.stats();
  t.true(s.reauthSent >= 2, `REAUTH sent to both members (${s.reauthSent})`);
  t.true(s.drops['unbound-source'] >= 2);
  t.is(s.authOk, 2);
  t.is(a.agent.relayRebinds, 0, 're-authenticated on the same socket, no failover');
  t.is(b.agent.relayRebinds, 0);
  await deliver(t, a, b, icmpEcho(a.vip, b.vip, { seq: 3 }), 'a → b after re-authentication');
  await deliver(t, b, a, icmpEcho(b.vip, a.vip, { seq: 3, reply: true }), 'b → a after re-authentication');
  assertContractKept(t, n);
});

test.serial('failover: a\'s relay dies, a rebinds through the VIP to the other relay, traffic resumes', async (t) => {
  const n = await net(t, { relays: 2 });
  const a = n.agent('a');
  const b = n.agent('b');
  const [r1, r2] = n.relays;
  t.is(n.homeOf('a'), r1, 'round-robin placed a on r1');
  t.is(n.homeOf('b'), r2, 'and b on r2');
  await deliver(t, a, b, icmpEcho(a.vip, b.vip, { seq: 1 }), 'a → b across the mesh');
  await deliver(t, b, a, icmpEcho(b.vip, a.vip, { seq: 1, reply: true }), 'b → a across the mesh');
  t.true(r1.relay.stats().meshSent >= 1 && r2.relay.stats().meshSent >= 1, 'both directions crossed the mesh');

  n.killRelay(r1);
  await waitFor(() => n.homeOf('a') === r2, { timeoutMs: 3000, what: 'a bound at r2' });
  t.true(a.agent.relayRebinds >= 1, 'a noticed the dead relay and rebound');
  t.is(b.agent.relayRebinds, 0, 'b, on the live relay, did not move');
  await n.ready();
  // The WireGuard session is end to end: it survives the move, no new handshake needed.
  await deliver(t, a, b, icmpEcho(a.vip, b.vip, { seq: 2 }), 'a → b after failover');
  await deliver(t, b, a, icmpEcho(b.vip, a.vip, { seq: 2, reply: true }), 'b → a after failover');
  t.true(n.net.stats.dropped['host-down'] > 0, 'the dead relay really swallowed traffic');
  assertContractKept(t, n);
});

test.serial('failover with traffic in flight: a keeps sending into a dead relay and rebinds within ~1 s', async (t) => {
  const n = await net(t, { relays: 2 });
  const a = n.agent('a');
  const b = n.agent('b');
  const [r1, r2] = n.relays;
  await deliver(t, a, b, icmpEcho(a.vip, b.vip, { seq: 1 }), 'a → b across the mesh');
  // Idle for a while first: a's keepalive phase must not matter, its traffic does.
  await new Promise((res) => setTimeout(res, 1500));
  n.killRelay(r1);
  const killedAt = Date.now();
  let seq = 10;
  const pump = setInterval(() => a.tun.inject(icmpEcho(a.vip, b.vip, { seq: seq++ })), 20);
  try {
    await waitFor(() => n.homeOf('a') === r2, { timeoutMs: 3000, what: 'a bound at r2' });
  } finally {
    clearInterval(pump);
  }
  const ms = Date.now() - killedAt;
  t.log(`a rebound ${ms} ms after its relay died`);
  t.true(ms < 1500, `${ms} ms`);
  await n.ready();
  await deliver(t, a, b, icmpEcho(a.vip, b.vip, { seq: 2 }), 'a → b after failover');
  assertContractKept(t, n);
});

test.serial('three agents: a ↔ b (across the mesh) and a ↔ c (same relay) at once', async (t) => {
  const n = await net(t, { agents: ['a', 'b', 'c'], relays: 2 });
  const [a, b, c] = ['a', 'b', 'c'].map((x) => n.agent(x));
  t.is(n.homeOf('a'), n.homeOf('c'));
  t.not(n.homeOf('a'), n.homeOf('b'));
  // One TUN batch to both peers: two handshakes at once, packets interleaved.
  const toB = Array.from({ length: 10 }, (_, i) => udpPacket(a.vip, 6000, b.vip, 7000, Buffer.from(`to b #${i}`)));
  const toC = Array.from({ length: 10 }, (_, i) => udpPacket(a.vip, 6000, c.vip, 7000, Buffer.from(`to c #${i}`)));
  a.tun.inject(toB.flatMap((p, i) => [p, toC[i]]));
  for (const p of toB) t.deepEqual(await b.tun.next({ timeoutMs: 2000 }), p);
  for (const p of toC) t.deepEqual(await c.tun.next({ timeoutMs: 2000 }), p);
  // Both answer at the same time.
  const fromB = udpPacket(b.vip, 7000, a.vip, 6000, Buffer.from('reply from b'));
  const fromC = udpPacket(c.vip, 7000, a.vip, 6000, Buffer.from('reply from c'));
  b.tun.inject(fromB);
  c.tun.inject(fromC);
  await waitFor(() => [fromB, fromC].every((p) => a.tun.written().some((w) => w.equals(p))), { timeoutMs: 2000, what: 'both replies at a' });
  t.pass('both replies reached a');
  t.deepEqual(b.tun.written().filter((p) => p.includes(Buffer.from('to c'))), [], 'b saw nothing meant for c');
  t.deepEqual(c.tun.written().filter((p) => p.includes(Buffer.from('to b'))), [], 'c saw nothing meant for b');
  assertContractKept(t, n);
});

test.serial('a lost handshake initiation is retried after REKEY_TIMEOUT and the staged packet still arrives', async (t) => {
  const n = await net(t, { timers: { rekeyTimeoutMs: 150, rekeyTimeoutJitterMaxMs: 20 } });
  const a = n.agent('a');
  const b = n.agent('b');
  let lost = 0;
  // The network eats a's first initiation (a relay DATA frame carrying WireGuard type 1).
  n.net.dropIf = (d) => {
    const init = d.bytes[0] === FrameType.DATA && d.bytes[RELAY_HEADER_LEN] === MSG_INITIATION && d.dstPort === n.relayAddress.port;
    if (init && lost === 0) {
      lost++;
      return true;
    }
    return false;
  };
  await deliver(t, a, b, icmpEcho(a.vip, b.vip, { seq: 1 }), 'the packet staged behind the lost initiation');
  t.is(lost, 1);
  t.is(n.net.stats.dropped.hook, 1);
  t.is(n.handshakes('a', 'b'), 1, 'one handshake completed, by the retry');
});

test.serial('rekey under traffic: new sessions replace old ones and no packet is lost', async (t) => {
  // A new initiation waits REKEY_TIMEOUT after the last one sent (as in wireguard-go), so that
  // is shortened along with REKEY_AFTER_TIME.
  const n = await net(t, { timers: { rekeyAfterTimeMs: 300, rekeyTimeoutMs: 100, rekeyTimeoutJitterMaxMs: 10 } });
  const a = n.agent('a');
  const b = n.agent('b');
  let seq = 0;
  // Traffic both ways, paced, until two rekeys (REKEY_AFTER_TIME is 300 ms) have completed.
  while (n.handshakes('a', 'b') < 3 && seq < 200) {
    seq++;
    await deliver(t, a, b, udpPacket(a.vip, 1000, b.vip, 2000, Buffer.from(`a→b ${seq}`)), `a → b #${seq}`);
    await deliver(t, b, a, udpPacket(b.vip, 2000, a.vip, 1000, Buffer.from(`b→a ${seq}`)), `b → a #${seq}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  t.true(n.handshakes('a', 'b') >= 3, `handshakes: ${n.handshakes('a', 'b')} after ${seq} round trips`);
  // A response may still be on its way to the initiator.
  await waitFor(() => n.handshakes('b', 'a') === n.handshakes('a', 'b'), { what: 'both sides to count the same handshakes' });
  t.is(a.agent.device.drops['transport-auth'] + b.agent.device.drops['transport-auth'], 0);
  assertContractKept(t, n);
});
