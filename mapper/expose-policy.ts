/**
 * The access policy as an exposing gateway applies it: a flow from a proxy user through this
 * gateway to a member's TCP port is allowed only if BOTH the user's tags and the gateway's own
 * tags may open it (policy/ `canOpen`), as the proxy fronts decide for a dial. The policy text
 * comes from Redis (`P:policy`), read at most once per `maxAgeMs` and compiled once per text; a
 * text that does not parse fails closed (nothing is allowed), as it does at the coordinator.
 */
import { compilePolicy, parsePolicy, DENIED, type CompiledPolicy } from '../policy';

export type PolicyVerdict = { ok: true } | { ok: false; reason: string };

export class PolicyCache {
  private text: string | null | undefined;
  private compiled: CompiledPolicy | null = null;
  private at = -Infinity;

  constructor(private readonly read: () => Promise<string | null>, private readonly maxAgeMs = 1000) {}

  /** The compiled policy, or null if the stored text does not parse (fail closed). */
  async get(now = Date.now()): Promise<CompiledPolicy | null> {
    if (now - this.at < this.maxAgeMs && this.text !== undefined) return this.compiled;
    const text = await this.read();
    this.at = now;
    if (text !== this.text) {
      this.text = text;
      try {
        this.compiled = compilePolicy(text === null ? null : parsePolicy(text));
      } catch {
        this.compiled = null;
      }
    }
    return this.compiled;
  }
}

/** May a user with `userTags`, through a gateway with `gatewayTags`, open TCP `port` on a member with `memberTags`? */
export function judgeExposure(p: CompiledPolicy | null, userTags: readonly string[], gatewayTags: readonly string[],
  memberTags: readonly string[], port: number): PolicyVerdict {
  if (!p) return { ok: false, reason: 'the policy stored in Redis does not parse: nothing is allowed until an admin fixes it' };
  const tags = (t: readonly string[]) => (t.length ? t.map((x) => `tag:${x}`).join(',') : 'no tags');
  if (p.canOpen(userTags, memberTags, 'tcp', port) === DENIED) {
    return { ok: false, reason: `policy: the user (${tags(userTags)}) may not open tcp/${port} to this member (${tags(memberTags)})` };
  }
  if (p.canOpen(gatewayTags, memberTags, 'tcp', port) === DENIED) {
    return { ok: false, reason: `policy: this gateway (${tags(gatewayTags)}) may not open tcp/${port} to this member (${tags(memberTags)})` };
  }
  return { ok: true };
}
