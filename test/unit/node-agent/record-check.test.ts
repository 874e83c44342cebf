/**
 * The agent's check of a membership record it receives (node-agent/record-check.ts): the
 * genuine record passes; every changed, foreign or stale one is refused with a reason. Each
 * refusal is made from the genuine record by changing one thing.
 */
import test from 'ava';
import { createPrivateKey } from 'node:crypto';
import nacl from 'tweetnacl';
import { generateSigningKey } from '../../../coordinator/answer-signing';
import { issueMembershipRecord, type MembershipRecord } from '../../../coordinator/membership-record';
import { checkOwnRecord, type OwnRecordExpect } from '../../../node-agent/record-check';

const deployment = generateSigningKey();
const other = generateSigningKey();
const pub = Buffer.from(nacl.box.keyPair().publicKey).toString('base64');
const NOW = 1_800_000_000_000;
const body: MembershipRecord = {
  v: 1, prefix: 'isthmus:', cidr: '100.64.0.0/10', pub, vip: '100.64.0.7', orig: '10.1.0.7', hostname: 'web-1',
  tags: ['web'], cidrs: ['10.1.0.0/16'], ephemeral: false, iat: NOW - 1000, exp: NOW + 86_400_000, gen: 'g1',
};
const issue = (r: Partial<MembershipRecord> = {}, pem = deployment.pem) => issueMembershipRecord(createPrivateKey(pem), { ...body, ...r });
const expect: OwnRecordExpect = { signingKey: deployment.publicKey, publicKey: pub, vip: '100.64.0.7', cidr: '100.64.0.0/10', now: NOW };

function refused(t: import('ava').ExecutionContext, text: string, e: Partial<OwnRecordExpect>, reason: RegExp): void {
  const c = checkOwnRecord(text, { ...expect, ...e });
  t.false(c.ok, String(reason));
  if (!c.ok) t.regex(c.reason, reason);
}

test('the genuine record passes; changed, foreign and stale ones are refused with the reason', (t) => {
  const genuine = issue();
  const ok = checkOwnRecord(genuine, expect);
  t.true(ok.ok, 'positive control');
  if (ok.ok) t.is(ok.record.exp, body.exp);

  refused(t, issue({}, other.pem), {}, /record-invalid: signature does not verify/);
  refused(t, genuine, { signingKey: other.publicKey }, /record-invalid: signature does not verify/);
  refused(t, genuine, { signingKey: undefined }, /no pinned coordinator signing key/);
  refused(t, genuine, { signingKey: 'not a key' }, /pinned signing key is unusable/);
  refused(t, issue({ pub: Buffer.from(nacl.box.keyPair().publicKey).toString('base64') }), {}, /another member's public key/);
  refused(t, issue({ vip: '100.64.0.8' }), {}, /names vip 100\.64\.0\.8, the answer 100\.64\.0\.7/);
  refused(t, genuine, { cidr: '100.96.0.0/11' }, /record-other-deployment/);
  refused(t, issue({ exp: NOW - 1, iat: NOW - 2000 }), {}, /record-expired/);
  refused(t, 'imr1.garbage', {}, /malformed/);
  // One changed byte of the body (a tag), signature kept.
  const [head, b64, sig] = genuine.split('.');
  const tampered = Buffer.from(b64, 'base64url').toString().replace('"web"', '"db1"');
  refused(t, `${head}.${Buffer.from(tampered).toString('base64url')}.${sig}`, {}, /signature does not verify/);
});
