/**
 * The relay's access policy against a real redis-server, with members admitted by the real
 * coordinator (tokens carrying tags → `P:node:<vip>`.tags, `P:key:<pub>`) and the policy set
 * the way the coordinator sets it: `P:policy` written, then `policy-changed` published on
 * `P:events`. Each refusal has a positive control in the same setup.
 */
import test, { type ExecutionContext } from 'ava';
import Redis from 'ioredis';
import { systemClock } from '../../common/clock';
import { silentLogger } from '../../common/logger';
import { DgramSocket } from '../../native-bindings';
import { parseAddr } from '../../common/ipv4';
import { EventType, encodeEvent, redisKeys } from '../../common/redis-schema';
import { createRelay, RedisMemberDirectory, RedisPolicySource } from '../../relay';
import { startEnv, member, LAN, type Env } from './coordinator-helpers';
import { fakeWg, startMember, until, type Member } from './relay-harness';

const K = redisKeys();
const WEB_TO_DB = '{ "rules": [ { "from": ["tag:web"], "to": ["tag:db"], "ports": ["tcp/5432"] } ] }';

let env: Env;
test.before(async () => { env = await startEnv(1); });
test.after.always(async () => { await env?.stop(); });

let version = 1000;
/** What the coordinator does on `isthmus policy set/clear`. */
async function setPolicy(text: string | null): Promise<void> {
  if (text === null) await env.r.del(K.policy);
  else await env.r.set(K.policy, text);
  await env.r.publish(K.events, encodeEvent({ type: EventType.PolicyChanged, version: ++version }));
}

/** Send DATA from → to until it arrives (true) or `ms` pass (false). */
async function reaches(from: Member, to: Member, ms = 1000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const wg = fakeWg();
    from.sendData(to.client.vip, wg);
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 10));
      if (to.received.some((r) => r.payload.equals(wg))) return true;
    }
  }
  return false;
}

async function join(tag: string, orig: string): Promise<{ vip: string; m: ReturnType<typeof member> }> {
  const tok = await env.admin.createToken({ uses: 1, originalCidrs: LAN, tags: [tag] });
  const m = member(orig);
  const j = await env.client(0).join({ ...m, token: tok.token });
  return { vip: j.vip, m };
}

test.serial('P:policy and the policy-changed event decide what the relay forwards; admin tag changes follow', async (t: ExecutionContext) => {
  const [a, b, c] = [await join('web', '10.1.0.1'), await join('db', '10.1.0.2'), await join('guest', '10.1.0.3')];
  t.is(await env.r.hget(K.node(c.vip), 'tags'), '["guest"]', 'tags as the coordinator wrote them');

  const redis = new Redis(env.redis.url, { maxRetriesPerRequest: 1 });
  const source = new RedisPolicySource(redis, { logger: silentLogger() });
  await source.start();
  const socket = await DgramSocket.open({ host: '127.0.0.1' });
  const relay = createRelay({ id: 'r-policy', keepaliveSeconds: 1, tickMs: 50 })({
    logger: silentLogger(), clock: systemClock, socket, directory: new RedisMemberDirectory(redis), policy: source,
  });
  relay.start();
  await relay.policyReady();
  const members = await Promise.all([a, b, c].map((x) => startMember({ kp: { publicKey: x.m.publicKey, secretKey: x.m.privateKey }, vip: parseAddr(x.vip) }, socket.localAddress.port)));
  const [ma, mb, mc] = members;
  t.teardown(async () => {
    for (const m of members) m.close();
    relay.stop();
    socket.close();
    await source.stop();
    redis.disconnect();
  });
  await until(() => members.every((m) => m.client.isReady), 'members bound');

  // No policy: everyone reaches everyone.
  t.true(await reaches(mc, ma), 'no policy: guest → web');
  t.true(await reaches(ma, mb), 'no policy: web → db');
  t.is(relay.stats().drops.policy, 0);

  await setPolicy(WEB_TO_DB);
  const dropsBefore = relay.stats().drops.policy;
  await until(() => relay.policyRules() === 1, 'the policy applied', 1000);
  t.false(await reaches(mc, ma, 300), 'guest → web cut');
  t.false(await reaches(mc, mb, 300), 'guest → db cut');
  t.true(relay.stats().drops.policy > dropsBefore, 'counted as policy');
  t.true(await reaches(ma, mb), 'positive control: web → db');
  t.true(await reaches(mb, ma), 'positive control: db → web');

  // An admin gives c the web tag (the coordinator publishes node-changed): c reaches db.
  await env.admin.setNodeTags(c.vip, { add: ['web'] });
  t.true(await reaches(mc, mb, 1000), 'c tagged web → db');
  await env.admin.setNodeTags(c.vip, { remove: ['web'] });
  await new Promise((r) => setTimeout(r, 200));
  t.false(await reaches(mc, mb, 300), 'untagged again: cut');

  // A malformed policy is refused and counted; the last good one stays in force.
  await setPolicy('{ "rules": "everything" }');
  await until(() => relay.stats().policyRejected === 1, 'the malformed policy refused', 1000);
  t.false(await reaches(mc, ma, 300), 'still cut');
  t.true(await reaches(ma, mb), 'still connected');

  // Cleared: everything flows again.
  await setPolicy(null);
  await until(() => relay.policyRules() === -1, 'the policy cleared', 1000);
  t.true(await reaches(mc, ma), 'no policy again: guest → web');

  // Set while the relay's event connection is down (no event reaches it): re-read on reconnect.
  await env.r.set(K.policy, WEB_TO_DB);
  await env.r.client('KILL', 'TYPE', 'pubsub');
  await until(() => relay.policyRules() === 1, 'the policy re-read after the reconnect', 3000);
  t.false(await reaches(mc, ma, 300), 'cut after the reconnect');
  t.true(await reaches(ma, mb), 'positive control after the reconnect');
});
