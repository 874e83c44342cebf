/**
 * The relay enforces the access policy (issue 10), tested as an attacker would act, on real
 * relays and Agents in one process (test/harness/testnet.ts, MemoryPolicySource for `P:policy`
 * and the node records). Every refusal sits next to a positive control in the same net.
 *
 *   a (tag web) ──┐                       policy: web → db
 *   b (tag db)  ──┼── relay(s) ──         c (tag guest) is connected to no one, but knows
 *   c (tag guest)─┘                       a's and b's vips (its peer map lists them) and sends
 *
 * c's Agent sending to a or b puts DATA frames for their vips on the wire (handshake
 * initiations): exactly what a member crafting frames to a vip it should not reach sends.
 */
import test, { type ExecutionContext } from 'ava';
import { icmpEcho } from '../harness/packets';
import { startTestnet, waitFor, type TestAgent, type Testnet, type TestnetOptions } from '../harness/testnet';

const WEB_TO_DB = '{ "rules": [ { "from": ["tag:web"], "to": ["tag:db"], "ports": ["tcp/5432", "icmp"] } ] }';
const ALSO_GUEST = '{ "rules": [ { "from": ["tag:web"], "to": ["tag:db"], "ports": ["tcp/5432", "icmp"] },'
  + ' { "from": ["tag:guest"], "to": ["tag:web"], "ports": ["icmp"] } ] }';
const TAGS = { a: ['web'], b: ['db'], c: ['guest'] };
/** Short handshake retries: a refused initiation is retried soon after the policy opens. */
const TIMERS = { rekeyTimeoutMs: 150, rekeyTimeoutJitterMaxMs: 20 };

async function net(t: ExecutionContext, o: TestnetOptions): Promise<Testnet> {
  const n = await startTestnet({ agents: ['a', 'b', 'c'], tags: TAGS, timers: TIMERS, ...o });
  t.teardown(() => n.stop());
  await n.ready();
  return n;
}

async function deliver(t: ExecutionContext, from: TestAgent, to: TestAgent, seq: number, what: string, timeoutMs = 2000): Promise<void> {
  const pkt = icmpEcho(from.vip, to.vip, { seq });
  from.tun.inject(pkt);
  const got = await to.tun.next({ match: (p) => p.equals(pkt), timeoutMs }).catch((e: Error) => {
    throw new Error(`${what}: ${e.message}`);
  });
  t.deepEqual(got, pkt, what);
}

function policyDrops(n: Testnet): number {
  return n.relays.reduce((s, r) => s + r.relay.stats().drops.policy, 0);
}

/** `from` sends and nothing from it reaches `to`: the relays count policy drops meanwhile. */
async function refused(t: ExecutionContext, n: Testnet, from: TestAgent, to: TestAgent, seq: number, what: string, neverMet = true): Promise<void> {
  const before = policyDrops(n);
  to.tun.clearWritten();
  from.tun.inject(icmpEcho(from.vip, to.vip, { seq }));
  await waitFor(() => policyDrops(n) > before, { timeoutMs: 2000, what: `${what}: a policy drop` });
  await new Promise((r) => setTimeout(r, 300));
  t.false(to.tun.written().some((p) => p.length >= 20 && p.readUInt32BE(12) === ipOf(from.vip)), `${what}: nothing from ${from.name} reached ${to.name}`);
  if (neverMet) t.is(n.handshakes(to.name, from.name), 0, `${what}: no WireGuard session ${to.name} ↔ ${from.name}`);
}

