/**
 * Redis losing its data is survivable (issue 13.5), at the coordinator: a real redis-server
 * emptied with FLUSHALL under two running coordinators. Members re-assert their signed
 * membership records and get exactly their identity back; new allocations are held for the
 * grace window and never hand out an address a re-asserted member holds. Hostile: forged,
 * modified, foreign, expired and other-deployment records, someone else's record, and members
 * an admin removed are refused — each next to the same setup's positive control.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { startEnv, member, LAN, type Env } from './coordinator-helpers';
import { CoordinatorClient, CoordinatorHttpError } from '../../coordinator/client';
import { createCoordinator } from '../../coordinator/server';
import { generateSigningKey } from '../../coordinator/answer-signing';
import { issueMembershipRecord, readMembershipRecordUnverified, RECORD_PREFIX, type MembershipRecord } from '../../coordinator/membership-record';
import { redisKeys } from '../../common';
import { createPrivateKey } from 'node:crypto';
import type { JoinResponse } from '../../coordinator/types';

const test = anyTest.serial as TestFn;
const K = redisKeys();
const GRACE_MS = 1500;
const signing = generateSigningKey();
const signingKey = createPrivateKey(signing.pem);

let env: Env;
anyTest.before(async () => {
  env = await startEnv(2, { signingKey, reassertGraceMs: GRACE_MS, stateCheckMs: 100 });
});
anyTest.after.always(async () => { await env?.stop(); });

type M = ReturnType<typeof member>;

async function refusal(t: ExecutionContext, p: Promise<unknown>, status: number, code: string): Promise<CoordinatorHttpError | undefined> {
  const e = await t.throwsAsync(p, { instanceOf: CoordinatorHttpError });
  t.is(e?.status, status, e?.message);
  t.is(e?.code, code, e?.message);
  return e;
}

async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!await cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** FLUSHALL, then wait until a coordinator noticed (a new generation, allocations held). */
async function loseEverything(): Promise<void> {
  const gen = await env.r.hget(K.deployment, 'generation');
  await env.r.flushall();
  await until(async () => { const g = await env.r.hget(K.deployment, 'generation'); return g !== null && g !== gen; }, 'a new generation');
}

/** No hold left over from an earlier test. */
async function settled(): Promise<void> {
  await until(async () => await env.r.pttl(K.allocationHold) < 0, 'an earlier hold to end');
}

const reassert = (m: M, record: string, i = 0) => env.client(i).reassert({ privateKey: m.privateKey, publicKey: m.publicKey, record });

/** The record text with its body replaced (the signature kept). */
function tampered(record: string, change: (r: MembershipRecord) => MembershipRecord): string {
  const [body, sig] = record.slice(RECORD_PREFIX.length).split('.');
  const r = JSON.parse(Buffer.from(body, 'base64url').toString()) as MembershipRecord;
  return RECORD_PREFIX + Buffer.from(JSON.stringify(change(r))).toString('base64url') + '.' + sig;
}

async function identity(vip: string) {
  const n = await env.r.hgetall(K.node(vip));
  return { pub: n.pub, orig: n.orig, hostname: n.hostname, tags: JSON.parse(n.tags ?? 'null') as string[],
    origMap: await env.r.get(K.orig(n.orig ?? '-')), hostMap: await env.r.get(K.host(n.hostname ?? '-')) };
}

