/**
 * Issue 12, "sign once, serialise once": the long-polls one change wakes share one signature
 * (a Merkle batch, coordinator/answer-signing.ts) and members of one view class get byte-identical
 * bodies; every answer still verifies for its own member, nonce and since only; a member that
 * is itself part of the change gets its own answer (no lost change), its classmates nothing.
 * And their re-polls authenticate from memory (coordinator/session-cache.ts): no auth script
 * per re-poll, while removal, leave and renewal keep working.
 */
import test from 'ava';
import type Redis from 'ioredis';
import { createPrivateKey } from 'node:crypto';
import { startEnv, member, LAN, ADMIN, type Env } from './coordinator-helpers';
import { createCoordinator } from '../../coordinator/server';
import { CoordinatorClient } from '../../coordinator/client';
import { hashSecret } from '../../coordinator/token-rules';
import { generateSigningKey, newNonce, parseSigningPublicKey, verifySignedAnswer, NONCE_HEADER, PROOF_HEADER, SIGNATURE_HEADER } from '../../coordinator/answer-signing';
import type { JoinResponse, PeersResponse } from '../../coordinator/types';

const key = generateSigningKey();
const pub = parseSigningPublicKey(key.publicKey);
let env: Env;
test.before(async () => { env = await startEnv(2, { signingKey: createPrivateKey(key.pem) }); });
test.after.always(async () => { await env?.stop(); });

interface Answer { status: number; text: string; body: PeersResponse; nonce: string; signature: string | null; proof: string | null }

/** One raw long-poll with a fresh nonce (the bytes and headers as sent). */
async function poll(j: JoinResponse, since: number, waitMs: number): Promise<Answer> {
  const nonce = newNonce();
  const res = await fetch(`${env.urls[0]}/v1/peers?since=${since}&wait=${waitMs}`,
    { headers: { authorization: `Bearer ${j.sessionToken}`, [NONCE_HEADER]: nonce } });
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) as PeersResponse, nonce, signature: res.headers.get(SIGNATURE_HEADER), proof: res.headers.get(PROOF_HEADER) };
}

const verifies = (j: JoinResponse, since: number, a: Answer, as = j.vip) =>
  verifySignedAnswer(pub, { route: 'peers', member: as, since: String(since), nonce: a.nonce }, a.text, a.signature!, a.proof ?? undefined);

test.serial('a controller joining: every waiting agent gets the same bytes, one signature for all, each verifies only for itself', async (t) => {
  await env.admin.setPolicy({ rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: ['tcp/22'] }] });
  const agentTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['agent'] })).token;
  const ctlTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['controller'] })).token;
  const agents: JoinResponse[] = [];
  for (let i = 0; i < 12; i++) agents.push(await env.client().join({ ...member(`10.31.0.${i + 1}`), token: agentTok }));
  const v = await env.registryVersion();
  const before = { ...env.coords[0].signing! };
  const polls = agents.map((a) => poll(a, v, 10_000));
  // Let every poll reach its wait before the change.
  for (let i = 0; i < 50 && env.coords[0].feed.waiting < agents.length; i++) await new Promise((r) => setTimeout(r, 50));
  t.is(env.coords[0].feed.waiting, agents.length);
  const ctl = await env.client().join({ ...member('10.31.1.1', 'ctl-1'), token: ctlTok });
  const answers = await Promise.all(polls);
  for (const [i, a] of answers.entries()) {
    t.is(a.status, 200);
    t.false(a.body.full);
    if (a.body.full) continue;
    t.deepEqual(a.body.upserts.map((p) => p.vip), [ctl.vip], 'the controller, and only it');
    t.deepEqual(a.body.removals, []);
    t.is(a.text, answers[0].text, 'byte-identical bodies for one view class');
    t.true(verifies(agents[i], v, a), `positive control: agent ${i} verifies its answer`);
    t.false(verifies(agents[(i + 1) % agents.length], v, a, agents[(i + 1) % agents.length].vip), 'not as another agent\'s answer (its vip and nonce)');
    t.false(verifySignedAnswer(pub, { route: 'peers', member: agents[i].vip, since: String(v - 1), nonce: a.nonce }, a.text, a.signature!, a.proof ?? undefined),
      'not as the answer to another since');
  }
  const after = env.coords[0].signing!;
  t.is(after.answers - before.answers, agents.length, 'every agent\'s answer signed (the controller joined without a nonce: unsigned)');
  t.true(after.signatures - before.signatures < agents.length, `fewer signatures than answers (${after.signatures - before.signatures} for ${agents.length})`);
  t.true(answers.some((a) => a.proof !== null), 'batched answers carry their path');
});

