/**
 * Chaos on a 3-relay cluster behind the VIP (nft flow-hash DNAT + testbed/vip-health.ts), with a
 * paced TCP transfer a1 (vpc1) → s1 (vpc2) running through it:
 *
 *   1. kill -9 the relay carrying a1 → a1 notices (its traffic goes unanswered: 0.3 s, then 3
 *      unanswered probe PINGs 0.2 s apart), rebinds on a new source
 *      port, the LB (dead relay already removed) picks a live one, the other relays learn
 *      the new home from pub/sub; the transfer completes intact, stall < 3 s.
 *   2. the killed relay restarts and the health check puts it back.
 *   3. kill two of three → everyone ends on the last relay; the transfer completes.
 *   4. Redis restarts while traffic flows → the transfer does not notice.
 *   5. afterwards every member's P:session:<vip> names the relay and 4-tuple it really uses.
 *
 * The stall times are printed (t.log) for the closing note.
 */
import anyTest, { type TestFn } from 'ava';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { startClusterOverlay, type ClusterOverlay, sleep } from '../../testbed';
import { startTransfer, stallMs, waitForProgress } from './chaos-transfer';
import { forRoot } from '../harness/root';

const test = anyTest as TestFn<{ topo: Topology; overlay: ClusterOverlay }>;
/** Shared across tests (ava gives each test a shallow copy of the context). */
const state = { split: false, victim: 1 };
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping', 'redis-server'] });
const RATE = 8 * 2 ** 20;

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itch'), relays: 3 });
  t.context.topo = topo;
  t.context.overlay = await startClusterOverlay(topo);
  // Session up end to end before the clock starts.
  await topo.exec(topo.ns.vpc1, 'ping', ['-c', '3', '-i', '0.2', '-w', '15', t.context.overlay.s1.vip]);
});
test.after.always(async (t) => {
  await t.context.overlay?.stop();
  await t.context.topo?.destroy();
});

const relayIndex = (id: string | undefined): number => Number(id?.slice(1));
const noteSplit = (t: { context: { overlay: ClusterOverlay } }): void => {
  const { overlay } = t.context;
  if (overlay.homeOf(overlay.a1) !== overlay.homeOf(overlay.s1)) state.split = true;
};
/** Failover milestones in the agents' logs after `since` (ms after it). */
const timeline = (overlay: ClusterOverlay, since: number): string => [overlay.a1, overlay.s1].map((m) => {
  const ev = m.process!.output().split('\n').filter((l) => /relay not answering|authenticated to relay/.test(l)).map((l) => {
    try {
      const j = JSON.parse(l) as { time: number; msg: string; relayId?: string };
      return j.time >= since ? `${j.msg}${j.relayId ? ` ${j.relayId}` : ''} +${j.time - since}` : '';
    } catch {
      return '';
    }
  }).filter(Boolean);
  return `${m.name}: ${ev.join(', ')}`;
}).join('; ');

rootTest('kill -9 the relay carrying a TCP transfer: it completes intact, stall < 3 s', async (t) => {
  const { topo, overlay } = t.context;
  noteSplit(t);
  const victim = relayIndex(overlay.homeOf(overlay.a1));
  t.log(`a1 on ${overlay.homeOf(overlay.a1)}, s1 on ${overlay.homeOf(overlay.s1)}; killing r${victim}`);
  const tr = await startTransfer(topo, { dstVip: overlay.s1.vip, port: 9100, bytes: 48 * 2 ** 20, rate: RATE });
  await waitForProgress(tr, 8 * 2 ** 20);
  const killedAt = Date.now();
  await overlay.killRelay(victim);
  const r = await tr.done;
  const stall = stallMs(r.samples);
  t.log(`relay kill: stall ${stall.stallMs} ms (longest gap without new bytes at the sink); kill → bytes flowing again ${stall.at + stall.stallMs - killedAt} ms`);
  t.log(`now a1 on ${overlay.homeOf(overlay.a1)}, s1 on ${overlay.homeOf(overlay.s1)}; ${timeline(overlay, killedAt)}`);
  noteSplit(t);
  t.is(r.received.bytes, r.sent.bytes);
  t.is(r.received.sha256, r.sent.sha256);
  t.true(stall.stallMs < 3000, `stall ${stall.stallMs} ms`);
  t.not(overlay.homeOf(overlay.a1), `r${victim}`);
  state.victim = victim;
});

