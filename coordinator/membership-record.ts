/**
 * Signed membership records (docs/SECURITY.md "Membership records"), in the spirit of Nebula's
 * certificates: at join the coordinator hands the member a record of the identity it was given,
 * signed with the deployment's Ed25519 signing key (answer-signing.ts). The member keeps it in
 * its state dir; if Redis loses its data, the member re-asserts the record (with a fresh key
 * proof) and a coordinator restores exactly that identity (POST /v1/reassert).
 *
 * Text form (ASCII, one line):
 *
 *   imr1.<base64url(body)>.<base64url(signature)>
 *
 *   body       canonical JSON of MembershipRecord (below), as the coordinator wrote it
 *   signature  Ed25519 over "isthmus-membership-v1\n" + body
 *
 * The verifier checks the signature over the exact body bytes before it parses them, then
 * checks every field strictly; it never throws (malformed input is a reason, not an exception).
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import { formatAddr, formatPrefix, tryParseAddr, tryParsePrefix } from '../common';
import { TAG_NAME } from '../policy';
import { MAX_TAGS } from './constants';
import { MAX_ORIGINAL_CIDRS } from './claim-rules';

export const RECORD_PREFIX = 'imr1.';
const SIGNED_LABEL = 'isthmus-membership-v1\n';
/** Longest record text accepted. */
export const MAX_RECORD_LEN = 8192;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const GENERATION = /^[A-Za-z0-9_-]{1,64}$/;

export interface MembershipRecord {
  /** Format version, 1. */
  v: 1;
  /** The deployment: the Redis key prefix and the overlay CIDR the identity belongs to. */
  prefix: string;
  cidr: string;
  /** base64 X25519 static public key. */
  pub: string;
  vip: string;
  orig: string;
  hostname: string;
  /** Sorted; from the join token and admin changes only. */
  tags: string[];
  /** Prefixes the member's original IP may be in (from its token), kept for later re-joins. */
  cidrs: string[];
  ephemeral: boolean;
  /** Unix ms: issued and expires. */
  iat: number;
  exp: number;
  /** The Redis state generation (`P:deployment` `generation`) it was issued in. */
  gen: string;
}

export type RecordRefusal = 'record-invalid' | 'record-expired' | 'record-other-deployment';

export type RecordCheck =
  | { ok: true; record: MembershipRecord }
  | { ok: false; code: RecordRefusal; reason: string };

function signedBytes(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(SIGNED_LABEL), body]);
}

/** The canonical body: fixed field order, sorted tags and prefixes. */
function canonical(r: MembershipRecord): Buffer {
  return Buffer.from(JSON.stringify({
    v: 1, prefix: r.prefix, cidr: r.cidr, pub: r.pub, vip: r.vip, orig: r.orig, hostname: r.hostname,
    tags: [...r.tags].sort(), cidrs: [...r.cidrs].sort(), ephemeral: r.ephemeral, iat: r.iat, exp: r.exp, gen: r.gen,
  }));
}

/** Sign a record with the deployment's signing key (Ed25519 private key). */
export function issueMembershipRecord(key: KeyObject, r: MembershipRecord): string {
  const body = canonical(r);
  const sig = sign(null, signedBytes(body), key);
  return RECORD_PREFIX + body.toString('base64url') + '.' + sig.toString('base64url');
}

const isCanonicalAddr = (v: unknown): v is string => {
  if (typeof v !== 'string' || v.length > 15) return false;
  const n = tryParseAddr(v);
  return n !== undefined && formatAddr(n) === v;
};
const isCanonicalPrefix = (v: unknown): v is string => {
  if (typeof v !== 'string' || v.length > 18) return false;
  const p = tryParsePrefix(v);
  return p !== undefined && formatPrefix(p) === v;
};
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const isKey = (v: unknown): v is string => {
  if (typeof v !== 'string' || v.length !== 44) return false;
  const raw = Buffer.from(v, 'base64');
  return raw.length === 32 && raw.toString('base64') === v;
};