test('after FLUSHALL members re-assert exactly their identity; new joins are held, then get a vip nobody holds', async (t) => {
  await settled();
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['web'] });
  const ms = [member('10.20.0.1', 'app-1'), member('10.20.0.2', 'app-2'), member('10.20.0.3', 'app-3')];
  const joined: JoinResponse[] = [];
  for (const [i, m] of ms.entries()) joined.push(await env.client(i).join({ ...m, token: tok.token }));
  const before = await Promise.all(joined.map((j) => identity(j.vip)));
  for (const j of joined) {
    t.truthy(j.record, 'a signing coordinator hands out a record at join');
    t.is(readMembershipRecordUnverified(j.record)?.vip, j.vip);
  }
  const versionBefore = await env.registryVersion();

  await loseEverything();
  // What the members saw before this work: unknown key, unknown token.
  await refusal(t, env.client(0).join({ ...ms[0], token: tok.token }), 401, 'token-unknown');
  // A new member with a new token during the hold: 503 + Retry-After, nothing allocated.
  const tok2 = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
  const newcomer = member('10.20.0.9', 'newcomer');
  const held = await refusal(t, env.client(1).join({ ...newcomer, token: tok2.token }), 503, 'allocations-held');
  t.true(Number(held?.retryAfter) >= 1 && Number(held?.retryAfter) <= Math.ceil(GRACE_MS / 1000), `Retry-After ${held?.retryAfter}`);
  t.is(await env.r.get(K.ipamCursor), null, 'nothing allocated during the hold');

  // Members re-assert (through either coordinator) and get exactly what they had.
  for (const [i, m] of ms.entries()) {
    const r = await reassert(m, joined[i].record!, i);
    t.is(r.vip, joined[i].vip);
    t.deepEqual(await identity(r.vip), before[i]);
    t.truthy(r.record && r.record !== joined[i].record, 'a fresh record comes back');
    if (i > 0) t.true(r.peers.some((p) => p.vip === joined[i - 1].vip), 'its peer map holds the members re-asserted before it');
  }
  t.true(await env.registryVersion() > versionBefore, 'versions of the rebuilt state are above the lost ones');
  // A re-assert by a member the state already holds again is just a re-join.
  t.is((await reassert(ms[0], joined[0].record!, 1)).vip, joined[0].vip);

  // After the window a new member gets an address nobody holds (the cursor restarted at the
  // bottom of the pool, where the re-asserted members are).
  await until(async () => await env.r.pttl(K.allocationHold) < 0, 'the hold to end');
  const n = await env.client(1).join({ ...newcomer, token: tok2.token });
  t.false(joined.some((j) => j.vip === n.vip), `${n.vip} is none of ${joined.map((j) => j.vip).join(', ')}`);
  for (const [i, j] of joined.entries()) t.is((await identity(j.vip)).pub, ms[i].pub, 'positive control: each re-asserted member kept its vip');
});

test('a member re-asserting after the window whose vip was given away is refused, naming why; the holder keeps it', async (t) => {
  await settled();
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
  const late = member('10.21.0.1', 'late-1');
  const j = await env.client(0).join({ ...late, token: tok.token });
  await loseEverything();
  await until(async () => await env.r.pttl(K.allocationHold) < 0, 'the hold to end');
  const tok2 = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
  // The pool restarts at its bottom: skip past whatever is held until the late member's vip is handed out.
  let taker: JoinResponse | undefined;
  for (let i = 0; i < 64 && taker?.vip !== j.vip; i++) taker = await env.client(0).join({ ...member(`10.21.1.${i + 1}`, `filler-${i}`), token: tok2.token });
  t.is(taker?.vip, j.vip);
  const e = await refusal(t, reassert(late, j.record!), 409, 'vip-taken');
  t.regex(e?.message ?? '', /held by another key/);
  t.not((await identity(j.vip)).pub, late.pub, 'the holder keeps it');
});