rootTest('the killed relay restarts and the health check puts it back', async (t) => {
  const { overlay } = t.context;
  const victim = state.victim;
  const ip = t.context.topo.addr.relays[victim - 1];
  const before = overlay.health.output().length;
  await overlay.startRelay(victim);
  const until = Date.now() + 10_000;
  while (!overlay.health.output().slice(before).includes(`"event":"up","backend":"${ip}"`)) {
    if (Date.now() > until) return t.fail(`health check did not re-add ${ip}: ${overlay.health.output().slice(-400)}`);
    await sleep(100);
  }
  const r = await t.context.topo.exec(t.context.topo.ns.vpc1, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', overlay.s1.vip], { check: false });
  t.regex(r.stdout, /[1-9] received/);
});

rootTest('kill two of three relays during a transfer: it completes on the last one', async (t) => {
  const { topo, overlay } = t.context;
  const a1Home = relayIndex(overlay.homeOf(overlay.a1));
  const s1Home = relayIndex(overlay.homeOf(overlay.s1));
  // Keep one relay that neither member uses if possible, so both must move.
  const keep = [1, 2, 3].find((i) => i !== a1Home && i !== s1Home) ?? [1, 2, 3].find((i) => i !== a1Home)!;
  const victims = [1, 2, 3].filter((i) => i !== keep);
  t.log(`a1 on r${a1Home}, s1 on r${s1Home}; killing ${victims.map((v) => `r${v}`).join(' and ')}, keeping r${keep}`);
  const tr = await startTransfer(topo, { dstVip: overlay.s1.vip, port: 9101, bytes: 48 * 2 ** 20, rate: RATE });
  await waitForProgress(tr, 8 * 2 ** 20);
  const killedAt = Date.now();
  await Promise.all(victims.map((v) => overlay.killRelay(v)));
  const r = await tr.done;
  const stall = stallMs(r.samples);
  t.log(`two relays killed: stall ${stall.stallMs} ms; ${timeline(overlay, killedAt)}`);
  t.is(r.received.sha256, r.sent.sha256);
  t.is(r.received.bytes, r.sent.bytes);
  t.is(overlay.homeOf(overlay.a1), `r${keep}`);
  t.is(overlay.homeOf(overlay.s1), `r${keep}`);
  t.true(stall.stallMs < 5000, `stall ${stall.stallMs} ms`);
  for (const v of victims) await overlay.startRelay(v);
});

rootTest('Redis restarts while traffic flows: the transfer does not stall', async (t) => {
  const { topo, overlay } = t.context;
  const tr = await startTransfer(topo, { dstVip: overlay.s1.vip, port: 9102, bytes: 32 * 2 ** 20, rate: RATE });
  await waitForProgress(tr, 4 * 2 ** 20);
  await overlay.restartRedis(1000);
  const r = await tr.done;
  const stall = stallMs(r.samples);
  t.log(`Redis restart: stall ${stall.stallMs} ms`);
  t.is(r.received.sha256, r.sent.sha256);
  t.true(stall.stallMs < 1000, `stall ${stall.stallMs} ms`);
});

rootTest('afterwards the 4-tuples in Redis match reality', async (t) => {
  const { topo, overlay } = t.context;
  // Records re-asserted every 2 s (--session-refresh 2), also after the Redis restart.
  await sleep(3000);
  for (const [m, ip] of [[overlay.a1, topo.addr.vpc1], [overlay.s1, topo.addr.vpc2]] as const) {
    const rec = await overlay.sessionRecord(m);
    const sock = await overlay.agentRelaySocket(m);
    t.true(sock.ready, `${m.name} not ready`);
    t.is(rec.relayId, overlay.homeOf(m) ?? '(none)', `${m.name}: ${JSON.stringify(rec)}`);
    t.is(rec.agentIp, ip);
    t.is(Number(rec.agentPort), sock.port);
    t.is(`${rec.relayIp}:${rec.relayPort}`, `${topo.addr.vip}:7000`);
  }
  t.log(`a1 and s1 were on different relays at some point: ${state.split}`);
});
