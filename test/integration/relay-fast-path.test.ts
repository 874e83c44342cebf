/**
 * The relay's C fast path (relay/fast-path.ts, native-bindings/src/relay_fast.c) inside a real
 * relay on the native socket, with real members on loopback. Hostile and honest: every refusal
 * next to a positive control in the same relay, and the C counters (read from the socket's
 * table) show the C path, not the JS forwarder, made the decision.
 *
 *   a (tag web) ──┐
 *   b (tag db)  ──┼── relay (native socket, fast path on)      policy: web → db
 *   c (tag guest)─┘
 */
import test, { type ExecutionContext } from 'ava';
import { ManualClock, systemClock, type Clock } from '../../common/clock';
import { silentLogger } from '../../common/logger';
import { formatAddr } from '../../common/ipv4';
import { nativeAvailable, openUdpSocket, type NativeUdpSocket, type RelayFastStats } from '../../native-bindings';
import { FrameType, writeRelayHeader } from '../../protocol/relay-frame';
import { MSG_TRANSPORT_MIN_SIZE } from '../../protocol/constants';
import { createRelay, type Relay } from '../../relay';
import { MemoryPolicySource } from '../harness/memory-policy-source';
import { directoryOf, fakeWg, identity, rawPeer, startMember, until, type Identity, type Member } from './relay-harness';

const available = nativeAvailable();
const t = available ? test.serial : test.serial.skip;
if (!available) console.log('native addon not built: skipping relay fast path tests');

const WEB_TO_DB = '{ "rules": [ { "from": ["tag:web"], "to": ["tag:db"], "ports": ["icmp"] } ] }';
const GUEST_TOO = '{ "rules": [ { "from": ["tag:web"], "to": ["tag:db"], "ports": ["icmp"] }, { "from": ["tag:guest"], "to": ["tag:db"], "ports": ["icmp"] } ] }';

interface Net {
  relay: Relay;
  socket: NativeUdpSocket;
  port: number;
  policy: MemoryPolicySource;
  ids: Record<'a' | 'b' | 'c', Identity>;
  m: Record<'a' | 'b' | 'c', Member>;
  /** the relay socket's C counters */
  fast(): RelayFastStats;
  mirrorSize(): number;
}

async function net(tt: ExecutionContext, o: { policy?: string; clock?: Clock; keepaliveSeconds?: number; memberKeepaliveMs?: number } = {}): Promise<Net> {
  const ids = { a: identity('100.64.0.1'), b: identity('100.64.0.2'), c: identity('100.64.0.3') };
  const policy = new MemoryPolicySource();
  policy.setTags(formatAddr(ids.a.vip), ['web'], true);
  policy.setTags(formatAddr(ids.b.vip), ['db'], true);
  policy.setTags(formatAddr(ids.c.vip), ['guest'], true);
  if (o.policy) policy.setPolicy(o.policy);
  const socket = openUdpSocket({ host: '127.0.0.1', port: 0 });
  const relay = createRelay({ id: 'fast', keepaliveSeconds: o.keepaliveSeconds ?? 1, tickMs: o.clock ? 1e9 : 100 })({
    logger: silentLogger(), clock: o.clock ?? systemClock, socket, directory: directoryOf(Object.values(ids)), policy: o.policy ? policy : undefined,
  });
  relay.start();
  await relay.policyReady();
  const port = socket.localAddress.port;
  const m = {
    a: await startMember(ids.a, port, { keepaliveMs: o.memberKeepaliveMs }),
    b: await startMember(ids.b, port, { keepaliveMs: o.memberKeepaliveMs }),
    c: await startMember(ids.c, port, { keepaliveMs: o.memberKeepaliveMs }),
  };
  tt.teardown(() => { for (const x of Object.values(m)) x.close(); relay.stop(); socket.close(); });
  await until(() => Object.values(m).every((x) => x.client.isReady), 'three members ready');
  const table = socket.relayFastPath({ dataType: FrameType.DATA, minPayload: MSG_TRANSPORT_MIN_SIZE });
  return { relay, socket, port, policy, ids, m, fast: () => table.stats, mirrorSize: () => table.size };
}

