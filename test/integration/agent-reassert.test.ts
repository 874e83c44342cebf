/**
 * Redis restarted empty under running members (issue 13.5), with the agent's real membership
 * loop (node-agent/membership.ts: state dir, pinned signing key, signed answers), a real
 * coordinator and mapper on a real redis-server: after FLUSHALL every member re-asserts its
 * record by itself, the mapper's original-IP lookups answer again, no member ever drops a
 * peer meanwhile (the data path keeps its sessions), and a member joining with a new token
 * after the hold gets an address nobody holds and reaches the others.
 */
import test from 'ava';
import Redis from 'ioredis';
import { createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedis } from '../harness/redis';
import { createCoordinator } from '../../coordinator/server';
import { CoordinatorClient } from '../../coordinator/client';
import { generateSigningKey } from '../../coordinator/answer-signing';
import { readMembershipRecordUnverified } from '../../coordinator/membership-record';
import { MembershipClient, type PeerSink } from '../../node-agent/membership';
import { StateDir, RECORD_FILE } from '../../node-agent/state-dir';
import type { PeerSpec } from '../../node-agent/peer-set';
import { startMapperService } from '../../mapper';
import { redisKeys, silentLogger } from '../../common';

const ADMIN = 'admin-secret-for-tests-0123456789';
const K = redisKeys();

class RecordingSink implements PeerSink {
  readonly peers = new Map<string, PeerSpec>();
  readonly removed: string[] = [];
  upsertPeer(spec: PeerSpec): void { this.peers.set(spec.publicKey, spec); }
  removePeer(key: string): void { this.removed.push(key); this.peers.delete(key); }
  peerKeys(): string[] { return [...this.peers.keys()]; }
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!await cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
}

test('after FLUSHALL members re-assert by themselves, lookups answer again within a minute, no peer is dropped, a newcomer gets a free vip; records follow tag changes', async (t) => {
  const redis = await startRedis();
  const r = new Redis(redis.url);
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-reassert-'));
  const signing = generateSigningKey();
  const coord = await createCoordinator({ redis: redis.url, adminToken: ADMIN, signingKey: createPrivateKey(signing.pem), sweepIntervalMs: 0,
    longPollMs: 2000, stateCheckMs: 200, reassertGraceMs: 3000 });
  const { url } = await coord.listen('127.0.0.1', 0);
  const mapper = await startMapperService({ redis: redis.url, api: { host: '127.0.0.1', port: 0 } });
  const members: MembershipClient[] = [];
  t.teardown(async () => {
    for (const m of members) m.stop();
    await mapper.stop();
    await coord.close();
    r.disconnect();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const admin = new CoordinatorClient({ url, insecure: true, adminToken: ADMIN });
  const lookup = async (ip: string) => {
    const res = await fetch(`http://127.0.0.1:${mapper.addresses.api!.port}/v1/map/${ip}`);
    return { status: res.status, body: await res.json() as { virtualIp?: string; hostname?: string; tags?: string[] } };
  };
  const start = async (name: string, originalIp: string, token: string) => {
    const state = new StateDir(join(dir, name));
    const m = new MembershipClient({ coordinatorUrl: url, coordinatorPubkey: signing.publicKey, token, originalIp, hostname: name, reassertSettleMs: 5000, insecureCoordinator: true },
      state, silentLogger());
    members.push(m);
    const sink = new RecordingSink();
    const joined = await m.join();
    m.applyFull(joined.peers, sink);
    void m.run(joined, sink);
    return { m, sink, vip: joined.vip, state, name, originalIp };
  };

  const tok = await admin.createToken({ uses: -1, originalCidrs: ['10.0.0.0/8'], tags: ['app'] });
  const a = await start('alpha', '10.30.0.1', tok.token);
  const b = await start('beta', '10.30.0.2', tok.token);
  await until(() => a.sink.peers.has(b.m.publicKey) && b.sink.peers.has(a.m.publicKey), 'a and b to see each other', 10_000);
  t.like((await lookup('10.30.0.1')).body, { virtualIp: a.vip, hostname: 'alpha' });
  t.true(existsSync(join(a.state.dir, RECORD_FILE)), 'the record is kept in the state dir');

  // An admin tag change reaches the member's own map entry; the agent fetches a fresh record with it.
  await admin.setNodeTags(a.vip, { add: ['db'] });
  const recorded = () => readMembershipRecordUnverified(readFileSync(join(a.state.dir, RECORD_FILE), 'utf8').trim())?.tags.join(',');
  await until(() => recorded() === 'app,db', 'a record with the new tags on disk', 10_000);
  const recordBefore = readFileSync(join(a.state.dir, RECORD_FILE), 'utf8');

  await r.flushall();
  t.is((await lookup('10.30.0.2')).status, 404, 'the loss is real: the mapper no longer knows beta');

  const took = await until(async () => {
    const [la, lb] = await Promise.all([lookup('10.30.0.1'), lookup('10.30.0.2')]);
    return la.body.virtualIp === a.vip && lb.body.virtualIp === b.vip;
  }, 'both mappings to come back', 60_000);
  t.log(`mappings back ${took} ms after FLUSHALL`);
  t.like((await lookup('10.30.0.2')).body, { virtualIp: b.vip, hostname: 'beta', tags: ['app'] });
  t.like((await lookup('10.30.0.1')).body, { virtualIp: a.vip, tags: ['app', 'db'] }, 'a came back with the tags of its refreshed record');
  t.deepEqual(a.sink.removed, [], 'a never dropped a peer');
  t.deepEqual(b.sink.removed, [], 'b never dropped a peer');
  t.true(a.sink.peers.has(b.m.publicKey) && b.sink.peers.has(a.m.publicKey));
  await until(() => readFileSync(join(a.state.dir, RECORD_FILE), 'utf8') !== recordBefore, 'a fresh record on disk', 5000);
  t.is(readMembershipRecordUnverified(readFileSync(join(a.state.dir, RECORD_FILE), 'utf8').trim())?.vip, a.vip);

  // A newcomer with a new token, once the hold is over: an address nobody holds, and the others see it.
  await until(async () => await r.pttl(K.allocationHold) < 0, 'the hold to end', 10_000);
  const tok2 = await admin.createToken({ uses: -1, originalCidrs: ['10.0.0.0/8'], tags: ['app'] });
  const c = await start('gamma', '10.30.0.3', tok2.token);
  t.false([a.vip, b.vip].includes(c.vip), `${c.vip} is held by nobody else`);
  await until(() => a.sink.peers.has(c.m.publicKey) && c.sink.peers.has(b.m.publicKey), 'the newcomer in the maps', 10_000);
  t.is(a.sink.peers.get(b.m.publicKey)?.allowedIps.length, 2, 'positive control: b is still a\'s peer with its vip and original IP');
  // After the settle window the members take the full map; nobody has vanished from it.
  await new Promise((res) => setTimeout(res, 5500));
  t.true(a.sink.peers.has(b.m.publicKey) && a.sink.peers.has(c.m.publicKey));
  t.deepEqual(a.sink.removed, []);
});
