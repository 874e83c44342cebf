/**
 * Membership records (coordinator/membership-record.ts): round trip, every field bound by the
 * signature, deployment and expiry checks, and a verifier that never throws on any input.
 */
import test from 'ava';
import fc from 'fast-check';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { generateSigningKey } from '../../../coordinator/answer-signing';
import { issueMembershipRecord, readMembershipRecordUnverified, verifyMembershipRecord, RECORD_PREFIX,
  type MembershipRecord } from '../../../coordinator/membership-record';

const key = createPrivateKey(generateSigningKey().pem);
const pub = createPublicKey(key);
const other = createPublicKey(createPrivateKey(generateSigningKey().pem));
const NOW = 1_800_000_000_000;
const deployment = { now: NOW, prefix: 'isthmus:', cidr: '100.64.0.0/10' };
const base: MembershipRecord = {
  v: 1, prefix: 'isthmus:', cidr: '100.64.0.0/10', pub: Buffer.alloc(32, 7).toString('base64'), vip: '100.64.0.5', orig: '10.1.2.3',
  hostname: 'web-1', tags: ['db', 'web'], cidrs: ['10.1.0.0/16'], ephemeral: false, iat: NOW - 1000, exp: NOW + 60_000, gen: 'g1',
};

test('a record round-trips and verifies with the signing key; the reader sees the same fields', (t) => {
  const text = issueMembershipRecord(key, base);
  t.true(text.startsWith(RECORD_PREFIX));
  const r = verifyMembershipRecord(pub, text, deployment);
  t.true(r.ok);
  if (r.ok) t.deepEqual(r.record, base);
  t.deepEqual(readMembershipRecordUnverified(text), base);
});

test('another signing key, another deployment, an expired record: refused with their codes; the same record passes as a control', (t) => {
  const text = issueMembershipRecord(key, base);
  t.true(verifyMembershipRecord(pub, text, deployment).ok, 'positive control');
  t.like(verifyMembershipRecord(other, text, deployment), { ok: false, code: 'record-invalid' });
  t.like(verifyMembershipRecord(pub, text, { ...deployment, prefix: 'other:' }), { ok: false, code: 'record-other-deployment' });
  t.like(verifyMembershipRecord(pub, text, { ...deployment, cidr: '100.96.0.0/11' }), { ok: false, code: 'record-other-deployment' });
  t.like(verifyMembershipRecord(pub, text, { ...deployment, now: base.exp }), { ok: false, code: 'record-expired' });
});

test('changing any field of the signed body breaks the signature', (t) => {
  const text = issueMembershipRecord(key, base);
  const [body, sig] = text.slice(RECORD_PREFIX.length).split('.');
  const parsed = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>;
  const changes: Record<string, unknown> = { vip: '100.64.0.6', orig: '10.1.2.4', hostname: 'web-2', tags: ['admin'], cidrs: ['0.0.0.0/0'],
    ephemeral: true, exp: base.exp + 1, iat: base.iat - 1, gen: 'g2', pub: Buffer.alloc(32, 8).toString('base64'), prefix: 'x:', cidr: '100.64.0.0/11' };
  for (const [k, v] of Object.entries(changes)) {
    const forged = RECORD_PREFIX + Buffer.from(JSON.stringify({ ...parsed, [k]: v })).toString('base64url') + '.' + sig;
    t.like(verifyMembershipRecord(pub, forged, deployment), { ok: false, code: 'record-invalid' }, k);
  }
  // Re-encoding the same body (whitespace) changes the bytes: refused too.
  const spaced = RECORD_PREFIX + Buffer.from(JSON.stringify(parsed, null, 1)).toString('base64url') + '.' + sig;
  t.like(verifyMembershipRecord(pub, spaced, deployment), { ok: false, code: 'record-invalid' });
});

test('well-signed bodies with bad fields are refused by the strict parser', (t) => {
  const bad: Partial<Record<keyof MembershipRecord, unknown>>[] = [
    { vip: '100.64.0.05' }, { vip: 'x' }, { orig: '10.1.2.3 ' }, { hostname: '-a' }, { tags: ['bad tag'] }, { tags: ['a', 'a'] },
    { cidrs: ['10.1.0.0/33'] }, { ephemeral: 'no' }, { exp: base.iat }, { gen: '' }, { pub: 'AAAA' },
  ];
  for (const b of bad) {
    const text = issueMembershipRecord(key, { ...base, ...b } as MembershipRecord);
    t.like(verifyMembershipRecord(pub, text, deployment), { ok: false, code: 'record-invalid' }, JSON.stringify(b));
  }
});

test('the verifier and the reader never throw, on any string or value (fast-check)', (t) => {
  const good = issueMembershipRecord(key, base);
  const mutate = fc.tuple(fc.nat(good.length - 1), fc.string({ maxLength: 4 })).map(([i, s]) => good.slice(0, i) + s + good.slice(i + 1));
  const records = fc.oneof(
    fc.anything(),
    fc.string(),
    mutate,
    fc.string().map((s) => RECORD_PREFIX + Buffer.from(s).toString('base64url') + '.' + Buffer.alloc(64).toString('base64url')),
    fc.jsonValue().map((v) => RECORD_PREFIX + Buffer.from(JSON.stringify(v) ?? '').toString('base64url') + '.' + 'A'.repeat(86)),
  );
  fc.assert(fc.property(records, (x) => {
    const r = verifyMembershipRecord(pub, x, deployment);
    readMembershipRecordUnverified(x);
    return x === good ? r.ok : !r.ok || x === good;
  }), { numRuns: 3000 });
  t.pass();
});
