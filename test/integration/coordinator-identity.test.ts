/**
 * "No member can take another member's identity" (issue 10), tried the way an attacker
 * holding one compromised agent (its key, a multi-use token) would, against a real
 * redis-server and two coordinators. Every refusal has its positive control in the same test:
 * the legitimate join or claim succeeds in the same setup.
 */
import test, { type ExecutionContext } from 'ava';
import { startEnv, member, snapshotRedis, LAN, ADMIN, type Env } from './coordinator-helpers';
import { proveKey } from '../../protocol/key-proof';
import { CoordinatorClient, CoordinatorHttpError, type PeerMapUpdate } from '../../coordinator/client';
import { createCoordinator, type Coordinator } from '../../coordinator/server';

let env: Env;
test.before(async () => { env = await startEnv(2); });
test.after.always(async () => { await env?.stop(); });

async function rejects(t: ExecutionContext, p: Promise<unknown>, status: number, code: string): Promise<CoordinatorHttpError | undefined> {
  const e = await t.throwsAsync(p, { instanceOf: CoordinatorHttpError });
  t.is(e?.status, status, e?.message);
  t.is(e?.code, code, e?.message);
  return e;
}

/** Redis before/after a refused join: only the challenge the join fetched may be new. */
async function unchangedBy(t: ExecutionContext, fn: () => Promise<void>): Promise<void> {
  const before = await snapshotRedis(env.r);
  await fn();
  const after = await snapshotRedis(env.r);
  for (const k of Object.keys(after)) if (k.includes(':challenge:') && !(k in before)) delete after[k];
  t.deepEqual(after, before, 'a refused join changes nothing');
}

/** A client whose requests carry X-Forwarded-For (what a proxy, or an attacker, would add). */
function forwardedClient(url: string, xff: string): CoordinatorClient {
  const f: typeof fetch = (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), 'x-forwarded-for': xff } });
  return new CoordinatorClient({ url, insecure: true, fetch: f });
}

test.serial('a virtual IP claimed as an original IP is refused (new key and re-join by key); a real address is accepted', async (t) => {
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
  const controller = await env.client(0).join({ ...member('10.10.0.1', 's1'), token: tok.token });
  const attacker = member('10.10.0.66', 'attacker-1');
  await unchangedBy(t, async () => {
    const e = await rejects(t, env.client(1).join({ ...attacker, originalIp: controller.vip, token: tok.token }), 400, 'original-ip-in-overlay');
    t.regex(e?.message ?? '', /overlay CIDR 100\.64\.0\.0\/10/);
  });
  // Positive control: the same key and token with its own address.
  const j = await env.client(1).join({ ...attacker, token: tok.token });
  t.is(await env.r.get(`isthmus:orig:10.10.0.66`), j.vip);
  // Now a member: re-join by key (no token) claiming the controller's vip.
  await unchangedBy(t, async () => {
    await rejects(t, env.client(0).join({ ...attacker, originalIp: controller.vip }), 400, 'original-ip-in-overlay');
  });
  t.is(await env.r.get(`isthmus:orig:${controller.vip}`), null, 'nobody maps the controller\'s vip as an original IP');
  t.is((await env.client(0).join({ ...attacker })).vip, j.vip, 'positive control: re-join with its own address');
});

test.serial('special-purpose original IPs are refused; an ordinary one is accepted', async (t) => {
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: ['0.0.0.0/0'] });
  const m = member('10.11.0.1');
  for (const ip of ['127.0.0.1', '0.0.0.0', '169.254.169.254', '224.0.0.251', '240.0.0.1', '255.255.255.255']) {
    await unchangedBy(t, async () => {
      await rejects(t, env.client().join({ ...m, originalIp: ip, token: tok.token }), 400, 'original-ip-special');
    });
  }
  const j = await env.client().join({ ...m, token: tok.token });
  t.truthy(j.vip, 'positive control: 0.0.0.0/0 token, ordinary address');
});

