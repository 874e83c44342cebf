/**
 * Access policy on the coordinator (issue 10), against a real redis-server and two coordinators:
 * set/get/clear/check through the client, a refused file changing nothing, unknown tags warned,
 * and policy-scoped peer maps (join answers and long-poll deltas on the other coordinator)
 * following joins, admin tag changes and policy changes. Every "cannot see" sits next to a
 * "can see" for someone the policy connects.
 */
import test from 'ava';
import pino from 'pino';
import { startEnv, member, LAN, ADMIN, type Env } from './coordinator-helpers';
import { CoordinatorClient, CoordinatorHttpError } from '../../coordinator/client';
import { createCoordinator } from '../../coordinator/server';
import type { JoinResponse, Peer, PeersResponse } from '../../coordinator/types';

let env: Env;
test.before(async () => { env = await startEnv(2); });
test.after.always(async () => { await env?.stop(); });

const MISSION = `{
  "rules": [
    { "from": ["tag:controller"], "to": ["tag:agent"], "ports": ["tcp/22", "tcp/8000-9000", "icmp"] }
  ]
}
`;
const MISSION_INBOUND = ['tcp/22', 'tcp/8000-9000', 'icmp'];

async function refused(t: import('ava').ExecutionContext, p: Promise<unknown>, status: number, code: string): Promise<CoordinatorHttpError | undefined> {
  const e = await t.throwsAsync(p, { instanceOf: CoordinatorHttpError });
  t.is(e?.status, status, e?.message);
  t.is(e?.code, code, e?.message);
  return e;
}

const vips = (peers: readonly Peer[]): string[] => peers.map((p) => p.vip).sort();
const find = (peers: readonly Peer[], vip: string): Peer | undefined => peers.find((p) => p.vip === vip);

interface Fleet {
  c1: JoinResponse; a1: JoinResponse; a2: JoinResponse;
  /** Client of coordinator i for member sessions. */
  poll(j: JoinResponse, since: number, waitMs: number, coord?: number): Promise<PeersResponse>;
}

let fleetN = 0;
/** A controller and two agents with token tags (on alternating coordinators), under no policy. */
async function fleet(): Promise<Fleet> {
  const n = ++fleetN;
  const ctl = await env.admin.createToken({ originalCidrs: LAN, uses: -1, tags: ['controller'] });
  const agt = await env.admin.createToken({ originalCidrs: LAN, uses: -1, tags: ['agent'] });
  const c1 = await env.client(0).join({ ...member(`10.50.${n}.1`), token: ctl.token });
  const a1 = await env.client(1).join({ ...member(`10.50.${n}.2`), token: agt.token });
  const a2 = await env.client(0).join({ ...member(`10.50.${n}.3`), token: agt.token });
  return {
    c1, a1, a2,
    poll: (j, since, waitMs, coord = 1) => env.client(coord).peers(j.sessionToken, since, undefined, waitMs),
  };
}

async function fullMap(j: JoinResponse): Promise<{ version: number; peers: Peer[] }> {
  const r = await env.client(1).peers(j.sessionToken);
  if (!r.full) throw new Error('expected a full map');
  return r;
}

test.serial('no policy: the coordinator warns at start; get says every member reaches every member; maps hold everyone with inbound ["*"]', async (t) => {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(s); } });
  const c = await createCoordinator({ redis: env.redis.url, adminToken: 'x'.repeat(32), sweepIntervalMs: 0, logger: log });
  await c.close();
  t.true(lines.some((l) => /"level":40/.test(l) && /no policy: every member reaches every member/.test(l)), lines.join(''));

  const g = await env.admin.getPolicy();
  t.is(g.policy, null);
  t.is(g.text, null);
  t.regex(g.note, /no policy: every member reaches every member/);

  const f = await fleet();
  const m = await fullMap(f.a1);
  t.true([f.c1.vip, f.a1.vip, f.a2.vip].every((v) => find(m.peers, v)), 'an agent sees the other agent and the controller');
  for (const p of m.peers) t.deepEqual(p.inbound, ['*']);
  // Check without a policy: allowed, no rule.
  const ck = await env.admin.checkPolicy({ from: f.a1.vip, to: f.a2.vip, port: 'tcp/80' });
  t.true(ck.allowed);
  t.true(ck.noPolicy);
  t.is(ck.rule, undefined);
});

