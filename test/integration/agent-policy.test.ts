/**
 * The receiving agent's inbound filter (issue 10, the agent's part), end to end through real
 * Agents and a real relay on memory TUNs and sockets (test/harness/testnet.ts). Policy enters as
 * the coordinator hands it out: each peer entry's `inbound` port specs.
 *
 *   s (controller, 100.64.0.1) ──┐
 *                                ├── relay r1
 *   a (agent,      100.64.0.2) ──┘
 *
 * The rule under test: "controller may open tcp/22 (and udp/53, icmp) to agent". So at a, s's
 * entry says `inbound: ["tcp/22", "udp/53", "icmp"]`; at s, a's entry says `inbound: []` (a is
 * in s's map only because s may open flows to it).
 *
 * Every negative has its positive control in the same test: a marker packet that must pass
 * follows the refused ones on the same path, so "only the marker arrived" proves the others
 * were dropped, not lost or late.
 */
import test, { type ExecutionContext } from 'ava';
import { echoReply, echoRequest, tcp, TCP_FLAGS, udp } from '../harness/packets';
import { startTestnet, type TestAgent, type Testnet, type TestnetOptions } from '../harness/testnet';

const { SYN, ACK, PSH } = TCP_FLAGS;

async function net(t: ExecutionContext, o: TestnetOptions): Promise<Testnet> {
  const n = await startTestnet({ agents: ['s', 'a'], ...o });
  t.teardown(() => n.stop());
  await n.ready();
  return n;
}

const CONTROLLER_TO_AGENT: TestnetOptions['inbound'] = { a: { s: ['tcp/22', 'udp/53', 'icmp'] }, s: { a: [] } };

/** `from` sends `pkt`; it must come out of `to`'s TUN byte for byte. */
async function passes(t: ExecutionContext, from: TestAgent, to: TestAgent, pkt: Buffer, what: string): Promise<void> {
  from.tun.inject(pkt);
  const got = await to.tun.next({ match: (p) => p.equals(pkt), timeoutMs: 2000 }).catch((e: Error) => {
    throw new Error(`${what}: ${e.message}; drops at ${to.name}: ${JSON.stringify(nonZero(to))}`);
  });
  t.deepEqual(got, pkt, what);
}

/** `from` sends `refused` then `marker` (which must pass) in one TUN batch: only the marker may reach `to`. */
async function dropped(t: ExecutionContext, from: TestAgent, to: TestAgent, refused: Buffer[], marker: Buffer, what: string): Promise<void> {
  to.tun.clearWritten();
  from.tun.inject([...refused, marker]);
  await to.tun.next({ match: (p) => p.equals(marker), timeoutMs: 2000 });
  t.deepEqual(to.tun.written(), [marker], `${what}: only the marker reached ${to.name}`);
}

function nonZero(x: TestAgent): Record<string, number> {
  return Object.fromEntries(Object.entries(x.agent.device.drops).filter(([, v]) => v > 0));
}

/** An established-flow segment (ACK, no SYN): passes under any policy (TCP is filtered on SYN). */
const ackSeg = (from: TestAgent, to: TestAgent, sport: number, dport: number) => tcp(from.vip, to.vip, sport, dport, ACK | PSH, 10);

test.serial('tcp: the controller opens tcp/22 to the agent and gets replies; tcp/23 is refused; the agent cannot open a connection to the controller', async (t) => {
  const n = await net(t, { inbound: CONTROLLER_TO_AGENT });
  const s = n.agent('s');
  const a = n.agent('a');
  // Positive: the controller's connection on the allowed port, both ways.
  await passes(t, s, a, tcp(s.vip, a.vip, 40000, 22, SYN), 'SYN s → a:22');
  await passes(t, a, s, tcp(a.vip, s.vip, 22, 40000, SYN | ACK), 'SYN-ACK a:22 → s (a reply: not a bare SYN)');
  await passes(t, s, a, ackSeg(s, a, 40000, 22), 'data s → a:22');
  await passes(t, a, s, ackSeg(a, s, 22, 40000), 'data a:22 → s');
  t.is(a.agent.device.drops.policy, 0);
  t.is(s.agent.device.drops.policy, 0);

  // The same peers, a port the rule does not name: dropped at the agent.
  await dropped(t, s, a, [tcp(s.vip, a.vip, 40001, 23, SYN), tcp(s.vip, a.vip, 40002, 8080, SYN)], ackSeg(s, a, 40000, 22), 'SYN s → a:23 and :8080');
  t.is(a.agent.device.drops.policy, 2, 'counted at the agent as policy');

  // The reverse direction: the rule lets s open flows to a, not a to s.
  await dropped(t, a, s, [tcp(a.vip, s.vip, 50000, 22, SYN), tcp(a.vip, s.vip, 50001, 443, SYN)], ackSeg(a, s, 22, 40000), 'SYN a → s:22 and :443');
  t.is(s.agent.device.drops.policy, 2, 'counted at the controller as policy');
  t.is(s.agent.device.drops['not-our-address'] + a.agent.device.drops['not-our-address'], 0);
});