/** Sends `n` frames from `from` to `to`, one at a time; resolves when all arrived (the first of a new pair is
 *  JS's, which decides the verdict; the rest are C's). */
async function deliver(x: Net, from: 'a' | 'b' | 'c', to: 'a' | 'b' | 'c', n = 3): Promise<void> {
  const start = x.m[to].received.length;
  for (let i = 0; i < n; i++) {
    x.m[from].sendData(x.ids[to].vip, fakeWg(80));
    await until(() => x.m[to].received.length >= start + i + 1, `frame ${i} ${from} → ${to}`).catch(() => undefined);
  }
  await until(() => x.m[to].received.length >= start + n, `${n} frames ${from} → ${to}`).catch((e: Error) => { throw new Error(`${e.message}: got ${x.m[to].received.length - start}, relay ${JSON.stringify(x.relay.stats())}, C ${JSON.stringify(x.fast())}`); });
  for (const r of x.m[to].received.slice(start)) if (r.srcVip !== x.ids[from].vip) throw new Error(`wrong source vip ${r.srcVip}`);
}

/** Sends `n` frames from `from` to `to`, one at a time, and checks none arrives while `settled` becomes true. */
async function refused(tt: ExecutionContext, x: Net, from: 'a' | 'b' | 'c', to: 'a' | 'b' | 'c', settled: () => boolean, what: string, n = 3): Promise<void> {
  const start = x.m[to].received.length;
  // One at a time: frames of one receive batch are all judged before JS decides the first verdict.
  for (let i = 0; i < n; i++) {
    x.m[from].sendData(x.ids[to].vip, fakeWg(80));
    await new Promise((r) => setTimeout(r, 30));
  }
  await until(settled, what);
  await new Promise((r) => setTimeout(r, 150));
  tt.is(x.m[to].received.length, start, `${what}: nothing reached ${to}`);
}

t('policy: a guest refused by the C path next to web → db forwarded by it; policy and tag changes reach the mirror', async (tt) => {
  const x = await net(tt, { policy: WEB_TO_DB });
  tt.is(x.mirrorSize(), 3, 'the mirror holds every session');
  await deliver(x, 'a', 'b');
  await deliver(x, 'b', 'a');
  const f0 = x.fast();
  tt.true(f0.forwarded >= 4, `after the first frame of each direction (JS decides the verdict), C forwards: ${JSON.stringify(f0)}`);
  const d0 = x.fast().policyDrops;
  await refused(tt, x, 'c', 'b', () => x.fast().policyDrops >= d0 + 2, 'c → b refused in C');
  await refused(tt, x, 'a', 'c', () => x.fast().policyDrops >= d0 + 4, 'a → c refused in C');
  const s = x.relay.stats();
  tt.true(s.drops.policy >= x.fast().policyDrops, 'C refusals are in the relay stats (isthmus_relay_drops_total{reason="policy"})');
  tt.true(s.framesForwarded >= x.fast().forwarded, 'C forwards are in the relay stats');
  await deliver(x, 'a', 'b', 2); // still flows next to the refused traffic

  // A policy change: every verdict is forgotten in C; guest → db flows now.
  x.policy.setPolicy(GUEST_TOO);
  await until(() => x.relay.policyRules() === 2, 'the new policy applied');
  await deliver(x, 'c', 'b');
  // And back: refused again, by C after JS decided once.
  x.policy.setPolicy(WEB_TO_DB);
  await until(() => x.relay.policyRules() === 1, 'the old policy applied');
  const d1 = x.fast().policyDrops;
  await refused(tt, x, 'c', 'b', () => x.fast().policyDrops >= d1 + 2, 'c → b refused again');

  // c's tags change to web (node-changed): c's class in C follows.
  x.policy.setTags(formatAddr(x.ids.c.vip), ['web']);
  await until(() => { x.m.c.sendData(x.ids.b.vip, fakeWg(80)); return x.m.b.received.some((r) => r.srcVip === x.ids.c.vip); }, 'c (now web) reaches b');
  await new Promise((r) => setTimeout(r, 50));
  const fw = x.fast().forwarded;
  await deliver(x, 'c', 'b');
  tt.true(x.fast().forwarded >= fw + 2, 'by the C path');
  // ... and back to guest.
  x.policy.setTags(formatAddr(x.ids.c.vip), ['guest']);
  await new Promise((r) => setTimeout(r, 50));
  const d2 = x.fast().policyDrops;
  await refused(tt, x, 'c', 'b', () => x.fast().policyDrops >= d2 + 2, 'c (guest again) refused');
});