test.serial('set / get / check / clear; unknown tags are warned; a malformed file is refused whole and the policy in force stays', async (t) => {
  const f = await fleet();
  const withUnknown = MISSION.replace('"tag:agent"]', '"tag:agent", "tag:nosuch-tag"]');
  const s = await env.admin.setPolicy(withUnknown);
  t.true(s.changed);
  t.is(s.rules, 1);
  t.deepEqual(s.unknownTags, ['nosuch-tag']);
  t.regex(s.warnings.join('\n'), /tag:nosuch-tag/);
  const again = await env.admin.setPolicy(withUnknown);
  t.false(again.changed, 'the same policy again is no change (no event)');
  t.is(again.version, s.version);

  const s2 = await env.admin.setPolicy(MISSION);
  t.true(s2.changed);
  t.deepEqual(s2.unknownTags, [], 'tags carried by members or tokens are not warned');
  const g = await env.admin.getPolicy();
  t.deepEqual(g.policy, { rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: MISSION_INBOUND }] });
  t.regex(g.text!, /"tag:controller"/);
  t.regex(g.note, /1 rule/);

  // check: by vip, original IP and hostname; the rule is named; the reverse direction is denied.
  const ok = await env.admin.checkPolicy({ from: f.c1.vip, to: f.a1.vip, port: 'tcp/8080' });
  t.true(ok.allowed);
  t.is(ok.rule, 0);
  t.regex(ok.ruleText!, /tag:controller.*tag:agent/);
  t.deepEqual(ok.fromTags, ['controller']);
  t.deepEqual(ok.toTags, ['agent']);
  const byOrig = await env.admin.checkPolicy({ from: `10.50.${fleetN}.1`, to: `h-10-50-${fleetN}-2`, port: 'icmp' });
  t.true(byOrig.allowed);
  t.is(byOrig.to.vip, f.a1.vip);
  const rev = await env.admin.checkPolicy({ from: f.a1.vip, to: f.c1.vip, port: 'tcp/22' });
  t.false(rev.allowed, 'a rule does not let "to" open flows to "from"');
  t.is(rev.rule, undefined);
  const port = await env.admin.checkPolicy({ from: f.c1.vip, to: f.a1.vip, port: 'tcp/80' });
  t.false(port.allowed, 'a port outside the rule');
  const u = await refused(t, env.admin.checkPolicy({ from: f.c1.vip, to: '10.99.99.99', port: 'tcp/22' }), 404, 'not-found');
  t.regex(u!.message, /to: member "10\.99\.99\.99"/);
  const uf = await refused(t, env.admin.checkPolicy({ from: 'no-such-host', to: f.a1.vip, port: 'tcp/22' }), 404, 'not-found');
  t.regex(uf!.message, /from: member "no-such-host"/);
  await refused(t, env.admin.checkPolicy({ from: f.c1.vip, to: f.a1.vip, port: 'tcp/0' }), 400, 'invalid-port');

  // A malformed file: refused with path, line and reason; the policy in force is unchanged.
  const version = await env.registryVersion();
  const bad = '{\n  "rules": [\n    { "from": ["tag:controller"], "to": ["tag:agent"], "ports": ["tcp/22", "tcp/70000"] }\n  ]\n}\n';
  const e = await refused(t, env.admin.setPolicy(bad), 400, 'invalid-policy');
  t.is(e!.body.path, 'rules[0].ports[1]');
  t.is(e!.body.line, 3);
  t.is(typeof e!.body.column, 'number');
  t.regex(String(e!.body.reason), /outside 1-65535/);
  const dup = await refused(t, env.admin.setPolicy('{"rules": [{"from": ["*"], "from": ["*"], "to": ["*"], "ports": ["*"]}]}'), 400, 'invalid-policy');
  t.is(dup!.body.path, 'rules[0].from');
  t.is((await env.admin.getPolicy()).text, g.text);
  t.is(await env.registryVersion(), version, 'a refused file changes nothing');
  t.false((await env.admin.checkPolicy({ from: f.a1.vip, to: f.a2.vip, port: 'tcp/22' })).allowed, 'the mission policy is still in force');
  // As an object body, too.
  const obj = await env.admin.setPolicy({ rules: [{ from: ['*'], to: ['*'], ports: ['*'] }] });
  t.true(obj.changed);
  t.true((await env.admin.checkPolicy({ from: f.a1.vip, to: f.a2.vip, port: 'tcp/22' })).allowed);

  const c = await env.admin.clearPolicy();
  t.true(c.changed);
  t.regex(c.note, /every member reaches every member/);
  t.is((await env.admin.getPolicy()).policy, null);
  t.false((await env.admin.clearPolicy()).changed);
  // Only the admin.
  await refused(t, new CoordinatorClient({ url: env.urls[0], insecure: true, adminToken: 'wrong-token-0123456789' }).setPolicy(MISSION), 401, 'unauthorized');
});