test.serial('an agent that changes itself gets its own answer; its classmates at the same since get nothing; controllers see it', async (t) => {
  const agentTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['agent'] })).token;
  const ctlTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['controller'] })).token;
  const ms = Array.from({ length: 4 }, (_, i) => member(`10.32.0.${i + 1}`, `agent-32-${i}`));
  const agents: JoinResponse[] = [];
  for (const m of ms) agents.push(await env.client().join({ ...m, token: agentTok }));
  const ctl = await env.client().join({ ...member('10.32.1.1', 'ctl-32'), token: ctlTok });
  const v = await env.registryVersion();
  const polls = agents.map((a) => poll(a, v, 1500));
  const ctlPoll = poll(ctl, v, 10_000);
  for (let i = 0; i < 50 && env.coords[0].feed.waiting < agents.length + 1; i++) await new Promise((r) => setTimeout(r, 50));
  // Agent 2 re-joins under another hostname: a change about itself.
  await env.client().join({ ...ms[2], hostname: 'agent-32-2-renamed' });
  const answers = await Promise.all(polls);
  for (const [i, a] of answers.entries()) {
    t.is(a.status, 200);
    t.true(verifies(agents[i], v, a), `agent ${i}: its answer verifies`);
    if (a.body.full) { t.fail('a delta was expected'); continue; }
    if (i === 2) {
      t.deepEqual(a.body.upserts.map((p) => [p.vip, p.hostname]), [[agents[2].vip, 'agent-32-2-renamed']], 'its own new record');
    } else {
      t.deepEqual(a.body.upserts, [], `agent ${i}: nothing (agents do not see agents), answered at the end of its wait`);
      t.deepEqual(a.body.removals, []);
    }
  }
  const c = await ctlPoll;
  t.true(verifies(ctl, v, c));
  t.false(c.body.full);
  if (!c.body.full) t.deepEqual(c.body.upserts.map((p) => [p.vip, p.hostname]), [[agents[2].vip, 'agent-32-2-renamed']], 'the controller sees the change');
});

/** Calls of one command (lower-case) while fn ran. */
async function callsDuring(r: Redis, cmd: string, fn: () => Promise<unknown>): Promise<number> {
  const count = async () => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(await r.info('commandstats'))?.[1] ?? 0);
  const before = await count();
  await fn();
  return await count() - before;
}

test.serial('re-polls authenticate from memory; a member removed on the other coordinator is refused once its change arrives, one that left at once', async (t) => {
  const tok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
  const a = await env.client(0).join({ ...member('10.33.0.1', 'cache-a'), token: tok });
  const b = await env.client(0).join({ ...member('10.33.0.2', 'cache-b'), token: tok });
  const c0 = new CoordinatorClient({ url: env.urls[0], insecure: true });
  const v = await env.registryVersion();
  t.is(await callsDuring(env.r, 'evalsha', () => c0.peers(a.sessionToken, v, undefined, 0)), 1, 'positive control: a token this coordinator has not seen runs the auth script');
  t.is(await callsDuring(env.r, 'evalsha', async () => {
    for (let i = 0; i < 5; i++) await c0.peers(a.sessionToken, v, undefined, 0);
  }), 0, 'its next polls do not');
  await t.throwsAsync(c0.peers('ist_s_not-a-token', v, undefined, 0), { message: /session token/ }, 'an unknown token is still refused');

  // Removed by an admin on coordinator 1: coordinator 0 refuses the cached token once it hears of it.
  const admin1 = new CoordinatorClient({ url: env.urls[1], insecure: true, adminToken: ADMIN });
  await admin1.removeNode(a.vip);
  let refused = false;
  for (let i = 0; i < 40 && !refused; i++) {
    refused = await c0.peers(a.sessionToken, v, undefined, 0).then(() => false, (e: Error) => /session token/.test(e.message));
    if (!refused) await new Promise((r) => setTimeout(r, 50));
  }
  t.true(refused, 'removed on the other coordinator: refused within 2 s');

  // Leaving through coordinator 0 ends its cached token before the answer.
  await c0.peers(b.sessionToken, v, undefined, 0);
  await c0.leave(b.sessionToken);
  await t.throwsAsync(c0.peers(b.sessionToken, v, undefined, 0), { message: /session token/ }, 'left: refused at once');
});

test.serial('with the cache, tokens still renew on use once less than half their TTL is left', async (t) => {
  const ttl = 2_000;
  const c = await createCoordinator({ redis: env.redis.url, adminToken: ADMIN, sweepIntervalMs: 0, sessionTtlMs: ttl });
  t.teardown(() => c.close());
  const url = (await c.listen('127.0.0.1', 0)).url;
  const tok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN })).token;
  const cl = new CoordinatorClient({ url, insecure: true });
  const j = await cl.join({ ...member('10.33.1.1', 'cache-renew'), token: tok });
  const k = `isthmus:stoken:${hashSecret(j.sessionToken)}`;
  const v = await env.registryVersion();
  t.is(await callsDuring(env.r, 'pexpire', () => cl.peers(j.sessionToken, v, undefined, 0)), 0, 'more than half left: no renewal');
  await new Promise((r) => setTimeout(r, 1_200)); // under half of the TTL left now
  t.is(await callsDuring(env.r, 'pexpire', () => cl.peers(j.sessionToken, v, undefined, 0)), 1, 'the poll past half its TTL asks Redis, which renews it');
  t.true(await env.r.pttl(k) > ttl / 2, 'renewed to the full TTL');
  await new Promise((r) => setTimeout(r, 1_200));
  t.is(await callsDuring(env.r, 'pexpire', () => cl.peers(j.sessionToken, v, undefined, 0)), 1, 'and again half a TTL later');
});
