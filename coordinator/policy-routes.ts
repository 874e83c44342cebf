/**
 * Admin routes of the access policy (issue 10): set, get, clear, check. The policy itself is
 * evaluated by policy/ (pure); here it is stored (`P:policy`, canonical text, one Lua script
 * that also bumps the change feed and publishes `policy-changed`) and explained.
 *
 * `PUT /v1/policy` reads its body as text, so a refusal names the line and column of the file
 * the admin sent and a key given twice is refused (a parsed body would silently keep the last).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '../common';
import { ALLOWED_NO_POLICY, DENIED, formatPolicy, formatPortSpec, formatSelector, parsePolicy, PolicyError, unknownTags,
  type FlowProto, type Policy } from '../policy';
import { MAX_POLICY_BYTES, NO_POLICY_NOTE } from './constants';
import { BadRequestError, CoordinatorError, NotFoundError } from './errors';
import type { PeerMapCache } from './peer-map-cache';
import type { RedisRegistry } from './redis-store';
import * as S from './schemas';
import type { TokenStore } from './token-store';
import type { PolicyCheckRequest, PolicyCheckResponse, PolicySetResponse, PolicyView } from './types';

export interface PolicyRouteDeps {
  registry: RedisRegistry;
  tokens: TokenStore;
  peerMap: PeerMapCache;
  log: Logger;
  admin: (req: FastifyRequest) => Promise<void>;
}

/** 400 invalid-policy: the PolicyError's reason with where it is. */
export class InvalidPolicyError extends CoordinatorError {
  override name = 'InvalidPolicyError';
  constructor(readonly policyError: PolicyError) {
    super('invalid-policy', `policy refused, nothing changed: ${policyError.message}`, 400);
  }
}

function rulesNote(n: number): string {
  return `${n} rule${n === 1 ? '' : 's'}: a rule lets its "from" open flows to its "to" on its ports (replies come back); `
    + 'what no rule allows is denied';
}

function ruleText(p: Policy, i: number): string {
  const r = p.rules[i];
  return JSON.stringify({ from: r.from.map(formatSelector), to: r.to.map(formatSelector), ports: r.ports.map(formatPortSpec) });
}

/** `tcp/N`, `udp/N` or `icmp` → what canOpen takes. */
function parseFlowPort(s: string): { proto: FlowProto; port: number } {
  if (s === 'icmp') return { proto: 'icmp', port: 0 };
  const m = /^(tcp|udp)\/([1-9][0-9]{0,4})$/.exec(s);
  const port = m ? Number(m[2]) : 0;
  if (!m || port > 65535) throw new BadRequestError('invalid-port', `port ${JSON.stringify(s)}: expected tcp/N, udp/N (N 1-65535) or icmp`);
  return { proto: m[1] as 'tcp' | 'udp', port };
}

