/**
 * Redis loses its data under a running overlay (issue 13.5): FLUSHALL while real agents
 * (the CLI, TUN devices) talk through the relay. The data path keeps working on the cached
 * peer maps; every member re-asserts its signed membership record by itself, so the
 * mapper's original-IP lookups answer again within a minute; a new member is held off
 * during the grace window (a clear 503) and then gets a virtual IP nobody holds.
 *
 *   vpc1: a1 (10.91.1.2)            ┐
 *   vpc2: s1 (10.92.1.2), mapper API ├─ hub: redis · coordinator (--reassert-grace 30s) · relay
 *   m1:   n1 (10.95.1.2), joins after the flush with a new token ┘
 */
import anyTest, { type TestFn } from 'ava';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { addMemberNamespace, cliPath, startJoinedOverlay, type JoinedMember, type JoinedOverlay, type MemberNamespace } from '../../testbed';
import type { ManagedProcess } from '../harness/procs';
import { forRoot } from '../harness/root';
import { redisKeys } from '../../common';

interface Ctx { topo: Topology; overlay: JoinedOverlay; a1: JoinedMember; s1: JoinedMember; mapper: ManagedProcess; m1: MemberNamespace }
const test = anyTest as TestFn<Ctx>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping', 'curl', 'redis-cli'] });
const K = redisKeys();

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itrl') });
  t.context.topo = topo;
  const overlay = await startJoinedOverlay(topo, { coordinatorArgs: ['--reassert-grace', '30s'] });
  t.context.overlay = overlay;
  const token = await overlay.createToken();
  t.context.a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token });
  t.context.s1 = await overlay.join('s1', topo.ns.vpc2, topo.addr.vpc2, { token });
  t.context.mapper = topo.spawn(topo.ns.vpc2, process.execPath, [cliPath(), 'mapper', '--redis', overlay.redisUrl, '--api', '127.0.0.1:7070'],
    { name: 'mapper' });
  await topo.waitForListen(topo.ns.vpc2, 7070, 'tcp');
  t.context.m1 = await addMemberNamespace(topo, 1);
});
test.after.always(async (t) => {
  await t.context.mapper?.stop();
  await t.context.overlay?.stop();
  await t.context.m1?.remove();
  await t.context.topo?.destroy();
});

rootTest('FLUSHALL under a running overlay: members keep talking, every mapping is back within a minute, a newcomer gets a free vip', async (t) => {
  const { topo, overlay, a1, s1, m1 } = t.context;
  const redisCli = async (args: string[]) => (await topo.exec(topo.ns.hub, 'redis-cli', ['-h', topo.addr.vip, ...args])).stdout.trim();
  const ping = (ns: string, to: string) => topo.exec(ns, 'ping', ['-c', '3', '-i', '0.2', '-w', '10', to], { check: false });
  const entry = async (ip: string) => {
    const r = await topo.exec(topo.ns.vpc2, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:7070/v1/map/${ip}`], { check: false });
    try {
      return JSON.parse(r.stdout) as { virtualIp?: string; online?: boolean; relay?: { ip: string; port: number } | null };
    } catch {
      return {};
    }
  };
  const lookup = async (ip: string) => (await entry(ip)).virtualIp;
  t.regex((await ping(topo.ns.vpc2, a1.vip)).stdout, /[23] received/, 'baseline: s1 reaches a1');
  t.is(await lookup(topo.addr.vpc1), a1.vip, 'baseline: the mapper maps a1');

  await redisCli(['FLUSHALL']);
  const flushedAt = Date.now();
  t.regex((await ping(topo.ns.vpc2, a1.vip)).stdout, /[23] received/, 'right after the flush: the data path works on cached maps');

  // Every member's mapping comes back by itself (the agents re-assert their records).
  let back = false;
  while (!back && Date.now() - flushedAt < 60_000) {
    back = await lookup(topo.addr.vpc1) === a1.vip && await lookup(topo.addr.vpc2) === s1.vip;
    if (!back) await new Promise((r) => setTimeout(r, 1000));
  }
  t.true(back, 'both original IPs map to their virtual IPs again within 60 s');
  t.log(`mappings back ${Date.now() - flushedAt} ms after FLUSHALL`);
  for (const m of [a1, s1]) t.regex(m.process.output(), /membership record re-asserted/, `${m.name} re-asserted`);
  // A new member with a new token: held off during the grace window, with the reason…
  const token = await overlay.createToken(['--original-cidr', '10.95.0.0/16']);
  const held = Number(await redisCli(['PTTL', K.allocationHold]));
  t.true(held > 3000, `the hold is on (${held} ms left)`);
  {
    const early = await topo.exec(m1.ns, process.execPath, [cliPath(), 'agent', ...overlay.coordinatorArgs, '--relay', overlay.relayAddr,
      '--original-ip', m1.addr, '--state-dir', `${overlay.dir}/state-early`, '--hostname', 'early', '--token', token], { check: false, timeoutMs: 20_000 });
    t.not(early.code, 0);
    t.regex(early.stderr, /allocations-held/, early.stderr);
  }
  // The relay re-creates the session records Redis lost (its session refresh): the 4-tuples are back too.
  let online = false;
  while (!online && Date.now() - flushedAt < 60_000) {
    const [ea, es] = await Promise.all([entry(topo.addr.vpc1), entry(topo.addr.vpc2)]);
    online = ea.online === true && es.online === true && ea.relay?.port === 7000;
    if (!online) await new Promise((r) => setTimeout(r, 1000));
  }
  t.true(online, 'both members show online with their relay 4-tuple again within 60 s');
  t.log(`sessions back ${Date.now() - flushedAt} ms after FLUSHALL`);
  t.regex((await ping(topo.ns.vpc1, s1.vip)).stdout, /[23] received/, 'a1 reaches s1');
  t.regex((await ping(topo.ns.vpc2, a1.vip)).stdout, /[23] received/, 's1 reaches a1');

  // …then, after it, an address nobody holds, and it reaches a re-asserted member.
  while (Number(await redisCli(['PTTL', K.allocationHold])) > 0) await new Promise((r) => setTimeout(r, 500));
  const n1 = await overlay.join('n1', m1.ns, m1.addr, { token });
  t.false([a1.vip, s1.vip].includes(n1.vip), `${n1.vip} is not a1's ${a1.vip} nor s1's ${s1.vip}`);
  t.regex((await ping(m1.ns, a1.vip)).stdout, /[23] received/, 'the newcomer reaches a1');
  t.is(await lookup(m1.addr), n1.vip);
  t.is(await lookup(topo.addr.vpc1), a1.vip, 'positive control: a1 kept its mapping');
});