test('hostile: modified, foreign, expired, other-deployment records and another member\'s record are refused; the genuine one restores', async (t) => {
  await settled();
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['agent'] });
  const victim = member('10.22.0.1', 'victim');
  const attacker = member('10.22.0.66', 'attacker');
  const v = await env.client(0).join({ ...victim, token: tok.token });
  const a = await env.client(0).join({ ...attacker, token: tok.token });
  await loseEverything();
  const rec = readMembershipRecordUnverified(v.record)!;
  const atk = readMembershipRecordUnverified(a.record)!;

  // Its own record with changed tags, vip or original IP (signature kept): refused.
  await refusal(t, reassert(attacker, tampered(a.record!, (r) => ({ ...r, tags: ['admin', 'agent'] }))), 401, 'record-invalid');
  await refusal(t, reassert(attacker, tampered(a.record!, (r) => ({ ...r, vip: '100.64.9.9' }))), 401, 'record-invalid');
  await refusal(t, reassert(attacker, tampered(a.record!, (r) => ({ ...r, orig: rec.orig }))), 401, 'record-invalid');
  // A record it signed itself, every field right but the key: refused.
  const own = createPrivateKey(generateSigningKey().pem);
  await refusal(t, reassert(attacker, issueMembershipRecord(own, { ...atk, tags: ['admin'] })), 401, 'record-invalid');
  // Signed by the deployment key but expired, or for another deployment (prefix): refused.
  const now = Date.now();
  await refusal(t, reassert(attacker, issueMembershipRecord(signingKey, { ...atk, iat: now - 20_000, exp: now - 10_000 })), 401, 'record-expired');
  await refusal(t, reassert(attacker, issueMembershipRecord(signingKey, { ...atk, prefix: 'other:' })), 401, 'record-other-deployment');
  // The victim's record (it is not secret) with the attacker's key: refused.
  await refusal(t, reassert(attacker, v.record!), 401, 'record-invalid');
  // The victim's record and public key, but a proof made with the attacker's private key: refused.
  await refusal(t, env.client(0).reassert({ privateKey: attacker.privateKey, publicKey: victim.publicKey, record: v.record! }), 401, 'bad-proof');
  t.is(await env.r.exists(K.node(v.vip)), 0, 'nothing was restored by the attempts');

  // Positive controls: the genuine records restore exactly.
  t.is((await reassert(victim, v.record!)).vip, v.vip);
  t.is((await reassert(attacker, a.record!)).vip, a.vip);
  t.deepEqual((await identity(a.vip)).tags, ['agent']);
});

test('removed members cannot re-assert (admin removal, with or without --allow-rejoin, and leave); a member Redis lost can', async (t) => {
  await settled();
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
  const [banned, allowed, left, lost] = [member('10.23.0.1', 'banned'), member('10.23.0.2', 'allowed'), member('10.23.0.3', 'left'), member('10.23.0.4', 'lost')];
  const j = new Map<M, JoinResponse>();
  for (const m of [banned, allowed, left, lost]) j.set(m, await env.client(0).join({ ...m, token: tok.token }));
  await env.admin.removeNode(j.get(banned)!.vip);
  await env.admin.removeNode(j.get(allowed)!.vip, { allowRejoin: true });
  await env.client(0).leave(j.get(left)!.sessionToken);
  // `lost`: its entries vanish as they would from a lagging replica (Redis keeps everything else).
  const lv = j.get(lost)!.vip;
  await env.r.del(K.node(lv), K.key(lost.pub), K.orig(lost.originalIp), K.host(lost.hostname));
  await env.r.srem(K.nodes, lv);

  await refusal(t, reassert(banned, j.get(banned)!.record!), 403, 'key-removed');
  await refusal(t, reassert(allowed, j.get(allowed)!.record!), 403, 'member-removed');
  await refusal(t, reassert(left, j.get(left)!.record!, 1), 403, 'member-removed');
  t.is((await reassert(lost, j.get(lost)!.record!)).vip, lv, 'positive control: a member whose entries were lost is restored');
  // --allow-rejoin means "with a token": that still works.
  t.truthy((await env.client(0).join({ ...allowed, token: tok.token })).vip);
});

test('an admin tag change reaches the member\'s record (GET /v1/record) and a re-assert after a loss restores the new tags', async (t) => {
  await settled();
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['web'] });
  const m = member('10.24.0.1', 'tagged');
  const j = await env.client(0).join({ ...m, token: tok.token });
  await env.admin.setNodeTags(j.vip, { add: ['db'] });
  const fresh = await env.client(1).record(j.sessionToken);
  t.deepEqual(readMembershipRecordUnverified(fresh.record)?.tags, ['db', 'web']);
  t.deepEqual(readMembershipRecordUnverified(j.record)?.tags, ['web'], 'the join record had the tags of then');
  await loseEverything();
  await reassert(m, fresh.record);
  t.deepEqual((await identity(j.vip)).tags, ['db', 'web']);
  await refusal(t, env.client(0).record('st_not-a-session-token-000'), 401, 'unauthorized');
});