test.serial('an original IP outside the token\'s prefixes and not the source is refused; inside is accepted; re-joins keep the first join\'s prefixes', async (t) => {
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: ['10.12.0.0/16'] });
  const m = member('10.13.0.5');
  await unchangedBy(t, async () => {
    const e = await rejects(t, env.client().join({ ...m, token: tok.token }), 403, 'original-ip-not-allowed');
    t.regex(e?.message ?? '', /10\.12\.0\.0\/16/, 'the reason names the allowed prefixes');
  });
  const j = await env.client().join({ ...m, originalIp: '10.12.7.7', token: tok.token });
  t.truthy(j.vip, 'positive control: inside the prefix');
  // The member (by key, no token) is held to the same prefixes.
  await unchangedBy(t, async () => {
    await rejects(t, env.client(1).join({ ...m, originalIp: '10.13.0.5' }), 403, 'original-ip-not-allowed');
  });
  t.is((await env.client(1).join({ ...m, originalIp: '10.12.8.8' })).vip, j.vip, 'positive control: re-join inside the prefix');
  t.deepEqual((await env.admin.listNodes()).find((n) => n.vip === j.vip)?.originalCidrs, ['10.12.0.0/16']);
});

test.serial('the source address: X-Forwarded-For only from a trusted proxy; a token without prefixes allows just the source', async (t) => {
  const tok = await env.admin.createToken({ uses: -1 });
  // No trusted proxy (the default): a forged X-Forwarded-For does not make 10.14.0.1 "the source".
  await unchangedBy(t, async () => {
    await rejects(t, forwardedClient(env.urls[0], '10.14.0.1').join({ ...member('10.14.0.1'), token: tok.token }), 403, 'original-ip-not-allowed');
  });
  // A coordinator that trusts the proxy at 127.0.0.1 believes the header.
  const proxied: Coordinator = await createCoordinator({ redis: env.redis.url, adminToken: ADMIN, sweepIntervalMs: 0, trustedProxies: ['127.0.0.1'] });
  t.teardown(() => proxied.close());
  const { url } = await proxied.listen('127.0.0.1', 0);
  const m = member('10.14.0.2');
  const j = await forwardedClient(url, '10.14.0.2').join({ ...m, token: tok.token });
  t.is(await env.r.get('isthmus:orig:10.14.0.2'), j.vip, 'positive control: the source as the trusted proxy names it');
  await rejects(t, forwardedClient(url, '10.14.0.2').join({ ...member('10.14.0.3'), token: tok.token }), 403, 'original-ip-not-allowed');
});

test.serial('the original IP of a live member, and of one last seen minutes ago, is never taken over: 409 naming the holder', async (t) => {
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
  const holder = await env.client(0).join({ ...member('10.15.0.1', 'holder-live'), token: tok.token });
  await env.r.hset(`isthmus:session:${holder.vip}`, { relayIp: '10.0.0.9', relayPort: '51820', agentIp: '10.15.0.1', agentPort: '4000', relayId: 'r1', since: '1' });
  const quiet = await env.client(1).join({ ...member('10.15.0.2', 'holder-quiet'), token: tok.token });
  await env.r.hset(`isthmus:node:${quiet.vip}`, 'lastSeen', String(Date.now() - 10 * 60_000)); // unseen for 10 minutes, no session
  const attacker = member('10.15.0.66', 'attacker-2');
  await env.client().join({ ...attacker, token: tok.token });
  for (const [h, orig, name] of [[holder, '10.15.0.1', 'holder-live'], [quiet, '10.15.0.2', 'holder-quiet']] as const) {
    await unchangedBy(t, async () => {
      // By key (a member already) and as a fresh key with the token.
      const e1 = await rejects(t, env.client(1).join({ ...attacker, originalIp: orig }), 409, 'original-ip-taken');
      t.true(e1!.message.includes(h.vip) && e1!.message.includes(name), e1?.message);
      await rejects(t, env.client(0).join({ ...member(orig, 'attacker-fresh'), token: tok.token }), 409, 'original-ip-taken');
    });
    t.is(await env.r.get(`isthmus:orig:${orig}`), h.vip, 'holder intact');
    t.is(await env.r.hget(`isthmus:node:${h.vip}`, 'orig'), orig);
  }
  // Positive control: once the admin removes the quiet holder, the address can be claimed.
  await env.admin.removeNode(quiet.vip);
  const j = await env.client().join({ ...member('10.15.0.2', 'successor'), token: tok.token });
  t.is(await env.r.get('isthmus:orig:10.15.0.2'), j.vip);
});