/** The fields of a parsed body, or why not (shape only: no signature, no time, no deployment). */
function parseBody(o: unknown): MembershipRecord | string {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const r = o as Record<string, unknown>;
  const keys = ['v', 'prefix', 'cidr', 'pub', 'vip', 'orig', 'hostname', 'tags', 'cidrs', 'ephemeral', 'iat', 'exp', 'gen'];
  for (const k of Object.keys(r)) if (!keys.includes(k)) return `unknown field ${JSON.stringify(k).slice(0, 40)}`;
  if (r.v !== 1) return 'unknown record version';
  if (typeof r.prefix !== 'string' || r.prefix.length > 256) return 'bad prefix';
  if (!isCanonicalPrefix(r.cidr)) return 'bad cidr';
  if (!isKey(r.pub)) return 'bad public key';
  if (!isCanonicalAddr(r.vip)) return 'bad vip';
  if (!isCanonicalAddr(r.orig)) return 'bad original IP';
  if (typeof r.hostname !== 'string' || r.hostname.length > 253 || !HOSTNAME.test(r.hostname)) return 'bad hostname';
  if (!Array.isArray(r.tags) || r.tags.length > MAX_TAGS || !r.tags.every((t) => typeof t === 'string' && TAG_NAME.test(t))
    || new Set(r.tags).size !== r.tags.length) return 'bad tags';
  if (!Array.isArray(r.cidrs) || r.cidrs.length > MAX_ORIGINAL_CIDRS || !r.cidrs.every(isCanonicalPrefix)) return 'bad cidrs';
  if (typeof r.ephemeral !== 'boolean') return 'bad ephemeral';
  if (!isTime(r.iat) || !isTime(r.exp) || r.exp <= r.iat) return 'bad times';
  if (typeof r.gen !== 'string' || !GENERATION.test(r.gen)) return 'bad generation';
  return r as unknown as MembershipRecord;
}

/** Split the text form; undefined when it is not one. */
function split(text: unknown): { body: Buffer; sig: Buffer } | undefined {
  if (typeof text !== 'string' || text.length > MAX_RECORD_LEN || !text.startsWith(RECORD_PREFIX)) return undefined;
  const parts = text.slice(RECORD_PREFIX.length).split('.');
  if (parts.length !== 2 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return undefined;
  const body = Buffer.from(parts[0], 'base64url');
  const sig = Buffer.from(parts[1], 'base64url');
  if (body.toString('base64url') !== parts[0] || sig.length !== 64 || sig.toString('base64url') !== parts[1]) return undefined;
  return { body, sig };
}

/**
 * Verify a record against the signing public key, the deployment (`prefix`, `cidr`) and the
 * time. Never throws: anything malformed, unsigned or signed by another key is `record-invalid`.
 */
export function verifyMembershipRecord(publicKey: KeyObject, text: unknown, o: { now: number; prefix: string; cidr: string }): RecordCheck {
  try {
    const parts = split(text);
    if (!parts) return { ok: false, code: 'record-invalid', reason: `not a membership record (${RECORD_PREFIX}<body>.<signature>)` };
    if (!verify(null, signedBytes(parts.body), publicKey, parts.sig)) {
      return { ok: false, code: 'record-invalid', reason: 'signature does not verify with this deployment\'s signing key (changed, or issued elsewhere)' };
    }
    let json: unknown;
    try {
      json = JSON.parse(parts.body.toString('utf8'));
    } catch {
      return { ok: false, code: 'record-invalid', reason: 'body is not JSON' };
    }
    const r = parseBody(json);
    if (typeof r === 'string') return { ok: false, code: 'record-invalid', reason: r };
    if (r.prefix !== o.prefix || r.cidr !== o.cidr) {
      return { ok: false, code: 'record-other-deployment', reason: `issued for prefix ${JSON.stringify(r.prefix)} and CIDR ${r.cidr}, `
        + `this deployment is ${JSON.stringify(o.prefix)} ${o.cidr}` };
    }
    if (r.exp <= o.now) return { ok: false, code: 'record-expired', reason: `expired at ${new Date(r.exp).toISOString()}` };
    return { ok: true, record: r };
  } catch (err) {
    return { ok: false, code: 'record-invalid', reason: `unreadable (${(err as Error).message})` };
  }
}

/**
 * The record's fields WITHOUT checking the signature (what a member reads from its own record,
 * e.g. when it expires); undefined when malformed. Never trust it for a decision.
 */
export function readMembershipRecordUnverified(text: unknown): MembershipRecord | undefined {
  try {
    const parts = split(text);
    if (!parts) return undefined;
    const r = parseBody(JSON.parse(parts.body.toString('utf8')));
    return typeof r === 'string' ? undefined : r;
  } catch {
    return undefined;
  }
}
