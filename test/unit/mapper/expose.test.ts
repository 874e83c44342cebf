/**
 * The pure parts of port exposure: the range flag, the stored record's validation, and the
 * policy verdict on the user's and the gateway's tags (each refusal beside an allowed case).
 */
import test from 'ava';
import { parsePortRange } from '../../../mapper/expose';
import { toRecord } from '../../../mapper/expose-store';
import { PolicyCache, judgeExposure } from '../../../mapper/expose-policy';
import { compilePolicy, parsePolicy } from '../../../policy';

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

const POLICY = compilePolicy(parsePolicy(JSON.stringify({ rules: [
  { from: ['tag:ops'], to: ['tag:web'], ports: ['tcp/8000-8001'] },
  { from: ['tag:gateway'], to: ['tag:web'], ports: ['tcp/8000'] },
] })));

test('judgeExposure: both the user\'s and the gateway\'s tags must open the port', (t) => {
  t.deepEqual(judgeExposure(POLICY, ['ops'], ['gateway'], ['web'], 8000), { ok: true });
  const user = judgeExposure(POLICY, ['monitoring'], ['gateway'], ['web'], 8000);
  t.false(user.ok);
  t.regex((user as { reason: string }).reason, /the user \(tag:monitoring\) may not open tcp\/8000/);
  const gw = judgeExposure(POLICY, ['ops'], ['gateway'], ['web'], 8001);
  t.regex((gw as { reason: string }).reason, /this gateway \(tag:gateway\) may not open tcp\/8001/);
  t.false(judgeExposure(POLICY, [], ['gateway'], ['web'], 8000).ok, 'a user with no tags reaches nothing under a policy');
  t.true(judgeExposure(compilePolicy(null), [], [], [], 1).ok, 'no policy: everyone reaches everyone');
  t.regex((judgeExposure(null, ['ops'], ['gateway'], ['web'], 8000) as { reason: string }).reason, /does not parse/);
});

test('PolicyCache reads at most once per max age, and a text that does not parse fails closed', async (t) => {
  let reads = 0;
  let text: string | null = null;
  const cache = new PolicyCache(async () => { reads++; return text; }, 1000);
  t.true((await cache.get(0))!.canOpen([], [], 'tcp', 1) >= 0);
  await cache.get(500);
  t.is(reads, 1);
  text = '{ nope';
  t.is(await cache.get(1500), null);
  t.is(reads, 2);
  text = JSON.stringify({ rules: [{ from: ['tag:x'], to: ['tag:y'], ports: ['tcp/1'] }] });
  t.false((await cache.get(3000))!.canOpen(['a'], ['b'], 'tcp', 1) >= 0);
});
