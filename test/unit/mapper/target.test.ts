import test from 'ava';
import fc from 'fast-check';
import { resolveTarget, type TargetPolicy } from '../../../mapper/target';
import { parseRange } from '../../../mapper/addr';
import { contains, isAddr, parseAddr } from '../../../common/ipv4';
import { toEntry, type MapEntry, type MemberDirectory } from '../../../mapper/directory';

function memDir(members: Array<{ orig: string; vip: string; hostname?: string }>): MemberDirectory {
  const es: MapEntry[] = members.map((m) => toEntry(m.vip, { orig: m.orig, hostname: m.hostname ?? '', tags: '[]' }, {}));
  return {
    byOriginalIp: async (ip) => es.find((e) => e.originalIp === ip) ?? null,
    byVirtualIp: async (ip) => es.find((e) => e.virtualIp === ip) ?? null,
    byHostname: async (h) => es.find((e) => e.hostname === h.toLowerCase()) ?? null,
  };
}

const policy: TargetPolicy = {
  directory: memDir([{ orig: '10.1.2.3', vip: '100.64.0.7', hostname: 'web-1' }]),
  overlay: parseRange('100.64.0.0/10'),
};

test('original IP, virtual IP, hostname and dotted-IPv4-as-domain resolve; others are refused', async (t) => {
  t.like(await resolveTarget('10.1.2.3', 80, policy), { kind: 'dial', ip: '100.64.0.7', via: 'original' });
  t.like(await resolveTarget('100.64.9.9', 80, policy), { kind: 'dial', ip: '100.64.9.9', via: 'virtual' });
  t.like(await resolveTarget('WEB-1', 80, policy), { kind: 'dial', ip: '100.64.0.7', via: 'hostname' });
  t.like(await resolveTarget('10.9.9.9', 80, policy), { kind: 'refuse', why: 'unknown' });
  t.like(await resolveTarget('nope.example', 80, policy), { kind: 'refuse', why: 'unknown' });
  t.like(await resolveTarget('127.0.0.1', 80, policy), { kind: 'refuse', why: 'not-allowed' });
  t.like(await resolveTarget('::1', 80, policy), { kind: 'refuse', why: 'unsupported' });
  t.like(await resolveTarget('[2001:db8::1]', 80, policy), { kind: 'refuse', why: 'unsupported' });
  t.like(await resolveTarget('10.1.2.3', 0, policy), { kind: 'refuse', why: 'invalid' });
  t.like(await resolveTarget('a b', 80, policy), { kind: 'refuse', why: 'invalid' });
  const strict = { ...policy, originalCidrs: [parseRange('10.0.0.0/8')] };
  t.like(await resolveTarget('192.0.2.1', 80, strict), { kind: 'refuse', why: 'not-allowed' });
  t.like(await resolveTarget('10.9.9.9', 80, strict), { kind: 'refuse', why: 'unknown' });
  const broken: TargetPolicy = { ...policy, directory: { ...policy.directory, byOriginalIp: async () => { throw new Error('down'); } } };
  t.like(await resolveTarget('10.1.2.3', 80, broken), { kind: 'refuse', why: 'unavailable' });
});

test('never dials outside the overlay unless the directory mapped it (no open proxy)', async (t) => {
  await fc.assert(fc.asyncProperty(fc.oneof(fc.ipV4(), fc.string({ maxLength: 40 }), fc.domain()), fc.integer({ min: 1, max: 65535 }), async (host, port) => {
    const r = await resolveTarget(host, port, policy);
    if (r.kind !== 'dial') return true;
    return r.ip === '100.64.0.7' || (isAddr(r.ip) && contains(policy.overlay, parseAddr(r.ip)));
  }), { numRuns: 3000 });
  t.pass();
});