test.serial('udp: the controller\'s flow to udp/53 and its replies pass; the agent cannot open a UDP flow to the controller', async (t) => {
  const n = await net(t, { inbound: CONTROLLER_TO_AGENT });
  const s = n.agent('s');
  const a = n.agent('a');
  await passes(t, s, a, udp(s.vip, a.vip, 40000, 53, 20), 'query s:40000 → a:53');
  // s may not be opened anything by a, but this answers the flow s opened (noteOutbound at s).
  await passes(t, a, s, udp(a.vip, s.vip, 53, 40000, 60), 'answer a:53 → s:40000 (reply to s\'s own flow)');
  await passes(t, a, s, udp(a.vip, s.vip, 53, 40000, 61), 'a second answer on the same flow');
  // A "reply" to a flow s never opened (other port), and a flow a opens: dropped at s.
  await dropped(t, a, s, [udp(a.vip, s.vip, 53, 40001, 10), udp(a.vip, s.vip, 5000, 53, 10)], udp(a.vip, s.vip, 53, 40000, 62),
    'a:53 → s:40001 (no such flow), a:5000 → s:53 (a opening)');
  t.is(s.agent.device.drops.policy, 2);
  // A UDP port the rule does not name: dropped at the agent, udp/53 still works.
  await dropped(t, s, a, [udp(s.vip, a.vip, 40000, 54, 10), udp(s.vip, a.vip, 40000, 123, 10)], udp(s.vip, a.vip, 40002, 53, 10), 's → a:54 and :123');
  t.is(a.agent.device.drops.policy, 2);
  t.true((s.agent.status() as { flows: { tracked: number } }).flows.tracked >= 1, 's tracks the flow it opened');
});

test.serial('icmp: echo requests pass where the peer may send `icmp`, replies to our own pings pass, and nothing else', async (t) => {
  const n = await net(t, { inbound: CONTROLLER_TO_AGENT });
  const s = n.agent('s');
  const a = n.agent('a');
  await passes(t, s, a, echoRequest(s.vip, a.vip, 7, 1), 'ping s → a (a lets s send icmp)');
  await passes(t, a, s, echoReply(a.vip, s.vip, 7, 1), 'pong a → s (a reply to s\'s ping)');
  // a may not ping s (s's entry for a is []); nor "answer" a ping s never sent (id 8).
  await dropped(t, a, s, [echoRequest(a.vip, s.vip, 9, 1), echoReply(a.vip, s.vip, 8, 1)], echoReply(a.vip, s.vip, 7, 2), 'ping a → s, unsolicited pong');
  t.is(s.agent.device.drops.policy, 2);
  t.is(a.agent.device.drops.policy, 0);
});

test.serial('not-our-address: a packet for an address the member does not own is dropped, one it owns (its original IP) passes', async (t) => {
  // a's peers route 10.10.0.0/16 to a (so s seals it to a); a owns only 10.10.0.2 of it.
  const n = await net(t, { extraAllowedIps: { a: ['10.10.0.0/16'] }, ownAddresses: { a: ['10.10.0.2'] } });
  const s = n.agent('s');
  const a = n.agent('a');
  await passes(t, s, a, echoRequest(s.vip, a.vip, 1, 1), 'to a\'s overlay address');
  await passes(t, s, a, echoRequest(s.vip, '10.10.0.2', 1, 2), 'to a\'s original IP (transparent mode)');
  await dropped(t, s, a, [echoRequest(s.vip, '10.10.0.3', 1, 3), udp(s.vip, '10.10.9.9', 1000, 53, 4)], echoRequest(s.vip, a.vip, 1, 4),
    'to other addresses behind a');
  t.is(a.agent.device.drops['not-our-address'], 2);
  t.is(a.agent.device.drops.policy, 0, 'no policy (no inbound field): `*`');
  const st = a.agent.status() as { flows: { localAddresses: string[] } };
  t.deepEqual(st.flows.localAddresses, [a.vip, '10.10.0.2']);
});

test.serial('a changed `inbound` for a peer takes effect at once; an entry without the field means `*`', async (t) => {
  const n = await net(t, { inbound: { a: { s: ['tcp/22'] } } });
  const s = n.agent('s');
  const a = n.agent('a');
  const syn = (port: number, sport = 41000 + port) => tcp(s.vip, a.vip, sport, port, SYN);
  await passes(t, s, a, syn(22), 'tcp/22 allowed');
  await dropped(t, s, a, [syn(8080)], syn(22, 41001), 'tcp/8080 not yet');

  n.setInbound('a', 's', ['tcp/22', 'tcp/8000-9000']); // the policy grew
  await passes(t, s, a, syn(8080, 42000), 'tcp/8080 after the change');
  t.is(n.handshakes('s', 'a'), 1, 'the session survived the change');

  n.setInbound('a', 's', []); // s may open nothing now
  await dropped(t, s, a, [syn(22, 43000), syn(8080, 43001)], ackSeg(s, a, 41000, 22), 'nothing new after the cut; the established connection still flows');

  n.setInbound('a', 's', undefined); // an older coordinator: no field
  await passes(t, s, a, syn(3306), 'any port with no inbound field');
  t.is(a.agent.device.drops.policy, 3);
  t.is(a.agent.device.drops['not-our-address'], 0);
});
