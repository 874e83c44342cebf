/**
 * The pure parts of port exposure: the range flag, the stored record's validation, and the
 * policy check it shares with the gateway's proxies (GatewayAccess: the user's and the
 * gateway's tags, each refusal beside an allowed case).
 */
import test from 'ava';
import { parsePortRange } from '../../../mapper/expose';
import { toRecord } from '../../../mapper/expose-store';
import { GatewayAccess } from '../../../mapper/gateway';
import type { MapEntry, MemberDirectory } from '../../../mapper/directory';
import { EventType } from '../../../common';

test('parsePortRange: FIRST-LAST or one port; bad ranges named', (t) => {
  t.deepEqual(parsePortRange('20000-20999'), { first: 20000, last: 20999 });
  t.deepEqual(parsePortRange(' 30000 '), { first: 30000, last: 30000 });
  t.throws(() => parsePortRange('20999-20000'), { message: /first port is above the last/ });
  t.throws(() => parsePortRange('0-10'), { message: /1-65535/ });
  t.throws(() => parsePortRange('60000-70000'), { message: /1-65535/ });
  for (const bad of ['', 'a-b', '1-2-3', '-5', '123456']) t.throws(() => parsePortRange(bad), { message: /want FIRST-LAST|1-65535/ }, bad);
});

test('toRecord accepts a well-formed hash and refuses junk from Redis', (t) => {
  const h = { gatewayId: '100.64.0.9', gatewayIp: '10.0.0.5', gatewayPort: '20001', originalIp: '10.1.2.3', port: '8000', user: 'ops', createdAt: '1', expiresAt: '2' };
  t.deepEqual(toRecord(h), { ...h, gatewayPort: 20001, port: 8000, createdAt: 1, expiresAt: 2 });
  for (const bad of [{ gatewayPort: '0' }, { gatewayPort: '70000' }, { port: 'x' }, { gatewayIp: '' }, { expiresAt: '1e3' }, { originalIp: undefined }]) {
    t.is(toRecord({ ...h, ...bad } as Record<string, string>), null, JSON.stringify(bad));
  }
  t.is(toRecord({}), null);
});

const POLICY = JSON.stringify({ rules: [
  { from: ['tag:ops'], to: ['tag:web'], ports: ['tcp/8000-8001'] },
  { from: ['tag:gateway'], to: ['tag:web'], ports: ['tcp/8000'] },
] });

const member = (virtualIp: string, tags: string[], hostname: string): MapEntry =>
  ({ originalIp: `10.0.0.${virtualIp.split('.')[3]}`, virtualIp, hostname, online: true, relay: null, agent: null, tags, lastSeen: null });
const GW = member('100.64.0.9', ['gateway'], 'gw-1');
const WEB = member('100.64.0.2', ['web'], 'web-1');
const directory: MemberDirectory = {
  byVirtualIp: async (vip) => [GW, WEB].find((e) => e.virtualIp === vip) ?? null,
  byOriginalIp: async () => null,
  byHostname: async () => null,
};
const access = (load: () => Promise<string | null>, selfVip: () => Promise<string | null> = async () => GW.virtualIp) =>
  new GatewayAccess({ loadPolicy: load, directory, selfVip });

test('GatewayAccess.judge: both the user\'s and the gateway\'s tags must open the port, the refusal names the side', async (t) => {
  const a = access(async () => POLICY);
  t.is(await a.judge({ name: 'alice', tags: ['ops'] }, GW, WEB, 8000), null);
  const user = await a.judge({ name: 'mallory', tags: ['monitoring'] }, GW, WEB, 8000);
  t.is(user?.why, 'policy');
  t.regex(user!.reason, /proxy user mallory \(tags monitoring\) open tcp\/8000 to web-1/);
  const gw = await a.judge({ name: 'alice', tags: ['ops'] }, GW, WEB, 8001);
  t.regex(gw!.reason, /this gateway \(tags gateway\) open tcp\/8001/);
  t.is(await a.judge({ name: 'alice', tags: ['ops'] }, null, WEB, 8001), null, 'the user\'s side alone (GET) does not ask the gateway\'s tags');
  t.truthy(await a.judge({ name: 'nobody', tags: [] }, GW, WEB, 8000), 'a user with no tags reaches nothing under a policy');
  t.is(await access(async () => null).judge({ name: 'nobody', tags: [] }, GW, WEB, 1), null, 'no policy: everyone reaches everyone');
  const broken = await access(async () => '{ nope').judge({ name: 'alice', tags: ['ops'] }, GW, WEB, 8000);
  t.regex(broken!.reason, /does not parse/, 'fails closed, saying why');
});

test('GatewayAccess reads the policy at most once per max age; policy-changed (or a resubscribe) drops it at once', async (t) => {
  let reads = 0;
  let text: string | null = POLICY;
  const a = access(async () => { reads++; return text; });
  const alice = { name: 'alice', tags: ['ops'] };
  t.is(await a.judge(alice, GW, WEB, 8000), null);
  t.is(await a.judge(alice, GW, WEB, 8000), null);
  t.is(reads, 1);
  text = JSON.stringify({ rules: [{ from: ['tag:x'], to: ['tag:y'], ports: ['tcp/1'] }] });
  t.is(await a.judge(alice, GW, WEB, 8000), null, 'cached until the max age or an event');
  a.onClusterEvent({ type: EventType.PolicyChanged, version: 2 });
  t.is((await a.judge(alice, GW, WEB, 8000))?.why, 'policy', 'the new policy after the event');
  t.is(reads, 2);
  text = '{ nope';
  a.onClusterEvent(undefined);
  t.regex((await a.judge(alice, GW, WEB, 8000))!.reason, /does not parse/);
  text = POLICY;
  a.onClusterEvent(undefined);
  t.is(await a.judge(alice, GW, WEB, 8000), null, 'a valid policy again: allowed');
});

test('GatewayAccess.identity and check: the gateway must know who it is and be a member; the target must be a member', async (t) => {
  const alice = { name: 'alice', tags: ['ops'] };
  const a = access(async () => POLICY);
  t.like(await a.identity(), { ok: true, vip: GW.virtualIp });
  t.is(await a.check(alice, WEB.virtualIp, 8000, null), null);
  t.like(await access(async () => POLICY, async () => null).identity(), { ok: false, why: 'unknown' });
  t.like(await access(async () => POLICY, async () => '100.64.0.99').identity(), { ok: false, why: 'not-member' });
  t.is((await access(async () => POLICY, async () => null).check(alice, WEB.virtualIp, 8000, null))?.why, 'unavailable');
  t.is((await a.check(alice, '100.64.0.77', 8000, null))?.why, 'not-allowed');
});
