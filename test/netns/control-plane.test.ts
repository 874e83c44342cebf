/**
 * Members join through the coordinator with a token and reach each other through the relay;
 * Redis holds original IP → vip and each member's relay 4-tuple.
 *
 *   hub: redis · coordinator · relay (VIP 10.90.0.1)
 *   vpc1: a1   vpc2: s1   m1: a2   m2: a3 (joins later)   m3: an attacker, then a4
 */
import anyTest, { type TestFn } from 'ava';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { addMemberNamespace, type MemberNamespace, startJoinedOverlay, type JoinedOverlay, cliPath } from '../../testbed';
import { forRoot } from '../harness/root';

interface Ctx { topo: Topology; overlay: JoinedOverlay; extra: MemberNamespace[]; token: string }
const test = anyTest as TestFn<Ctx>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping', 'redis-cli'] });

async function pingOk(topo: Topology, ns: string, addr: string, count = 2): Promise<boolean> {
  const r = await topo.exec(ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', addr], { check: false });
  return r.code === 0;
}

async function redisCli(t: Ctx, ...args: string[]): Promise<string> {
  return (await t.topo.exec(t.topo.ns.hub, 'redis-cli', ['-h', t.topo.addr.vip, '-p', '6379', ...args])).stdout.trim();
}

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itcp') });
  t.context.topo = topo;
  t.context.extra = [await addMemberNamespace(topo, 1), await addMemberNamespace(topo, 2), await addMemberNamespace(topo, 3)];
  t.context.overlay = await startJoinedOverlay(topo);
  t.context.token = await t.context.overlay.createToken();
});
test.after.always(async (t) => {
  await t.context.overlay?.stop();
  for (const m of t.context.extra ?? []) await m.remove();
  await t.context.topo?.destroy();
});

rootTest('three members join with a token and all reach each other', async (t) => {
  const { topo, overlay, token, extra } = t.context;
  const a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token });
  const s1 = await overlay.join('s1', topo.ns.vpc2, topo.addr.vpc2, { token });
  const a2 = await overlay.join('a2', extra[0].ns, extra[0].addr, { token });
  t.not(a1.vip, s1.vip);
  t.not(a1.vip, a2.vip);
  for (const [from, to] of [[a1, s1], [s1, a2], [a2, a1], [s1, a1]] as const) {
    t.true(await pingOk(topo, from.ns, to.vip, 3), `${from.name} → ${to.name} (${to.vip})`);
  }
});

rootTest('Redis maps original IP → vip and holds each member\'s relay 4-tuple', async (t) => {
  const { topo, overlay } = t.context;
  const a1 = overlay.members.get('a1')!;
  t.is(await redisCli(t.context, 'GET', `isthmus:orig:${topo.addr.vpc1}`), a1.vip);
  const session = await redisCli(t.context, 'HGETALL', `isthmus:session:${a1.vip}`);
  const fields = Object.fromEntries(session.split('\n').reduce<string[][]>((acc, v, i) => (i % 2 ? acc[acc.length - 1].push(v) : acc.push([v]), acc), []));
  t.is(fields.relayIp, topo.addr.vip);
  t.is(fields.relayPort, '7000');
  t.is(fields.agentIp, topo.addr.vpc1);
  t.regex(fields.agentPort ?? '', /^\d+$/);
  t.is(fields.relayId, 'relay1');
});

rootTest('a fourth member is reachable by the others within 2 s of joining', async (t) => {
  const { topo, overlay, token, extra } = t.context;
  const a3 = await overlay.join('a3', extra[1].ns, extra[1].addr, { token });
  // From the moment the coordinator accepted the join (the agent's own log time).
  const joinedAt = a3.joinedAtMs;
  let reachable = false;
  while (Date.now() - joinedAt < 2000 && !reachable) {
    reachable = (await topo.exec(topo.ns.vpc2, 'ping', ['-c', '1', '-W', '1', a3.vip], { check: false })).code === 0;
  }
  const elapsed = Date.now() - joinedAt;
  t.log(`new member reachable from s1 ${elapsed} ms after it joined`);
  t.true(reachable, `not reachable within 2 s (${elapsed} ms)`);
});

rootTest('the coordinator is killed: traffic keeps flowing, and a restarted one serves again', async (t) => {
  const { topo, overlay } = t.context;
  const a1 = overlay.members.get('a1')!;
  const s1 = overlay.members.get('s1')!;
  await overlay.coordinator.stop(0);
  t.true(await pingOk(topo, a1.ns, s1.vip, 5));
  t.true(await pingOk(topo, s1.ns, a1.vip, 3));
  await overlay.restartCoordinator();
  t.true(await pingOk(topo, a1.ns, s1.vip, 2));
});

