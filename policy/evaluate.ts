/**
 * A policy compiled for the three places that enforce it:
 *
 *   connected(a, b)        may a and b exchange packets at all (either may open to the other)?
 *                          The coordinator scopes peer maps with it, the relay drops frames with it.
 *   inboundFrom(local, p)  what may peer p open towards the local member? The agent's packet
 *                          filter keeps the PortSet per peer (node-agent/flow-filter.ts).
 *   canOpen(f, t, proto, port)  may f open this flow to t, and by which rule (for explanations)?
 *
 * Scale: 100,000 members but few distinct tag sets. A member's tags are reduced to its tag
 * class: which rules' `from` and `to` it matches. Members in one class are indistinguishable to
 * the policy, so every answer is memoised per class (pair) and computed once (tag arrays are
 * treated as immutable: a member whose tags change gets a new array). Tags the policy
 * does not name are ignored before anything is keyed, so they cannot multiply classes.
 * With no policy (null) every member reaches every member: connected is true, inboundFrom is
 * PortSet.ALL and canOpen answers ALLOWED_NO_POLICY.
 */
import { PortSet } from './port-set';
import { formatPortSpec } from './parse';
import type { FlowProto, Policy, PortSpec, Selector } from './types';

/** canOpen: no rule allows the flow. */
export const DENIED = -1;
/** canOpen: allowed because no policy is set. ≥ 0, so `canOpen(...) >= 0` always means allowed. */
export const ALLOWED_NO_POLICY = 0x7fffffff;

/** Most remembered tag-set keys before the key cache starts over (classes themselves stay). */
const MAX_KEYS = 65536;

interface TagClass {
  id: number;
  /** Bit i set: rule i's `from` matches this class. */
  from: Uint32Array;
  /** Bit i set: rule i's `to` matches this class. */
  to: Uint32Array;
  connected: (boolean | undefined)[];
  inbound: (PortSet | undefined)[];
}

export class CompiledPolicy {
  private readonly words: number;
  private readonly named = new Set<string>();
  private readonly byArray = new WeakMap<readonly string[], TagClass>();
  private readonly byKey = new Map<string, TagClass>();
  private readonly bySignature = new Map<string, TagClass>();
  private readonly sets = new Map<string, PortSet>();
  private readonly classes: TagClass[] = [];

  constructor(readonly policy: Policy | null) {
    this.words = policy ? Math.ceil(policy.rules.length / 32) : 0;
    for (const r of policy?.rules ?? []) for (const s of [...r.from, ...r.to]) if (s.kind === 'tag') this.named.add(s.tag);
  }

  get hasPolicy(): boolean {
    return this.policy !== null;
  }

  /**
   * The first rule (index into policy.rules) that lets a member with `fromTags` open a flow to
   * one with `toTags` on `proto`/`port` (port ignored for icmp and other), DENIED (-1) if none,
   * ALLOWED_NO_POLICY without a policy.
   */
  canOpen(fromTags: readonly string[], toTags: readonly string[], proto: FlowProto, port: number): number {
    if (!this.policy) return ALLOWED_NO_POLICY;
    const a = this.classOf(fromTags);
    const b = this.classOf(toTags);
    for (let w = 0; w < this.words; w++) {
      let m = a.from[w] & b.to[w];
      while (m !== 0) {
        const bit = 31 - Math.clz32(m & -m);
        m &= m - 1;
        const i = w * 32 + bit;
        if (specsAllow(this.policy.rules[i].ports, proto, port)) return i;
      }
    }
    return DENIED;
  }

  /** May members with these tags exchange packets in either direction? (Symmetric.) */
  connected(aTags: readonly string[], bTags: readonly string[]): boolean {
    if (!this.policy) return true;
    const a = this.classOf(aTags);
    const b = this.classOf(bTags);
    let c = a.connected[b.id];
    if (c === undefined) {
      c = false;
      for (let w = 0; w < this.words && !c; w++) c = ((a.from[w] & b.to[w]) | (b.from[w] & a.to[w])) !== 0;
      a.connected[b.id] = c;
      b.connected[a.id] = c;
    }
    return c;
  }

  /**
   * What a peer with `peerTags` may open towards the member with `localTags`: the union of the
   * ports of every rule from the peer to the local member. Equal sets are the same object.
   */
  inboundFrom(localTags: readonly string[], peerTags: readonly string[]): PortSet {
    if (!this.policy) return PortSet.ALL;
    const l = this.classOf(localTags);
    const p = this.classOf(peerTags);
    let s = l.inbound[p.id];
    if (s === undefined) {
      const specs: PortSpec[] = [];
      for (let w = 0; w < this.words; w++) {
        let m = p.from[w] & l.to[w];
        while (m !== 0) {
          const bit = 31 - Math.clz32(m & -m);
          m &= m - 1;
          specs.push(...this.policy.rules[w * 32 + bit].ports);
        }
      }
      s = this.intern(PortSet.of(specs));
      l.inbound[p.id] = s;
    }
    return s;
  }

  /**
   * The tag class of `tags`: members with equal ids get equal answers from every method, so a
   * caller scoping 100,000 members can group them by id and ask once per pair of groups.
   */
  classId(tags: readonly string[]): number {
    return this.policy ? this.classOf(tags).id : 0;
  }

  private classOf(tags: readonly string[]): TagClass {
    let c = this.byArray.get(tags);
    if (c) return c;
    const key = this.relevantKey(tags);
    c = this.byKey.get(key);
    if (!c) {
      c = this.classify(key === '' ? [] : key.split('\n'));
      if (this.byKey.size >= MAX_KEYS) this.byKey.clear();
      this.byKey.set(key, c);
    }
    this.byArray.set(tags, c);
    return c;
  }

  /** Only the tags the policy names, sorted and unique: other tags cannot change an answer. */
  private relevantKey(tags: readonly string[]): string {
    const rel: string[] = [];
    for (const t of tags) if (this.named.has(t) && !rel.includes(t)) rel.push(t);
    return rel.sort().join('\n');
  }

  private classify(tags: string[]): TagClass {
    const has = new Set(tags);
    const matches = (sels: Selector[]): boolean => sels.some((s) => s.kind === 'any' || has.has(s.tag));
    const from = new Uint32Array(this.words);
    const to = new Uint32Array(this.words);
    this.policy!.rules.forEach((r, i) => {
      if (matches(r.from)) from[i >>> 5] |= 1 << (i & 31);
      if (matches(r.to)) to[i >>> 5] |= 1 << (i & 31);
    });
    const sig = `${from.join(',')}|${to.join(',')}`;
    let c = this.bySignature.get(sig);
    if (!c) {
      c = { id: this.classes.length, from, to, connected: [], inbound: [] };
      this.classes.push(c);
      this.bySignature.set(sig, c);
    }
    return c;
  }

  private intern(s: PortSet): PortSet {
    const key = s.specs.map(formatPortSpec).join(',');
    const seen = this.sets.get(key);
    if (seen) return seen;
    this.sets.set(key, s);
    return s;
  }
}

/** Compile a parsed policy, or null for "no policy: everyone reaches everyone". */
export function compilePolicy(policy: Policy | null): CompiledPolicy {
  return new CompiledPolicy(policy);
}

function specsAllow(specs: readonly PortSpec[], proto: FlowProto, port: number): boolean {
  for (const s of specs) {
    if (s.proto === 'any') return true;
    if (s.proto === 'icmp') {
      if (proto === 'icmp') return true;
    } else if (s.proto === proto && port >= s.first && port <= s.last) {
      return true;
    }
  }
  return false;
}
