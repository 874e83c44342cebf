/**
 * The agent's check of its own membership record on receipt (join, re-assert and refresh
 * answers), before it is kept in the state dir (docs/SECURITY.md "Membership records"): the
 * signature must verify with the pinned coordinator signing key, and the record must name this
 * member (its public key), the vip and overlay CIDR it was just given, and not be expired. A
 * record that fails is never stored, so what the agent later re-asserts is one it checked.
 *
 * `GET /v1/record` answers are not signed as answers are (only join and peer-map answers are):
 * this check is what stops a changed or foreign record from replacing a good one on disk.
 */
import { parseSigningPublicKey, readMembershipRecordUnverified, verifyMembershipRecord, type MembershipRecord } from '../coordinator';

export type OwnRecordCheck = { ok: true; record: MembershipRecord } | { ok: false; reason: string };

export interface OwnRecordExpect {
  /** The pinned coordinator signing key (base64); undefined: nothing to check against. */
  signingKey: string | undefined;
  /** This member's public key (base64). */
  publicKey: string;
  /** The vip and overlay CIDR of the answer that carried the record. */
  vip: string;
  cidr: string;
  now: number;
}

/** Pure; never throws. */
export function checkOwnRecord(text: string, e: OwnRecordExpect): OwnRecordCheck {
  if (!e.signingKey) return { ok: false, reason: 'no pinned coordinator signing key to check it against' };
  let key;
  try {
    key = parseSigningPublicKey(e.signingKey);
  } catch (err) {
    return { ok: false, reason: `the pinned signing key is unusable (${(err as Error).message})` };
  }
  // The deployment prefix is the record's own (the agent does not know the Redis prefix); the
  // signature covers it, and the CIDR is checked against the answer's.
  const claimed = readMembershipRecordUnverified(text);
  if (!claimed) return { ok: false, reason: 'not a membership record (malformed)' };
  const v = verifyMembershipRecord(key, text, { now: e.now, prefix: claimed.prefix, cidr: e.cidr });
  if (!v.ok) return { ok: false, reason: `${v.code}: ${v.reason}` };
  if (v.record.pub !== e.publicKey) return { ok: false, reason: 'it names another member\'s public key' };
  if (v.record.vip !== e.vip) return { ok: false, reason: `it names vip ${v.record.vip}, the answer ${e.vip}` };
  return { ok: true, record: v.record };
}
