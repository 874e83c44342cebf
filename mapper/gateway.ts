/**
 * The one policy check of a gateway (docs/GATEWAY.md): the proxies (`isthmus mapper
 * --gateway`) and port exposure (expose.ts) act for proxy users, and a gateway opens for a user
 * only what BOTH may open under the access policy:
 *
 *   policy.canOpen(user.tags,    target.tags, 'tcp', port) >= 0   the user's tags as the source
 *   policy.canOpen(gateway.tags, target.tags, 'tcp', port) >= 0   what the gateway member may reach
 *
 * checked before each dial (a proxied connection, a connection to an exposed port) and before
 * an exposure is made. The target must be a member (a virtual IP nobody holds is refused); the
 * gateway's own tags are its member record's, found through its virtual IP (`selfVip`: the
 * local agent's in gateway mode; service.ts picks the one source). The policy is `P:policy`
 * (policy/ parses it), re-read on `policy-changed` (or a resubscribe) and at most every
 * `policyMaxAgeMs` otherwise; no policy: everyone reaches everyone, as for members; a policy
 * that does not parse: nothing is allowed (fails closed, as the coordinator), and the refusal
 * says so.
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

/** This gateway as a member: its virtual IP and member record; or why it is not known. */
export type GatewayIdentity =
  | { ok: true; vip: string; entry: MapEntry }
  | { ok: false; why: 'unknown' | 'not-member' | 'unavailable'; reason: string };

/** A compiled policy; `broken`: the stored text does not parse (and `compiled` allows nothing). */
interface PolicyState {
  text: string | null;
  compiled: CompiledPolicy;
  broken: boolean;
  at: number;
}

const DENY_ALL = compilePolicy({ rules: [] });

const tagList = (tags: readonly string[]) => tags.join(',') || 'none';

export class GatewayAccess {
  private policy: PolicyState | undefined;
  private loading: Promise<PolicyState> | undefined;
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

  private async current(): Promise<PolicyState> {
    const p = this.policy;
    if (p && Date.now() - p.at < this.maxAge) return p;
    this.loading ??= (async () => {
      const gen = this.gen;
      try {
        const text = await this.o.loadPolicy();
        let next: PolicyState;
        if (p && p.text === text) next = { ...p, at: Date.now() };
        else {
          try {
            next = { text, compiled: compilePolicy(text === null ? null : parsePolicy(text)), broken: false, at: Date.now() };
          } catch (err) {
            this.log.warn({ err: (err as Error).message }, 'the policy in Redis does not parse: the gateway allows nothing');
            next = { text, compiled: DENY_ALL, broken: true, at: Date.now() };
          }
        }
        if (gen === this.gen) this.policy = next;
        return next;
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  /** Who this gateway is: its virtual IP and member record (its tags count for the policy). */
  async identity(): Promise<GatewayIdentity> {
    let vip: string | null;
    try { vip = await this.o.selfVip(); } catch (err) { return { ok: false, why: 'unknown', reason: `this gateway cannot tell its own virtual IP: ${(err as Error).message}` }; }
    if (!vip) return { ok: false, why: 'unknown', reason: 'this gateway does not know its own member identity yet (is its agent up?)' };
    let entry: MapEntry | null;
    try { entry = await this.o.directory.byVirtualIp(vip); } catch (err) { return { ok: false, why: 'unavailable', reason: `directory unavailable: ${(err as Error).message}` }; }
    if (!entry) return { ok: false, why: 'not-member', reason: `this gateway's member record (${vip}) is not in the directory` };
    return { ok: true, vip, entry };
  }

  /**
   * The verdict for `user` opening tcp/`port` on `target`: through this gateway (`self`, its
   * member record), or, with `self` null, the user's side alone (who may know where a target
   * is exposed). Null: allowed.
   */
  async judge(user: ProxyUser, self: MapEntry | null, target: MapEntry, port: number): Promise<AccessRefusal | null> {
    let p: PolicyState;
    try { p = await this.current(); } catch (err) { return { why: 'unavailable', reason: `policy unavailable: ${(err as Error).message}` }; }
    if (p.broken) return { why: 'policy', reason: 'the policy stored in Redis does not parse: nothing is allowed until an admin fixes it' };
    const to = target.hostname ?? target.originalIp;
    if (p.compiled.canOpen(user.tags, target.tags, 'tcp', port) < 0) {
      return { why: 'policy', reason: `the policy does not let proxy user ${user.name} (tags ${tagList(user.tags)}) open tcp/${port} to ${to} (tags ${tagList(target.tags)})` };
    }
    if (self && p.compiled.canOpen(self.tags, target.tags, 'tcp', port) < 0) {
      return { why: 'policy', reason: `the policy does not let this gateway (tags ${tagList(self.tags)}) open tcp/${port} to ${to} (tags ${tagList(target.tags)})` };
    }
    return null;
  }

  /**
   * May this gateway open a TCP connection to `ip`:`port` for `user`? `entry` is the target
   * member if the caller already looked it up. Null: allowed.
   */
  async check(user: ProxyUser, ip: string, port: number, entry: MapEntry | null): Promise<AccessRefusal | null> {
    let target: MapEntry | null;
    let self: GatewayIdentity;
    try {
      [self, target] = await Promise.all([this.identity(), entry ? Promise.resolve(entry) : this.o.directory.byVirtualIp(ip)]);
    } catch (err) {
      return { why: 'unavailable', reason: `directory unavailable: ${(err as Error).message}` };
    }
    if (!self.ok) return { why: 'unavailable', reason: self.reason };
    if (!target) return { why: 'not-allowed', reason: `${ip} is not a member: a gateway dials members only` };
    return this.judge(user, self.entry, target, port);
  }
}

/** The policy loader over a Redis client (`P:policy`). */
export function redisPolicyLoader(redis: { get(key: string): Promise<string | null> }, prefix = DEFAULT_PREFIX): () => Promise<string | null> {
  const key = redisKeys(prefix).policy;
  return () => redis.get(key);
}