test.serial('a hostname in use (any case) is never taken over: 409; the holder keeps it and may re-join with it', async (t) => {
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
  const holder = member('10.16.0.1', 'ctl-1');
  const jh = await env.client().join({ ...holder, token: tok.token });
  const attacker = member('10.16.0.66', 'attacker-3');
  await env.client().join({ ...attacker, token: tok.token });
  for (const name of ['ctl-1', 'CTL-1']) {
    await unchangedBy(t, async () => {
      const e = await rejects(t, env.client(1).join({ ...attacker, hostname: name }), 409, 'hostname-taken');
      t.true(e!.message.includes(jh.vip), e?.message);
      await rejects(t, env.client(0).join({ ...member('10.16.0.67', name), token: tok.token }), 409, 'hostname-taken');
    });
  }
  t.is(await env.r.get('isthmus:host:ctl-1'), jh.vip);
  t.is((await env.client().join({ ...holder })).vip, jh.vip, 'positive control: the holder re-joins with its name');
  const renamed = await env.client(1).join({ ...attacker, hostname: 'attacker-3b' });
  t.is(await env.r.get('isthmus:host:attacker-3b'), renamed.vip, 'positive control: a free name');
});

test.serial('tags: a self-asserted tag is refused (400); token tags apply; an admin tag change reaches a peer on the other coordinator', async (t) => {
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['agent'] });
  const m = member('10.17.0.1', 'tagged-1');
  // The attacker posts its own join with tags (the client no longer sends any).
  const c = await env.client().challenge();
  const proof = proveKey(m.privateKey, m.publicKey, Buffer.from(c.ephemeralPublic, 'base64'), Buffer.from(c.nonce, 'base64'), 'join');
  const body = { publicKey: m.pub, challengeId: c.id, proof: Buffer.from(proof).toString('base64'), token: tok.token, originalIp: m.originalIp, hostname: m.hostname };
  let before = await snapshotRedis(env.r);
  const r = await fetch(env.urls[0] + '/v1/join', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, tags: ['controller'] }) });
  t.is(r.status, 400);
  const err = await r.json() as { error: string; message: string };
  t.is(err.error, 'tags-not-allowed');
  t.regex(err.message, /token create --tag/);
  t.deepEqual(await snapshotRedis(env.r), before);
  // Positive control: the same body without tags (an empty list is what old agents send).
  const ok = await fetch(env.urls[0] + '/v1/join', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, tags: [] }) });
  t.is(ok.status, 200);
  const joined = await ok.json() as { vip: string; sessionToken: string; version: number; peers: { vip: string; tags: string[] }[] };
  t.deepEqual(joined.peers.find((p) => p.vip === joined.vip)?.tags, ['agent'], 'the token\'s tags');

  // A peer watches on coordinator 0; the admin tags through coordinator 1.
  const peer = await env.client(0).join({ ...member('10.17.0.2', 'watcher'), token: tok.token });
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  let latest: PeerMapUpdate | undefined;
  const watching = env.client(0).watchPeers(peer.sessionToken, peer.version, (u) => { latest = u; }, ac.signal, { initial: peer.peers });
  const admin1 = new CoordinatorClient({ url: env.urls[1], insecure: true, adminToken: ADMIN });
  const changed = await admin1.setNodeTags('tagged-1', { add: ['web', 'db'], remove: ['agent'] });
  t.deepEqual(changed, { vip: joined.vip, tags: ['db', 'web'], version: changed.version });
  for (let i = 0; i < 100 && latest?.peers.get(joined.vip)?.tags.join() !== 'db,web'; i++) await new Promise((res) => setTimeout(res, 20));
  t.deepEqual(latest?.peers.get(joined.vip)?.tags, ['db', 'web'], 'the peer\'s map follows the admin change');
  // A no-op change emits nothing; a re-join keeps the admin's tags.
  before = await snapshotRedis(env.r);
  t.is((await admin1.setNodeTags(joined.vip, { add: ['web'] })).version, changed.version);
  t.deepEqual(await snapshotRedis(env.r), before);
  await env.client(1).join({ ...m });
  t.deepEqual((await env.admin.listNodes()).find((n) => n.vip === joined.vip)?.tags, ['db', 'web']);
  await rejects(t, env.admin.setNodeTags('no-such-host', { add: ['x'] }), 404, 'not-found');
  await rejects(t, env.admin.setNodeTags(joined.vip, {}), 400, 'no-tags');
  await rejects(t, new CoordinatorClient({ url: env.urls[0], insecure: true, adminToken: 'not-the-admin-token' }).setNodeTags(joined.vip, { add: ['x'] }), 401, 'unauthorized');
  ac.abort();
  await watching;
});

