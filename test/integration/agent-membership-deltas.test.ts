/**
 * The agent's control plane applies peer-map deltas in O(change) (issue 12): removals find the
 * key by vip in its own index, and the state dir is written coalesced (at most once per
 * MEMBERSHIP_SAVE_INTERVAL_MS) instead of once per change. Proven against a real coordinator: after a burst
 * of joins, leaves and a tag change the data path holds exactly the coordinator's map, the
 * saved map catches up, and stop() writes what is pending at once.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEnv, member, LAN, type Env } from './coordinator-helpers';
import { MembershipClient, type PeerSink } from '../../node-agent/membership';
import { StateDir } from '../../node-agent/state-dir';
import type { PeerSpec } from '../../node-agent/peer-set';
import { silentLogger } from '../../common/logger';
import type { JoinResponse } from '../../coordinator/types';

let env: Env;
test.before(async () => { env = await startEnv(1); });
test.after.always(async () => { await env?.stop(); });

class Sink implements PeerSink {
  readonly peers = new Map<string, PeerSpec>();
  upsertPeer(spec: PeerSpec): void { this.peers.set(spec.publicKey, spec); }
  removePeer(k: string): void { this.peers.delete(k); }
  peerKeys(): string[] { return [...this.peers.keys()]; }
}

async function until(what: string, f: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a burst of changes: the data path holds exactly the coordinator\'s map; the state dir catches up, coalesced; stop() flushes', async (t) => {
  const tok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-deltas-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const state = new StateDir(dir);
  let writes = 0;
  const save = state.saveMembership.bind(state);
  state.saveMembership = (m) => { writes++; save(m); };
  const m = new MembershipClient({ coordinatorUrl: env.urls[0], token: tok, originalIp: '10.41.0.1', hostname: 'deltas-self', insecureCoordinator: true }, state, silentLogger());
  t.teardown(() => m.stop());
  const initial = await m.join();
  const sink = new Sink();
  m.applyFull(initial.peers, sink);
  void m.run(initial, sink);
  const writesAfterJoin = writes;

  const others: JoinResponse[] = [];
  const keys: string[] = [];
  for (let i = 0; i < 16; i++) {
    const x = member(`10.41.1.${i + 1}`);
    keys.push(x.pub);
    others.push(await env.client().join({ ...x, token: tok }));
  }
  for (const o of others.slice(0, 5)) await env.client().leave(o.sessionToken);
  await env.admin.setNodeTags(others[7].vip, { add: ['moved'] });
  const want = keys.slice(5).sort();
  await until('the data path to hold the 11 remaining members', () => JSON.stringify(sink.peerKeys().sort()) === JSON.stringify(want));
  t.deepEqual(sink.peerKeys().sort(), want, 'joined, then left: exactly the coordinator\'s members (but us)');
  const full = await env.client().peers(others[10].sessionToken);
  t.deepEqual(full.full ? full.peers.map((p) => p.publicKey).filter((k) => k !== m.publicKey).sort() : [], want, 'the coordinator agrees');

  await until('the saved map to catch up', () => {
    const s = state.loadMembership();
    return s !== undefined && s.peers.find((p) => p.vip === others[7].vip)?.tags.includes('moved') === true
      && s.peers.filter((p) => p.publicKey !== m.publicKey).length === want.length;
  });
  t.true(writes - writesAfterJoin >= 1);
  t.log(`${writes - writesAfterJoin} state-dir writes for 22 changes`);

  // One more change, then stop at once: pending state is written by stop(), not lost.
  const late = member('10.41.2.1');
  await env.client().join({ ...late, token: tok });
  await until('the late member in the data path', () => sink.peers.has(late.pub));
  m.stop();
  t.true(state.loadMembership()!.peers.some((p) => p.publicKey === late.pub), 'stop() wrote the pending map');
});