t('spoofed source 4-tuple: not forwarded (REAUTH from JS), next to the bound member forwarding; removed members leave the mirror', async (tt) => {
  const x = await net(tt);
  await deliver(x, 'a', 'b');
  const fw = x.fast().forwarded;
  tt.true(fw >= 3, 'no policy: C forwards from the first frame');
  // An attacker on another port sends DATA as if it were a (a valid-looking frame for b).
  const raw = await rawPeer();
  tt.teardown(() => raw.close());
  const f = Buffer.alloc(8 + 80);
  writeRelayHeader(f, 0, FrameType.DATA, x.ids.b.vip);
  fakeWg(80).copy(f, 8);
  const before = x.m.b.received.length;
  raw.send(x.port, f);
  await until(() => raw.replies.some((r) => r[0] === FrameType.REAUTH), 'REAUTH to the spoofer');
  await deliver(x, 'a', 'b', 1); // the control, after the spoof
  tt.is(x.m.b.received.length, before + 1, 'only the control reached b');
  tt.is(x.relay.stats().drops['unbound-source'], 1);
  tt.is(x.fast().forwarded, fw + 1);

  // The coordinator removes b: the C mirror forgets it at once, DATA for b gets UNREACHABLE from JS.
  tt.true(x.relay.removeMember(x.ids.b.vip));
  tt.is(x.mirrorSize(), 2);
  x.m.a.sendData(x.ids.b.vip, fakeWg(80));
  await until(() => x.m.a.unreachable.includes(x.ids.b.vip), 'UNREACHABLE for b');
  tt.is(x.fast().forwarded, fw + 1, 'nothing more forwarded in C for b');
  // Relay stop clears the mirror.
  x.relay.stop();
  tt.is(x.mirrorSize(), 0);
});

t('idle expiry: a member whose DATA only C saw stays bound; a silent one expires', async (tt) => {
  const clock = new ManualClock();
  // Long keepalives: no PINGs during the test, so only DATA could keep a session.
  const x = await net(tt, { clock, keepaliveSeconds: 60, memberKeepaliveMs: 60_000 });
  for (const k of ['a', 'b', 'c'] as const) x.m[k].client.stop();
  clock.advance(100_000);
  const fw = x.fast().forwarded;
  x.m.a.sendData(x.ids.b.vip, fakeWg(80));
  await until(() => x.fast().forwarded === fw + 1, 'a → b forwarded in C');
  x.relay.tick();
  tt.is(x.relay.sessions().find((s) => s.vip === '100.64.0.1')?.lastSeen, 100_000, 'a seen at the tick after its frame');
  clock.advance(90_000); // 190 s: idle limit 180 s
  x.relay.tick();
  tt.deepEqual(x.relay.sessions().map((s) => s.vip), ['100.64.0.1'], 'b and c expired, a kept');
  tt.is(x.mirrorSize(), 1, 'the mirror follows expiry');
  clock.advance(100_000);
  x.relay.tick();
  tt.is(x.relay.sessions().length, 0, 'a expires too once silent');
  tt.is(x.mirrorSize(), 0);
});
