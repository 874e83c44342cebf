/**
 * Gateway mode (`isthmus mapper --gateway`, docs/GATEWAY.md): the proxies act for proxy
 * users, and a gateway dials for a user only what BOTH may open under the access policy:
 *
 *   policy.canOpen(user.tags,    target.tags, 'tcp', port) >= 0   the user's tags as the source
 *   policy.canOpen(gateway.tags, target.tags, 'tcp', port) >= 0   what the gateway member may reach
 *
 * checked before dialing. The target must be a member (a virtual IP nobody holds is refused);
 * the gateway's own tags are its member record's, found through the local agent's virtual IP
 * (`selfVip`). The policy is `P:policy` (policy/ parses it), re-read on `policy-changed` and
 * at most every `policyMaxAgeMs` otherwise; no policy: everyone reaches everyone, as for
 * members; a policy that does not parse: nothing is allowed (fails closed, as the coordinator).
 */
import { EventType, redisKeys, DEFAULT_PREFIX, type ClusterEvent, type Logger, silentLogger } from '../common';
import { compilePolicy, parsePolicy, type CompiledPolicy } from '../policy';
import type { MemberDirectory, MapEntry } from './directory';
import type { ProxyUser } from './proxy-users';

export interface GatewayAccessOptions {
  /** GET of the policy text (`P:policy`); null: no policy */
  loadPolicy(): Promise<string | null>;
  directory: MemberDirectory;
  /** The gateway member's virtual IP (from its agent), null while unknown. */
  selfVip(): Promise<string | null>;
  /** @default 1000 */
  policyMaxAgeMs?: number;
  logger?: Logger;
}

export type AccessRefusal = { why: 'policy' | 'unavailable' | 'not-allowed'; reason: string };

export class GatewayAccess {
  private policy: { text: string | null; compiled: CompiledPolicy; at: number } | undefined;
  private loading: Promise<CompiledPolicy> | undefined;
  private readonly maxAge: number;
  private readonly log: Logger;
  /** bumped by policy-changed: a load that started before it is not kept */
  private gen = 0;

  constructor(private readonly o: GatewayAccessOptions) {
    this.maxAge = o.policyMaxAgeMs ?? 1000;
    this.log = o.logger ?? silentLogger();
  }

  /** Feed `P:events` here: `policy-changed` (or a resubscribe, undefined) drops the cached policy. */
  onClusterEvent(e: ClusterEvent | undefined): void {
    if (e === undefined || e.type === EventType.PolicyChanged) {
      this.gen++;
      this.policy = undefined;
    }
  }

  private async compiled(): Promise<CompiledPolicy> {
    const p = this.policy;
    if (p && Date.now() - p.at < this.maxAge) return p.compiled;
    this.loading ??= (async () => {
      const gen = this.gen;
      try {
        const text = await this.o.loadPolicy();
        let compiled: CompiledPolicy;
        if (p && p.text === text) compiled = p.compiled;
        else {
          try {
            compiled = compilePolicy(text === null ? null : parsePolicy(text));
          } catch (err) {
            this.log.warn({ err: (err as Error).message }, 'the policy in Redis does not parse: the gateway allows nothing');
            compiled = compilePolicy({ rules: [] });
          }
        }
        if (gen === this.gen) this.policy = { text, compiled, at: Date.now() };
        return compiled;
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  /**
   * May this gateway open a TCP connection to `ip`:`port` for `user`? `entry` is the target
   * member if the caller already looked it up. Null: allowed.
   */
  async check(user: ProxyUser, ip: string, port: number, entry: MapEntry | null): Promise<AccessRefusal | null> {
    let policy: CompiledPolicy;
    let target: MapEntry | null;
    let self: MapEntry | null;
    try {
      const selfVip = await this.o.selfVip();
      if (!selfVip) return { why: 'unavailable', reason: 'this gateway does not know its own member identity yet (is its agent up?)' };
      [policy, target, self] = await Promise.all([this.compiled(), entry ? Promise.resolve(entry) : this.o.directory.byVirtualIp(ip), this.o.directory.byVirtualIp(selfVip)]);
      if (!self) return { why: 'unavailable', reason: `this gateway's member record (${selfVip}) is not in the directory` };
    } catch (err) {
      return { why: 'unavailable', reason: `policy or directory unavailable: ${(err as Error).message}` };
    }
    if (!target) return { why: 'not-allowed', reason: `${ip} is not a member: a gateway dials members only` };
    if (policy.canOpen(user.tags, target.tags, 'tcp', port) < 0) {
      return { why: 'policy', reason: `the policy does not let proxy user ${user.name} (tags ${user.tags.join(',') || 'none'}) open tcp/${port} to ${target.hostname ?? target.originalIp}` };
    }
    if (policy.canOpen(self.tags, target.tags, 'tcp', port) < 0) {
      return { why: 'policy', reason: `the policy does not let this gateway (tags ${self.tags.join(',') || 'none'}) open tcp/${port} to ${target.hostname ?? target.originalIp}` };
    }
    return null;
  }
}

/** The policy loader over a Redis client (`P:policy`). */
export function redisPolicyLoader(redis: { get(key: string): Promise<string | null> }, prefix = DEFAULT_PREFIX): () => Promise<string | null> {
  const key = redisKeys(prefix).policy;
  return () => redis.get(key);
}