rootTest('a restarted member keeps its vip and needs no token (key from its 0600 state dir)', async (t) => {
  const { topo, overlay } = t.context;
  const a2 = overlay.members.get('a2')!;
  const mode = statSync(join(a2.stateDir, 'private.key')).mode & 0o777;
  t.is(mode, 0o600);
  await a2.process.stop();
  const again = await overlay.join('a2', a2.ns, a2.originalIp); // no token
  t.is(again.vip, a2.vip);
  t.true(await pingOk(topo, topo.ns.vpc2, again.vip, 2));
});

rootTest('from its own VPC, a member cannot claim another member\'s original IP or vip (the CLI prints why); its own address is accepted', async (t) => {
  const { topo, overlay, token, extra } = t.context;
  const a1 = overlay.members.get('a1')!;
  const m3 = extra[2];
  const attempt = async (originalIp: string, tok: string, name: string) => {
    const r = await topo.exec(m3.ns, process.execPath, [cliPath(), 'agent', ...overlay.coordinatorArgs, '--relay', overlay.relayAddr,
      '--token', tok, '--original-ip', originalIp, '--hostname', name, '--state-dir', join(overlay.dir, `state-${name}`)], { check: false, timeoutMs: 20_000 });
    return { code: r.code, err: r.stderr };
  };
  const notMine = await attempt(topo.addr.vpc1, token, 'thief1');
  t.not(notMine.code, 0);
  t.regex(notMine.err, /403 original-ip-not-allowed .*10\.91\.1\.2 is not the address this join comes from/);
  const vip = await attempt(a1.vip, token, 'thief2');
  t.regex(vip.err, /400 original-ip-in-overlay/);
  // Even a token that allows vpc1's prefix cannot take a1's address: 409 naming the holder.
  const wide = await overlay.createToken(['--original-cidr', '10.91.1.0/24']);
  const held = await attempt(topo.addr.vpc1, wide, 'thief3');
  t.regex(held.err, new RegExp(`409 original-ip-taken .*held by ${a1.vip.replace(/\./g, '\\.')} \\(a1\\)`));
  t.is(await redisCli(t.context, 'GET', `isthmus:orig:${topo.addr.vpc1}`), a1.vip, 'a1 keeps its address');
  t.true(await pingOk(topo, topo.ns.vpc2, a1.vip, 2), 'and its traffic');
  // Positive control: the address the namespace really has, the hostname nobody holds.
  const a4 = await overlay.join('a4', m3.ns, m3.addr, { token });
  t.is(await redisCli(t.context, 'GET', `isthmus:orig:${m3.addr}`), a4.vip);
});

rootTest('a member that leaves is gone from the map and from its peers', async (t) => {
  const { topo, overlay } = t.context;
  const a3 = overlay.members.get('a3')!;
  await a3.process.stop();
  const r = await topo.exec(a3.ns, process.execPath, [cliPath(), 'agent', '--leave', ...overlay.coordinatorArgs,
    '--state-dir', a3.stateDir, '--original-ip', a3.originalIp]);
  t.regex(r.stdout, /left/);
  t.is(await redisCli(t.context, 'EXISTS', `isthmus:node:${a3.vip}`), '0');
  // The relay follows the removal at once (not after ~30 s of idle expiry): binding and 4-tuple gone.
  let session = '1';
  for (let i = 0; i < 20 && session !== '0'; i++) {
    session = await redisCli(t.context, 'EXISTS', `isthmus:session:${a3.vip}`);
    if (session !== '0') await new Promise((res) => setTimeout(res, 50));
  }
  t.is(session, '0', 'the relay still holds the removed member\'s session');
  overlay.members.delete('a3');
  // s1's peer set follows: a3's vip is no longer among its peers' allowed IPs.
  const s1 = overlay.members.get('s1')!;
  let peers: string[] = [];
  for (let i = 0; i < 20; i++) {
    const before = s1.process.output().length;
    process.kill(s1.process.pid, 'SIGUSR1');
    // The status line this signal printed (waitForLine would also match an earlier one).
    let last: string | undefined;
    for (let w = 0; w < 40 && !last; w++) {
      last = s1.process.output().slice(before).split('\n').find((l) => l.includes('"msg":"status"'));
      if (!last) await new Promise((res) => setTimeout(res, 50));
    }
    if (!last) continue;
    peers = (JSON.parse(last) as { status: { peers: { allowedIps: string[] }[] } }).status.peers.flatMap((p) => p.allowedIps);
    if (!peers.includes(`${a3.vip}/32`)) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  t.false(peers.includes(`${a3.vip}/32`), `s1 still routes to ${a3.vip}`);
});