function ipOf(dotted: string): number {
  return dotted.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

test.serial('one relay: web ↔ db flow; guest c crafting frames to their vips is dropped as "policy"', async (t) => {
  const n = await net(t, { policy: WEB_TO_DB });
  const [a, b, c] = ['a', 'b', 'c'].map((x) => n.agent(x));
  t.is(n.relays[0].relay.policyRules(), 1);
  await deliver(t, a, b, 1, 'a → b (policy connects web and db)');
  await deliver(t, b, a, 2, 'b → a (connected is symmetric: replies and b-initiated frames pass)');
  await refused(t, n, c, a, 3, 'c → a');
  await refused(t, n, c, b, 4, 'c → b');
  await refused(t, n, a, c, 5, 'a → c (a may not reach c either)');
  await deliver(t, a, b, 6, 'a → b still flows next to the refused traffic');
  const s = n.relays[0].relay.stats();
  t.true(s.drops.policy >= 3, `policy drops counted: ${JSON.stringify(s.drops)}`);
  t.is(s.drops['unknown-destination'], 0, 'refused as policy, not as anything else');
});

test.serial('across the mesh: the ingress relay drops, and the home relay drops on its own when the ingress does not check', async (t) => {
  // Round-robin through the VIP: a → r1, b → r2, c → r1.
  const n = await net(t, { relays: 2, policy: WEB_TO_DB });
  const [a, b, c] = ['a', 'b', 'c'].map((x) => n.agent(x));
  t.is(n.homeOf('a')?.id, 'r1');
  t.is(n.homeOf('b')?.id, 'r2');
  t.is(n.homeOf('c')?.id, 'r1');
  await deliver(t, a, b, 1, 'a (r1) → b (r2) over one mesh hop');
  await deliver(t, b, a, 2, 'b (r2) → a (r1)');
  const [r1, r2] = n.relays;
  // The first frames to (r1) and from (r2) a remote member waited for its tags instead of being lost.
  t.is(r1.relay.stats().drops['policy-pending'] + r2.relay.stats().drops['policy-pending'], 0, 'held while tags were looked up, not dropped');
  const r1Before = r1.relay.stats().drops.policy;
  await refused(t, n, c, b, 3, 'c (r1) → b (r2)');
  t.true(r1.relay.stats().drops.policy > r1Before, 'dropped at the ingress relay r1');
  t.is(r1.relay.stats().meshSent, r2.relay.stats().meshDelivered + r2.relay.stats().drops.policy + r2.relay.stats().drops['policy-pending'],
    'nothing of c\'s reached r2 unaccounted');

  // The home relay's own check: r1 forwards for anyone (it has no policy source), r2 enforces.
  const m = await net(t, { relays: 2, policy: WEB_TO_DB, policyRelays: [1] });
  const [ma, mb, mc] = ['a', 'b', 'c'].map((x) => m.agent(x));
  t.is(m.relays[0].relay.policyRules(), -1, 'r1 does not check');
  await deliver(t, ma, mb, 1, 'a (r1) → b (r2): the home relay r2 lets web → db in');
  const r2Before = m.relays[1].relay.stats().drops.policy;
  await refused(t, m, mc, mb, 2, 'c (r1) → b (r2), carried by r1');
  t.true(m.relays[1].relay.stats().drops.policy > r2Before, 'dropped at the home relay r2');
  t.is(m.relays[0].relay.stats().drops.policy, 0);
});

test.serial('a policy change opens and cuts traffic within a second', async (t) => {
  const n = await net(t, { policy: WEB_TO_DB });
  const [a, b, c] = ['a', 'b', 'c'].map((x) => n.agent(x));
  await refused(t, n, c, a, 1, 'c → a before the change');
  n.policy!.setPolicy(ALSO_GUEST);
  const opened = Date.now();
  await deliver(t, c, a, 2, 'c → a after guest → web was allowed', 1000);
  t.true(Date.now() - opened < 1000, `opened in ${Date.now() - opened} ms`);
  await deliver(t, a, c, 3, 'a → c (the reply direction)');
  await refused(t, n, c, b, 4, 'c → b is still not allowed');
  // Cut again: the established WireGuard session's next frames are dropped.
  n.policy!.setPolicy(WEB_TO_DB);
  await waitFor(() => n.relays[0].relay.policyRules() === 1, { timeoutMs: 1000, what: 'the cut applied' });
  const before = policyDrops(n);
  a.tun.clearWritten();
  c.tun.inject(icmpEcho(c.vip, a.vip, { seq: 5 }));
  await waitFor(() => policyDrops(n) > before, { timeoutMs: 1000, what: 'c\'s frame on the old session dropped' });
  t.false(a.tun.written().some((p) => p.readUInt32BE(12) === ipOf(c.vip)), 'nothing from c after the cut');
  await deliver(t, a, b, 6, 'a → b flows throughout');
  // Tags changed by an admin count too: c becomes web, so it reaches b.
  n.policy!.setTags(c.vip, ['web']);
  await deliver(t, c, b, 7, 'c → b once c carries tag web', 1000);
});

test.serial('no policy: every member reaches every member, nothing is counted', async (t) => {
  const n = await net(t, { policy: null });
  const [a, b, c] = ['a', 'b', 'c'].map((x) => n.agent(x));
  t.is(n.relays[0].relay.policyRules(), -1);
  await deliver(t, a, b, 1, 'a → b');
  await deliver(t, c, a, 2, 'c → a');
  await deliver(t, c, b, 3, 'c → b');
  await deliver(t, b, c, 4, 'b → c');
  t.is(n.relays[0].relay.stats().drops.policy, 0);
  t.is(n.relays[0].relay.stats().drops['policy-pending'], 0);
  // Setting one applies at once; clearing it again lets c back in.
  n.policy!.setPolicy(WEB_TO_DB);
  await waitFor(() => n.relays[0].relay.policyRules() === 1, { timeoutMs: 1000, what: 'the policy applied' });
  await refused(t, n, c, b, 5, 'c → b once the policy is set (on the session made before)', false);
  n.policy!.setPolicy(null);
  await waitFor(() => n.relays[0].relay.policyRules() === -1, { timeoutMs: 1000, what: 'the policy cleared' });
  await deliver(t, c, b, 6, 'c → b after the policy was cleared', 1000);
});

test.serial('a remote member\'s tags being looked up: frames wait and then pass; a failed lookup drops them as "policy-pending"', async (t) => {
  const n = await net(t, { relays: 2, policy: WEB_TO_DB });
  const [a, b] = ['a', 'b'].map((x) => n.agent(x));
  const [r1, r2] = n.relays;
  const pending = (): number => r1.relay.stats().drops['policy-pending'] + r2.relay.stats().drops['policy-pending'];
  // The lookup fails (Redis away): a's frames to b are dropped as pending, never forwarded unchecked.
  n.policy!.failing = true;
  const pkt = icmpEcho(a.vip, b.vip, { seq: 1 });
  a.tun.inject(pkt);
  await waitFor(() => pending() > 0, { timeoutMs: 2000, what: 'a policy-pending drop' });
  t.is(r1.relay.stats().meshSent, 0, 'nothing went over the mesh unchecked');
  t.false(b.tun.written().some((p) => p.equals(pkt)));
  // The source answers again, but slowly: the next initiation waits for the tags and then passes.
  n.policy!.failing = false;
  n.policy!.holdLookups();
  const before = pending();
  await new Promise((r) => setTimeout(r, 300));
  t.is(r1.relay.stats().meshSent, 0, 'held at r1 while b\'s tags are unknown');
  n.policy!.releaseLookups();
  // r2 looks up a's tags in turn (held there, answered on release or by the next release).
  const release = setInterval(() => n.policy!.releaseLookups(), 20);
  t.teardown(() => clearInterval(release));
  await deliver(t, a, b, 2, 'a → b once the tags are known');
  t.is(pending(), before, 'nothing more dropped while waiting');
});