test.serial('scoped maps: an agent sees only controllers, a controller sees the agents, agents never see each other; inbound on both sides', async (t) => {
  const f = await fleet();
  await env.admin.setPolicy(MISSION);
  t.teardown(() => env.admin.clearPolicy());
  const a1 = await fullMap(f.a1);
  const a2 = await fullMap(f.a2);
  const c1 = await fullMap(f.c1);
  const controllers = (await env.admin.listNodes()).filter((n) => n.tags.includes('controller')).map((n) => n.vip);
  const agents = (await env.admin.listNodes()).filter((n) => n.tags.includes('agent')).map((n) => n.vip);
  // Agent: itself and the controllers, nobody else.
  t.deepEqual(vips(a1.peers), [...controllers, f.a1.vip].sort());
  t.truthy(find(a1.peers, f.c1.vip), 'positive control: the agent sees the controller');
  t.falsy(find(a1.peers, f.a2.vip), 'an agent does not see another agent');
  t.falsy(find(a2.peers, f.a1.vip), 'nor the other way');
  // Controller: itself and the agents (not other controllers: no rule connects them).
  t.deepEqual(vips(c1.peers), [...agents, f.c1.vip].sort());
  // inbound: what that peer may open towards the receiver.
  t.deepEqual(find(a1.peers, f.c1.vip)!.inbound, MISSION_INBOUND, 'the controller may open the rule\'s ports to the agent');
  t.deepEqual(find(c1.peers, f.a1.vip)!.inbound, [], 'the agent may open nothing to the controller (it is there for the replies)');
  // The join answer is scoped the same way.
  const agt = await env.admin.createToken({ originalCidrs: LAN, tags: ['agent'] });
  const a3 = await env.client(1).join({ ...member(`10.50.${fleetN}.4`), token: agt.token });
  t.deepEqual(vips(a3.peers), [...controllers, a3.vip].sort());
});

