/**
 * Membership records over the API (docs/SECURITY.md "Membership records"; docs/OPERATIONS.md
 * "When Redis loses data"):
 *
 *   POST /v1/reassert  {publicKey, challengeId, proof, record}: a member Redis no longer knows
 *                      restores the identity its record names (same vip, original IP, hostname,
 *                      tags); answered like a join (signed, with a fresh record).
 *   GET  /v1/record    (member session) a fresh record of the caller's identity as Redis holds it.
 *
 * The record is checked first (signature by this deployment's signing key, prefix and CIDR,
 * expiry, strict fields: never an exception), then the key proof over a fresh challenge
 * (context 'reassert', so a join proof cannot be replayed here), then the registry's rules
 * (REASSERT_LUA: removals, holders).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { KeyObject } from 'node:crypto';
import { redactKey, type Logger } from '../common';
import { verifyKeyProof } from '../protocol';
import { staticOriginalIpRefusal } from './claim-rules';
import { BadRequestError, CoordinatorError, JoinRefusedError, NotFoundError } from './errors';
import { offsetOf, type VipPool } from './ipam';
import { issueMembershipRecord, verifyMembershipRecord } from './membership-record';
import type { JoinCounters } from './metrics';
import type { PeerMapCache } from './peer-map-cache';
import type { JoinedRecord, RedisRegistry } from './redis-store';
import * as S from './schemas';
import { hashSecret, newSecret, SESSION_TOKEN_PREFIX } from './token-rules';
import type { JoinResponse, RecordResponse, ReassertRequest } from './types';

/** Issues and checks the deployment's membership records. */
export class RecordIssuer {
  private readonly publicKey: KeyObject;

  constructor(private readonly o: { signingKey: KeyObject; registry: RedisRegistry; prefix: string; cidr: VipPool; ttlMs: number;
    now: () => number; publicKey: KeyObject }) {
    this.publicKey = o.publicKey;
  }

  /** A fresh record of the member at `vip` as Redis holds it now; undefined when there is none. */
  async issue(vip: string): Promise<RecordResponse | undefined> {
    const r = this.o.registry;
    const [n, generation] = await Promise.all([r.getNode(vip), r.redis.hget(r.keys.deployment, 'generation')]);
    if (!n) return undefined;
    return this.issueJoined(vip, { ...n, generation: generation ?? r.generation ?? 'none' });
  }

  /** A fresh record of the member a join just wrote (its script's answer: the same fields, no read). */
  issueJoined(vip: string, n: JoinedRecord): RecordResponse {
    const iat = this.o.now();
    const exp = iat + this.o.ttlMs;
    const record = issueMembershipRecord(this.o.signingKey, {
      v: 1, prefix: this.o.prefix, cidr: this.o.cidr.text, pub: n.publicKey, vip, orig: n.originalIp, hostname: n.hostname,
      tags: [...n.tags].sort(), cidrs: [...n.originalCidrs].sort(), ephemeral: n.ephemeral, iat, exp, gen: n.generation,
    });
    return { record, recordExpiresAt: exp };
  }

  verify(text: string) {
    return verifyMembershipRecord(this.publicKey, text, { now: this.o.now(), prefix: this.o.prefix, cidr: this.o.cidr.text });
  }
}

export interface ReassertRouteDeps {
  registry: RedisRegistry;
  peerMap: PeerMapCache;
  log: Logger;
  cidr: VipPool;
  sessionTtlMs: number;
  /** undefined: no signing key, POST /v1/reassert answers 501. */
  records?: RecordIssuer;
  joins?: JoinCounters;
  /** Route config for the per-source limit (the join limit). */
  limit: object;
  /** The member-session check (api.ts); sets the caller's vip, read by `vipOf`. */
  member: (req: FastifyRequest) => Promise<void>;
  vipOf: (req: FastifyRequest) => string;
}

export function registerReassertRoutes(app: FastifyInstance, d: ReassertRouteDeps): void {
  const unavailable = () => new CoordinatorError('reassert-unavailable',
    'this coordinator has no --signing-key, so it issues and checks no membership records', 501);

  app.post<{ Body: ReassertRequest }>('/v1/reassert', { schema: { body: S.reassertBody }, config: d.limit }, async (req): Promise<JoinResponse> => {
    if (!d.records) throw unavailable();
    const b = req.body;
    const check = d.records.verify(b.record);
    if (!check.ok) throw new JoinRefusedError(check.code, check.reason);
    const rec = check.record;
    if (rec.pub !== b.publicKey) throw new JoinRefusedError('record-invalid', 'the record is for another public key');
    if (offsetOf(d.cidr, rec.vip) < 0) throw new JoinRefusedError('record-invalid', `${rec.vip} is not a usable address of ${d.cidr.text}`);
    const refusal = staticOriginalIpRefusal(rec.orig, d.cidr);
    if (refusal) throw new BadRequestError(refusal.code, refusal.message);
    const challenge = await d.registry.getChallenge(b.challengeId);
    if (!challenge) throw new CoordinatorError('challenge-unknown', 'challenge unknown, expired or already used: fetch a new one from GET /v1/challenge', 401);
    if (!verifyKeyProof(challenge, Buffer.from(b.publicKey, 'base64'), 'reassert', Buffer.from(b.proof, 'base64'))) {
      throw new CoordinatorError('bad-proof', 'proof of key possession does not verify', 401);
    }
    const sessionToken = newSecret(SESSION_TOKEN_PREFIX);
    const r = await d.registry.reassert({
      publicKey: rec.pub, vip: rec.vip, originalIp: rec.orig, hostname: rec.hostname, tags: rec.tags, originalCidrs: rec.cidrs,
      ephemeral: rec.ephemeral, issuedAt: rec.iat, generation: rec.gen, challengeId: b.challengeId,
      sessionTokenHash: hashSecret(sessionToken), sessionTtlMs: d.sessionTtlMs,
    });
    d.log.info({ vip: r.vip, peer: redactKey(rec.pub), restored: r.restored, originalIp: rec.orig, hostname: rec.hostname, source: req.ip },
      r.restored ? 'member re-asserted its record: restored' : 'member re-asserted its record: already known');
    if (d.joins) d.joins[r.restored ? 'reasserted' : 'rejoined']++;
    const snap = await d.peerMap.full(r.vip, r.version);
    const fresh = await d.records.issue(r.vip);
    return { vip: r.vip, cidr: d.cidr.text, sessionToken, peers: snap.peers, version: snap.version, ...fresh };
  });

  app.get('/v1/record', { preValidation: d.member }, async (req): Promise<RecordResponse> => {
    if (!d.records) throw unavailable();
    const vip = d.vipOf(req);
    const r = await d.records.issue(vip);
    if (!r) throw new NotFoundError(`member ${vip}`);
    return r;
  });
}
