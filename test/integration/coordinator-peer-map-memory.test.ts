/**
 * Coordinator memory per member (issue 12): the peer-map cache sends one Peer object per member
 * record (shared by every full map and delta that carries it, fresh when the member changes),
 * keeps per-class full maps across changes that do not touch them, and holds a bounded number of
 * shared deltas however many distinct `since` values members ask with. Against a real Redis,
 * members joined through the API; answers are checked for content next to identity.
 */
import test from 'ava';
import { startEnv, member, LAN, type Env } from './coordinator-helpers';
import { PeerMapCache } from '../../coordinator/peer-map-cache';
import type { JoinResponse, Peer } from '../../coordinator/types';

let env: Env;
test.before(async () => { env = await startEnv(1); });
test.after.always(async () => { await env?.stop(); });

test.serial('one Peer object per member record, shared by full maps and deltas; a changed member is a new object with its new data', async (t) => {
  await env.admin.setPolicy({ rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: ['tcp/22'] }] });
  const agentTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['agent'] })).token;
  const ctlTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['controller'] })).token;
  const ctl = await env.client().join({ ...member('10.41.1.1', 'ctl-a'), token: ctlTok });
  const agents: JoinResponse[] = [];
  for (let i = 0; i < 4; i++) agents.push(await env.client().join({ ...member(`10.41.0.${i + 1}`), token: agentTok }));
  const cache = new PeerMapCache(env.coords[0].registry);
  const v0 = await env.registryVersion();
  const maps = await Promise.all(agents.map((a) => cache.full(a.vip, v0)));
  const ctlPeer = (m: { peers: Peer[] }) => m.peers.find((p) => p.vip === ctl.vip)!;
  t.deepEqual(ctlPeer(maps[0]).inbound, ['tcp/22'], 'the controller may open tcp/22 towards an agent');
  t.is(ctlPeer(maps[0]).hostname, 'ctl-a');
  for (const m of maps) t.is(ctlPeer(m), ctlPeer(maps[0]), 'the same object in every agent\'s full map');
  // An agent joining does not touch the agents' class list: the same list object afterwards.
  const late = await env.client().join({ ...member('10.41.0.9'), token: agentTok });
  const after = await cache.full(agents[0].vip, late.version);
  t.is(ctlPeer(after), ctlPeer(maps[0]));
  t.true(after.peers.some((p) => p.vip === agents[0].vip), 'itself, as always');
  t.false(after.peers.some((p) => p.vip === late.vip), 'agents do not see agents');
  // The controller's view changed (an agent joined): its delta carries the new agent.
  const d = await cache.delta(ctl.vip, v0);
  t.not(d, 'full');
  if (d === 'full') return;
  t.deepEqual(d.upserts.map((p) => p.vip), [late.vip]);
  t.deepEqual(d.upserts[0].inbound, [], 'an agent may open nothing towards the controller');
  // A tag change makes a new record: every agent's map gets one new object with the new tags.
  await env.admin.setNodeTags(ctl.vip, { add: ['ops'] });
  const v2 = await env.registryVersion();
  const d0 = await cache.delta(agents[0].vip, late.version, v2);
  const d1 = await cache.delta(agents[1].vip, late.version, v2);
  t.not(d0, 'full');
  t.not(d1, 'full');
  if (d0 === 'full' || d1 === 'full') return;
  t.deepEqual(d0.upserts.map((p) => [p.vip, p.tags]), [[ctl.vip, ['controller', 'ops']]]);
  t.is(d0.upserts[0], d1.upserts[0], 'shared between the agents');
  t.not(d0.upserts[0], ctlPeer(maps[0]), 'not the old object');
  t.is(ctlPeer(await cache.full(agents[2].vip, v2)), d0.upserts[0], 'the full map sends that same new object');
});

test.serial('shared deltas stay bounded however many distinct since values are asked; each answer still right', async (t) => {
  const agentTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['agent'] })).token;
  const ctlTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['controller'] })).token;
  const ctl = await env.client().join({ ...member('10.42.1.1', 'ctl-b'), token: ctlTok });
  const first = await env.registryVersion();
  const joined: JoinResponse[] = [];
  for (let i = 0; i < 300; i++) joined.push(await env.client().join({ ...member(`10.42.${(i >> 8) + 2}.${i & 255}`), token: agentTok }));
  const cache = new PeerMapCache(env.coords[0].registry);
  await cache.sync(await env.registryVersion());
  // The controller's view from each of 300 versions back: 300 distinct since values, one class.
  for (let k = 0; k < 300; k++) {
    const d = await cache.delta(ctl.vip, first + k);
    if (d === 'full') return void t.fail(`delta from ${first + k} was full`);
    // Every agent that joined after `since` is in it, and nothing else.
    t.is(d.upserts.length, 300 - k, `since ${first + k}`);
    t.true(cache.memoSizes.deltas <= 256, `memo bounded (${cache.memoSizes.deltas})`);
    t.true(cache.memoSizes.deltaPeers <= 20_000, `peers in it bounded (${cache.memoSizes.deltaPeers})`);
  }
  t.true(cache.memoSizes.deltas > 0, 'positive control: deltas are memoised');
});