test.serial('a policy change reaches a member long-polling the other coordinator within a second, as the right delta; others are not woken', async (t) => {
  const f = await fleet();
  await env.admin.setPolicy(MISSION);
  t.teardown(() => env.admin.clearPolicy());
  const a1 = await fullMap(f.a1);
  const c1 = await fullMap(f.c1);

  // Clearing: the agent's poll (coordinator 1) gets the other agent added and the controller's inbound widened.
  const p1 = f.poll(f.a1, a1.version, 5000, 1);
  await new Promise((r) => setTimeout(r, 100));
  const t0 = Date.now();
  await new CoordinatorClient({ url: env.urls[0], insecure: true, adminToken: ADMIN }).clearPolicy();
  const d1 = await p1;
  const ms = Date.now() - t0;
  t.log(`policy change → delta on the other coordinator: ${ms} ms`);
  t.true(ms < 1000, `${ms} ms`);
  if (d1.full) return void t.fail('expected a delta');
  t.truthy(find(d1.upserts, f.a2.vip), 'the other agent is added');
  t.deepEqual(find(d1.upserts, f.a2.vip)!.inbound, ['*']);
  t.deepEqual(find(d1.upserts, f.c1.vip)!.inbound, ['*'], 'the controller entry is updated');
  t.deepEqual(d1.removals, []);

  // Setting it again: the other agent is removed, the controller narrowed again.
  const p2 = f.poll(f.a1, d1.version, 5000, 1);
  await env.admin.setPolicy(MISSION);
  const d2 = await p2;
  if (d2.full) return void t.fail('expected a delta');
  t.true(d2.removals.includes(f.a2.vip), 'the other agent is removed');
  t.deepEqual(find(d2.upserts, f.c1.vip)!.inbound, MISSION_INBOUND);
  t.falsy(find(d2.upserts, f.a2.vip));

  // A rule about other tags changes nobody's view here: neither poll is answered.
  const quietC = f.poll(f.c1, d2.version, 700, 1);
  const quietA = f.poll(f.a1, d2.version, 700, 0);
  await env.admin.setPolicy(MISSION.replace(']\n}', ',\n    { "from": ["tag:x"], "to": ["tag:y"], "ports": ["udp/53"] }\n  ]\n}'));
  for (const q of [await quietC, await quietA]) {
    if (q.full) return void t.fail('expected an empty delta');
    t.deepEqual([q.upserts.length, q.removals.length], [0, 0], 'no change, no answer');
  }
  // Widening the rule's ports changes what the controller may open to agents: the agent's map
  // changes (positive control), the controller's does not (agents still may open nothing to it).
  const v = (await fullMap(f.a1)).version;
  const loud = f.poll(f.a1, v, 3000, 1);
  const still = f.poll(f.c1, v, 700, 0);
  await env.admin.setPolicy(MISSION.replace('"icmp"', '"icmp", "udp/53"'));
  const l = await loud;
  const s = await still;
  if (l.full || s.full) return void t.fail('expected deltas');
  const controllers = (await env.admin.listNodes()).filter((n) => n.tags.includes('controller')).map((n) => n.vip);
  t.deepEqual(vips(l.upserts), [...controllers].sort(), 'every controller entry is updated, nothing else');
  t.deepEqual(find(l.upserts, f.c1.vip)!.inbound, ['tcp/22', 'tcp/8000-9000', 'udp/53', 'icmp']);
  t.deepEqual(l.removals, []);
  t.deepEqual([s.upserts.length, s.removals.length], [0, 0]);
  void c1;
});

test.serial('an admin tag change moves a member in and out of the maps of exactly the members whose view changes; joins too', async (t) => {
  const f = await fleet();
  await env.admin.setPolicy(MISSION);
  t.teardown(() => env.admin.clearPolicy());
  let vc = (await fullMap(f.c1)).version;
  let va1 = vc;
  let va2 = vc;

  // a1 loses tag agent: the controller's map loses it; a1's own map loses the controller; a2 sees nothing.
  const pc = f.poll(f.c1, vc, 3000, 1);
  const pa1 = f.poll(f.a1, va1, 3000, 0);
  const pa2 = f.poll(f.a2, va2, 700, 1);
  await env.admin.setNodeTags(f.a1.vip, { remove: ['agent'] });
  const [dc, da1, da2] = await Promise.all([pc, pa1, pa2]);
  if (dc.full || da1.full || da2.full) return void t.fail('expected deltas');
  t.deepEqual(dc.removals, [f.a1.vip], 'the controller gets a removal');
  t.true(da1.removals.includes(f.c1.vip), 'the retagged member loses the controller');
  t.deepEqual(find(da1.upserts, f.a1.vip)?.tags, [], 'and sees its own new tags');
  t.deepEqual([da2.upserts.length, da2.removals.length], [0, 0], 'the other agent\'s view did not change: nothing');
  vc = dc.version; va1 = da1.version; va2 = da2.version;

  // Back in: added again on both sides, with inbound.
  const pc2 = f.poll(f.c1, vc, 3000, 0);
  const pa12 = f.poll(f.a1, va1, 3000, 1);
  await env.admin.setNodeTags(f.a1.vip, { add: ['agent'] });
  const [dc2, da12] = await Promise.all([pc2, pa12]);
  if (dc2.full || da12.full) return void t.fail('expected deltas');
  t.deepEqual(find(dc2.upserts, f.a1.vip)?.inbound, []);
  t.deepEqual(find(da12.upserts, f.c1.vip)?.inbound, MISSION_INBOUND);
  vc = dc2.version;

  // A new agent joins on coordinator 0: the controller (polling coordinator 1) gets it, an agent does not.
  const pc3 = f.poll(f.c1, vc, 3000, 1);
  const pa23 = f.poll(f.a2, va2, 700, 1);
  const agt = await env.admin.createToken({ originalCidrs: LAN, tags: ['agent'] });
  const a3 = await env.client(0).join({ ...member(`10.50.${fleetN}.9`), token: agt.token });
  const [dc3, da23] = await Promise.all([pc3, pa23]);
  if (dc3.full || da23.full) return void t.fail('expected deltas');
  t.deepEqual(dc3.upserts.map((p) => p.vip), [a3.vip]);
  t.deepEqual([da23.upserts.length, da23.removals.length], [0, 0]);
  // It leaves: the controller gets a removal.
  const pc4 = f.poll(f.c1, dc3.version, 3000, 0);
  await env.client(1).leave(a3.sessionToken);
  const dc4 = await pc4;
  if (dc4.full) return void t.fail('expected a delta');
  t.deepEqual(dc4.removals, [a3.vip]);
});