test('whatever the directory (Redis) says, only overlay addresses are dialed: other mappings are bad-mapping', async (t) => {
  const hostile: TargetPolicy = { ...policy, directory: memDir([
    { orig: '10.1.2.3', vip: '100.64.0.7', hostname: 'web-1' },
    { orig: '10.6.6.6', vip: '192.0.2.66', hostname: 'evil' },
    { orig: '10.6.6.7', vip: '127.0.0.1', hostname: 'lo' },
    { orig: '10.6.6.8', vip: 'not-an-ip', hostname: 'junk' },
  ]) };
  t.like(await resolveTarget('10.1.2.3', 80, hostile), { kind: 'dial', ip: '100.64.0.7' }, 'positive control');
  t.like(await resolveTarget('web-1', 80, hostile), { kind: 'dial', ip: '100.64.0.7' }, 'positive control');
  for (const h of ['10.6.6.6', 'evil', '10.6.6.7', 'lo', '10.6.6.8', 'junk']) {
    const r = await resolveTarget(h, 80, hostile);
    t.like(r, { kind: 'refuse', why: 'bad-mapping' }, h);
    if (r.kind === 'refuse') t.regex(r.reason, /outside the overlay 100\.64\.0\.0\/10: not dialed/);
  }
  await fc.assert(fc.asyncProperty(fc.oneof(fc.ipV4(), fc.string({ maxLength: 20 })), fc.oneof(fc.ipV4(), fc.domain()), async (vip, host) => {
    const dir: MemberDirectory = {
      byOriginalIp: async () => toEntry(vip, { orig: '10.0.0.1', hostname: 'x', tags: '[]' }, {}),
      byVirtualIp: async () => null,
      byHostname: async () => toEntry(vip, { orig: '10.0.0.1', hostname: 'x', tags: '[]' }, {}),
    };
    const r = await resolveTarget(host, 443, { ...policy, directory: dir });
    return r.kind !== 'dial' || (isAddr(r.ip) && contains(policy.overlay, parseAddr(r.ip)));
  }), { numRuns: 2000 });
});

test('ranges from options: InvalidCidrError on junk, host bits cleared (parser: test/unit/common/ipv4.test.ts)', async (t) => {
  for (const bad of ['10.0.0.0/33', '010.0.0.0/8', '10.0.0.0', '10.0.0.0/8 x', '']) t.throws(() => parseRange(bad), { code: 'ERR_INVALID_CIDR' }, bad);
  t.deepEqual(parseRange(' 100.64.0.1/10 '), parseRange('100.64.0.0/10'));
  t.true(contains(parseRange('100.64.0.0/10'), parseAddr('100.127.255.255')));
  t.false(contains(parseRange('100.64.0.0/10'), parseAddr('100.128.0.0')));
  t.true(contains(parseRange('0.0.0.0/0'), parseAddr('1.2.3.4')));
  // Not an address (leading zero): a name, so never dialed as 10.1.2.3 or as octal.
  t.like(await resolveTarget('010.1.2.3', 80, policy), { kind: 'refuse', why: 'unknown' });
  t.like(await resolveTarget('1.2.3.256', 80, policy), { kind: 'refuse', why: 'unknown' });
});

test('toEntry tolerates junk fields', (t) => {
  const e = toEntry('100.64.0.2', { orig: '10.0.0.1', tags: 'not json', lastSeen: 'x' }, { relayIp: '1.1.1.1', relayPort: '99999' });
  t.deepEqual(e.tags, []);
  t.is(e.lastSeen, null);
  t.is(e.relay, null);
  t.false(e.online);
  const f = toEntry('100.64.0.2', { orig: '10.0.0.1', tags: '["a",1,"b"]', lastSeen: '5', hostname: 'h' }, { relayIp: '1.1.1.1', relayPort: '51820', agentIp: '2.2.2.2', agentPort: '4000' });
  t.deepEqual(f, { originalIp: '10.0.0.1', virtualIp: '100.64.0.2', hostname: 'h', online: true, relay: { ip: '1.1.1.1', port: 51820 }, agent: { ip: '2.2.2.2', port: 4000 }, tags: ['a', 'b'], lastSeen: 5 });
});