test.serial('a removed key re-joining with its still-valid multi-use token is refused (403) until the admin allows it', async (t) => {
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
  const bad = member('10.18.0.66', 'compromised');
  const j = await env.client().join({ ...bad, token: tok.token });
  t.deepEqual(await env.admin.removeNode(j.vip), { keyRefused: true });
  await unchangedBy(t, async () => {
    const e = await rejects(t, env.client(1).join({ ...bad, token: tok.token }), 403, 'key-removed');
    t.regex(e?.message ?? '', /allow-key/);
  });
  // Positive control: the token still works for another key.
  t.truthy((await env.client().join({ ...member('10.18.0.2', 'innocent'), token: tok.token })).vip);
  t.like((await env.admin.listRemovedKeys()).find((k) => k.publicKey === bad.pub), { vip: j.vip, hostname: 'compromised' });
  await env.admin.allowKey(bad.pub);
  const again = await env.client(1).join({ ...bad, token: tok.token });
  t.truthy(again.vip, 'allowed again: joins with a token');
  await rejects(t, env.admin.allowKey(bad.pub), 404, 'not-found');
  // --allow-rejoin, and a member's own leave, do not refuse the key.
  t.deepEqual(await env.admin.removeNode(again.vip, { allowRejoin: true }), { keyRefused: false });
  const third = await env.client().join({ ...bad, token: tok.token });
  await env.client().leave(third.sessionToken);
  t.truthy((await env.client().join({ ...bad, token: tok.token })).vip);
});

test.serial('two coordinators racing 50 joins for one original IP: exactly one winner, 49 × 409, nothing else changed', async (t) => {
  const tok = await env.admin.createToken({ uses: -1, originalCidrs: LAN });
  const bystander = await env.client().join({ ...member('10.19.0.1', 'bystander'), token: tok.token });
  const bystanderHash = await env.r.hgetall(`isthmus:node:${bystander.vip}`);
  const v0 = await env.registryVersion();
  const racers = Array.from({ length: 50 }, (_, i) => member('10.19.0.99', `racer-${i}`));
  const results = await Promise.allSettled(racers.map((m, i) => env.client(i % 2).join({ ...m, token: tok.token })));
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.is(won.length, 1);
  t.is(lost.length, 49);
  for (const l of lost) t.is((l.reason as CoordinatorHttpError).code, 'original-ip-taken', String(l.reason));
  const winner = (won[0] as PromiseFulfilledResult<{ vip: string }>).value.vip;
  t.is(await env.r.get('isthmus:orig:10.19.0.99'), winner);
  t.is(await env.registryVersion(), v0 + 1, 'one change only');
  t.deepEqual(await env.r.hgetall(`isthmus:node:${bystander.vip}`), bystanderHash, 'an existing member is untouched');
});