test.serial('a coordinator started after the change answers an older `since` with the right delta (from the stream, not a full map)', async (t) => {
  const f = await fleet();
  await env.admin.setPolicy(MISSION);
  t.teardown(() => env.admin.clearPolicy());
  const before = await fullMap(f.c1);
  t.truthy(find(before.peers, f.a1.vip), 'positive control: the controller sees the agent');
  await env.admin.setNodeTags(f.a1.vip, { remove: ['agent'] });
  const fresh = await createCoordinator({ redis: env.redis.url, adminToken: ADMIN, sweepIntervalMs: 0 });
  t.teardown(() => fresh.close());
  const { url } = await fresh.listen('127.0.0.1', 0);
  const r = await new CoordinatorClient({ url, insecure: true }).peers(f.c1.sessionToken, before.version, undefined, 0);
  if (r.full) return void t.fail('expected a delta');
  t.deepEqual(r.removals, [f.a1.vip]);
  t.deepEqual(r.upserts, []);
  await env.admin.setNodeTags(f.a1.vip, { add: ['agent'] });
});

test.serial('an event announcing a version Redis does not have does not make long-polls spin; a real change still answers them', async (t) => {
  const f = await fleet();
  const { version } = await fullMap(f.c1);
  const calls = async (): Promise<number> => {
    const info = await env.r.info('commandstats');
    return [...info.matchAll(/cmdstat_(?:evalsha|eval|get):calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
  };
  // Redis restarted with lower versions, as the feed sees it: an event far ahead.
  await env.r.publish('isthmus:events', JSON.stringify({ type: 'node-changed', vip: f.a2.vip, version: version + 1_000_000 }));
  await new Promise((r) => setTimeout(r, 100));
  const before = await calls();
  const t0 = Date.now();
  const r = await f.poll(f.c1, version, 600, 1);
  const ms = Date.now() - t0;
  const used = (await calls()) - before;
  t.false(r.full);
  if (!r.full) t.deepEqual([r.upserts.length, r.removals.length], [0, 0]);
  t.true(ms >= 500, `held the wait (${ms} ms)`);
  t.true(used < 50, `${used} Redis calls for one held poll`);
  // Positive control: a real change answers a poll at once.
  const p = f.poll(f.c1, version, 3000, 1);
  const agt = await env.admin.createToken({ originalCidrs: LAN, tags: ['agent'] });
  const a = await env.client(0).join({ ...member(`10.50.${fleetN}.20`), token: agt.token });
  const d = await p;
  if (d.full) return void t.fail('expected a delta');
  t.deepEqual(d.upserts.map((x) => x.vip), [a.vip]);
});