export function registerPolicyRoutes(app: FastifyInstance, d: PolicyRouteDeps): void {
  /** Tags some member or usable token carries now. */
  const knownTags = async (): Promise<Set<string>> => {
    await d.peerMap.sync(await d.registry.version());
    const known = d.peerMap.tagsInUse();
    for (const t of await d.tokens.list()) if (t.state === 'valid') for (const tag of t.tags) known.add(tag);
    return known;
  };

  app.register(async (scope) => {
    // The body as text (see the file comment); still only application/json.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: MAX_POLICY_BYTES },
      (_req, body, done) => done(null, body));
    scope.put('/v1/policy', { preValidation: d.admin, bodyLimit: MAX_POLICY_BYTES }, async (req): Promise<PolicySetResponse> => {
      const raw = typeof req.body === 'string' ? req.body : '';
      // The text of the file, or the same as a JSON string.
      let text = raw;
      if (raw.trimStart().startsWith('"')) {
        try {
          const v = JSON.parse(raw) as unknown;
          if (typeof v === 'string') text = v;
        } catch { /* parsePolicy says what is wrong */ }
      }
      let policy: Policy;
      try {
        policy = parsePolicy(text);
      } catch (err) {
        if (err instanceof PolicyError) throw new InvalidPolicyError(err);
        throw err;
      }
      const r = await d.registry.setPolicy(formatPolicy(policy));
      const unknown = unknownTags(policy, await knownTags());
      d.log.info({ rules: policy.rules.length, version: r.version, changed: r.changed }, r.changed ? 'policy set by admin' : 'policy set by admin: unchanged');
      if (unknown.length) d.log.warn({ unknownTags: unknown }, 'the policy names tags no member or token carries');
      return {
        ok: true, changed: r.changed, version: r.version, rules: policy.rules.length, unknownTags: unknown,
        warnings: unknown.map((t) => `tag:${t} is carried by no member and no valid token (allowed: members may join with it later)`),
      };
    });
  });

  app.delete('/v1/policy', { preValidation: d.admin }, async () => {
    const r = await d.registry.setPolicy(null);
    d.log.info({ version: r.version, changed: r.changed }, `policy cleared by admin: ${NO_POLICY_NOTE}`);
    return { ok: true, changed: r.changed, version: r.version, note: NO_POLICY_NOTE };
  });

  app.get('/v1/policy', { preValidation: d.admin }, async (): Promise<PolicyView> => {
    const text = await d.registry.policyText();
    if (text === null) return { policy: null, text: null, note: NO_POLICY_NOTE, unknownTags: [] };
    let policy: Policy;
    try {
      policy = parsePolicy(text);
    } catch (err) {
      return { policy: null, text, note: `the stored policy does not parse (${(err as Error).message}): no member reaches another; set it again`, unknownTags: [] };
    }
    return { policy: JSON.parse(formatPolicy(policy)) as PolicyView['policy'], text, note: rulesNote(policy.rules.length),
      unknownTags: unknownTags(policy, await knownTags()) };
  });

  app.post<{ Body: PolicyCheckRequest }>('/v1/policy/check', { schema: { body: S.policyCheckBody }, preValidation: d.admin },
    async (req): Promise<PolicyCheckResponse> => {
      const { proto, port } = parseFlowPort(req.body.port);
      const [fromVip, toVip] = await Promise.all([d.registry.resolveAny(req.body.from), d.registry.resolveAny(req.body.to)]);
      if (!fromVip) throw new NotFoundError(`from: member ${JSON.stringify(req.body.from)} (no vip, original IP or hostname)`);
      if (!toVip) throw new NotFoundError(`to: member ${JSON.stringify(req.body.to)} (no vip, original IP or hostname)`);
      await d.peerMap.sync(await d.registry.version());
      const from = d.peerMap.member(fromVip);
      const to = d.peerMap.member(toVip);
      if (!from) throw new NotFoundError(`from: member ${JSON.stringify(req.body.from)}`);
      if (!to) throw new NotFoundError(`to: member ${JSON.stringify(req.body.to)}`);
      const { policy } = d.peerMap.policyNow;
      const i = policy.canOpen(from.tags, to.tags, proto, port);
      const side = (m: typeof from) => ({ vip: m.vip, hostname: m.hostname, tags: [...m.tags] });
      const flow = `${from.hostname} (${from.vip}) → ${to.hostname} (${to.vip}) ${req.body.port}`;
      const base = { from: side(from), to: side(to), fromTags: [...from.tags], toTags: [...to.tags] };
      if (i === ALLOWED_NO_POLICY) return { ...base, allowed: true, noPolicy: true, reason: `${flow}: allowed (${NO_POLICY_NOTE})` };
      if (i === DENIED) {
        return { ...base, allowed: false, noPolicy: false,
          reason: `${flow}: denied: no rule lets ${from.tags.length ? from.tags.map((t) => 'tag:' + t).join(',') : 'an untagged member'} open it` };
      }
      const text = ruleText(policy.policy!, i);
      return { ...base, allowed: true, noPolicy: false, rule: i, ruleText: text, reason: `${flow}: allowed by rule ${i}: ${text}` };
    });
}
