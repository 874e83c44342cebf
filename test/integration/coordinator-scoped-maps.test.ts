/**
 * Randomized differential test of policy-scoped peer maps: random joins, leaves, admin tag
 * changes and policy changes on two coordinators; members following their maps by deltas
 * (alternating coordinators) must always hold exactly what a naive recomputation from the
 * member list and the policy says: every member `connected` to them, and themselves, each with
 * `inbound = inboundFrom(receiver, peer)`. Full maps asked of either coordinator say the same.
 */
import test from 'ava';
import { startEnv, member, LAN, type Env } from './coordinator-helpers';
import { compilePolicy, formatPortSpec, parsePolicy } from '../../policy';
import type { JoinResponse, Peer } from '../../coordinator/types';

let env: Env;
test.before(async () => { env = await startEnv(2); });
test.after.always(async () => { await env?.stop(); });

const TAGS = ['a', 'b', 'c'];
const POLICIES: (string | null)[] = [
  null,
  '{"rules": [{"from": ["tag:a"], "to": ["tag:b"], "ports": ["tcp/22"]}]}',
  '{"rules": [{"from": ["*"], "to": ["tag:c"], "ports": ["icmp"]}, {"from": ["tag:b"], "to": ["tag:a"], "ports": ["udp/53-60", "tcp/1-5"]}]}',
  '{"rules": [{"from": ["tag:a"], "to": ["*"], "ports": ["*"]}, {"from": ["tag:c"], "to": ["tag:c"], "ports": ["tcp/80"]}]}',
];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Watcher { j: JoinResponse; version: number; map: Map<string, Peer>; polls: number }

test.serial('deltas = naive recomputation after every random change (joins, leaves, tag changes, policy changes)', async (t) => {
  const seed = Number(process.env.SCOPED_SEED ?? Date.now() % 100000);
  t.log(`seed ${seed} (SCOPED_SEED=${seed} to repeat)`);
  const rnd = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const someTags = (): string[] => TAGS.filter(() => rnd() < 0.4);
  let n = 0;
  const join = async (tags: string[]): Promise<JoinResponse> => {
    n++;
    const tok = await env.admin.createToken({ originalCidrs: LAN, tags });
    return env.client(n).join({ ...member(`10.70.${n >> 8}.${n & 255}`), token: tok.token });
  };
  let policy: string | null = null;
  const watchers: Watcher[] = [];
  for (let i = 0; i < 4; i++) {
    const j = await join(someTags());
    watchers.push({ j, version: j.version, map: new Map(j.peers.map((p) => [p.vip, p])), polls: 0 });
  }
  const others: JoinResponse[] = [];
  for (let i = 0; i < 6; i++) others.push(await join(someTags()));

  const check = async (step: string) => {
    const target = await env.registryVersion();
    const nodes = await env.admin.listNodes();
    const p = compilePolicy(policy === null ? null : parsePolicy(policy));
    for (const [i, w] of watchers.entries()) {
      // Follow deltas (alternating coordinators) until the watcher is at Redis's version.
      for (let k = 0; w.version < target; k++) {
        if (k > 50) return void t.fail(`${step}: watcher ${i} stuck at ${w.version} < ${target}`);
        const r = await env.client(w.polls++).peers(w.j.sessionToken, w.version, undefined, k === 0 ? 0 : 200);
        if (r.full) {
          w.map = new Map(r.peers.map((x) => [x.vip, x]));
        } else {
          for (const x of r.upserts) w.map.set(x.vip, x);
          for (const v of r.removals) w.map.delete(v);
        }
        w.version = r.version;
      }
      const me = nodes.find((x) => x.vip === w.j.vip)!;
      const want = nodes.filter((x) => x.vip === me.vip || p.connected(me.tags, x.tags))
        .map((x) => ({ vip: x.vip, tags: [...x.tags].sort(), inbound: p.inboundFrom(me.tags, x.tags).specs.map(formatPortSpec) }))
        .sort((x, y) => x.vip.localeCompare(y.vip));
      const got = [...w.map.values()].map((x) => ({ vip: x.vip, tags: [...x.tags].sort(), inbound: x.inbound }))
        .sort((x, y) => x.vip.localeCompare(y.vip));
      t.deepEqual(got, want, `${step}: watcher ${i} (${me.tags.join(',') || 'untagged'}) under policy ${POLICIES.indexOf(policy)}`);
      // Full maps from both coordinators (each keeps per-class lists across changes that do not touch them).
      for (let c = 0; c < 2; c++) {
        const f = await env.client(c).peers(w.j.sessionToken);
        t.true(f.full);
        const fullGot = (f.full ? f.peers : []).map((x) => ({ vip: x.vip, tags: [...x.tags].sort(), inbound: x.inbound }))
          .sort((x, y) => x.vip.localeCompare(y.vip));
        t.deepEqual(fullGot, want, `${step}: watcher ${i}'s full map from coordinator ${c}`);
      }
    }
  };

  await check('start');
  for (let step = 0; step < 30; step++) {
    const r = rnd();
    let what: string;
    if (r < 0.2) {
      policy = pick(POLICIES);
      if (policy === null) await env.admin.clearPolicy(); else await env.admin.setPolicy(policy);
      what = `policy ${POLICIES.indexOf(policy)}`;
    } else if (r < 0.45) {
      const target = rnd() < 0.5 ? pick(watchers).j.vip : (others.length ? pick(others).vip : watchers[0].j.vip);
      const add = someTags();
      const remove = TAGS.filter((x) => !add.includes(x) && rnd() < 0.5);
      if (add.length + remove.length === 0) add.push(pick(TAGS));
      await env.admin.setNodeTags(target, { add, remove });
      what = `tag ${target} +${add.join(',')} -${remove.join(',')}`;
    } else if (r < 0.7 || others.length === 0) {
      others.push(await join(someTags()));
      what = 'join';
    } else {
      const i = Math.floor(rnd() * others.length);
      await env.client(i).leave(others[i].sessionToken);
      what = `leave ${others[i].vip}`;
      others.splice(i, 1);
    }
    // Sometimes two changes before anyone polls: deltas over several entries.
    if (rnd() < 0.7) await check(`step ${step} (${what})`);
  }
  await check('end');
});