anyTest('coordinators that start on an emptied Redis hold new allocations once a record from before shows up', async (t) => {
  const e = await startEnv(1, { signingKey, reassertGraceMs: GRACE_MS, stateCheckMs: 0 });
  t.teardown(() => e.stop());
  const tok = await e.admin.createToken({ uses: -1, originalCidrs: LAN });
  const m = member('10.25.0.1', 'before');
  const j = await e.client(0).join({ ...m, token: tok.token });
  await e.coords[0].close();
  await e.r.flushall();
  await new Promise((r) => setTimeout(r, 5));
  const c = await createCoordinator({ redis: e.redis.url, adminToken: 'admin-secret-for-tests-0123456789', signingKey, reassertGraceMs: GRACE_MS,
    stateCheckMs: 0, sweepIntervalMs: 0 });
  t.teardown(() => c.close());
  const url = (await c.listen('127.0.0.1', 0)).url;
  const client = new CoordinatorClient({ url, insecure: true, adminToken: 'admin-secret-for-tests-0123456789' });
  const tok2 = await client.createToken({ uses: -1, originalCidrs: LAN });
  // The old member re-asserts first: its record predates this generation, which proves the
  // state was lost, so new allocations are held from now on.
  t.is((await client.reassert({ privateKey: m.privateKey, publicKey: m.publicKey, record: j.record! })).vip, j.vip);
  await refusal(t, client.join({ ...member('10.25.0.2', 'newcomer'), token: tok2.token }), 503, 'allocations-held');
  t.is(await e.r.hget(K.deployment, 'holdStarted'), '1');
  // Positive control: after the window the newcomer gets an address the restored member does not hold.
  await until(async () => await e.r.pttl(K.allocationHold) < 0, 'the hold to end');
  t.not((await client.join({ ...member('10.25.0.2', 'newcomer'), token: tok2.token })).vip, j.vip);
});

test('the record in a join answer (taken from the join script, no read after it) names what a fresh read of Redis names', async (t) => {
  await settled();
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: ['192.168.0.0/16', '10.0.0.0/8'], tags: ['web', 'api'], ephemeral: true });
  const m = member('10.26.0.1', 'from-script');
  // What a record says apart from its times (iat, exp): the identity and the generation.
  const ident = (text: string | undefined) => {
    const r = readMembershipRecordUnverified(text);
    t.truthy(r, 'a record');
    const { iat: _i, exp: _e, ...rest } = r!;
    return rest;
  };
  const first = await env.client(0).join({ ...m, token: tok.token });
  const fresh = ident((await env.client(1).record(first.sessionToken)).record);
  t.deepEqual(ident(first.record), fresh, 'a new member');
  t.deepEqual(fresh.tags, ['api', 'web']);
  t.deepEqual(fresh.cidrs, ['10.0.0.0/8', '192.168.0.0/16']);
  t.true(fresh.ephemeral);
  t.is(fresh.gen, String(await env.r.hget(K.deployment, 'generation')));
  // A re-join that changes nothing (no event), after an admin tag change: the record has the tags of now.
  await env.admin.setNodeTags(first.vip, { add: ['db'] });
  const same = await env.client(1).join({ ...m });
  t.is(same.vip, first.vip);
  t.deepEqual(ident(same.record), ident((await env.client(0).record(same.sessionToken)).record), 'a no-op re-join');
  t.deepEqual(ident(same.record).tags, ['api', 'db', 'web']);
  // A re-join that changes the hostname.
  const moved = await env.client(0).join({ ...m, hostname: 'from-script-2' });
  t.deepEqual(ident(moved.record), ident((await env.client(1).record(moved.sessionToken)).record), 'a re-join that changed something');
  t.is(ident(moved.record).hostname, 'from-script-2');
});
