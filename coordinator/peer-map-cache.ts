/**
 * Each coordinator keeps the member registry and the policy in memory, brought up to date from
 * the change feed (`P:changes`, read atomically with the records it touches), and answers
 * every member with its own policy-scoped peer map: only the members it may exchange packets
 * with (in either direction), each with `inbound` (what that peer may open towards it).
 *
 * Deltas. A long-poll says `since=V`; the answer is the difference between what the member saw
 * at V and what it sees now. Feed entries carry the state before each change (a member's
 * previous tags, the previous policy text), so the view at V is known without keeping any
 * per-member state:
 *   - narrow (the policy and the member's own tags are the same as at V): only members the
 *     entries touch can differ: an add/update when it is visible now, a removal when it was
 *     visible then and is not now, nothing otherwise (a member whose view does not change is
 *     not answered: its poll keeps waiting);
 *   - wide (the policy or its own tags changed): members are grouped by tag set, and a group
 *     is sent (all added, updated or removed) only when its visibility or `inbound` differs.
 * Cost per change: one Redis read per coordinator shared by every waiter (single-flight), then
 * per waiter O(entries) (narrow) or O(tag sets + answer) (wide); policy answers are memoised by
 * tag class (policy/evaluate.ts), never evaluated per pair of members.
 */
import { compilePolicy, formatPortSpec, parsePolicy, type CompiledPolicy, type PortSet } from '../policy';
import { EventType, parseAddr, type Logger, silentLogger } from '../common';
import type { ChangeEntry, RedisRegistry } from './redis-store';
import type { Member, Peer, PeerChanges } from './types';

/** Feed entries kept in memory; older ones are read from the stream when a poll needs them. */
const LOG_MAX = 10_000;
/** Compiled policies kept (by text): the current one and recent previous ones. */
const COMPILED_MAX = 8;
/**
 * Shared deltas kept at one version (by class and since). Members that joined at different
 * versions each ask with their own `since`, and at idle nothing clears the memo: without a
 * bound it held one delta (and its serialised body, api.ts) per since, ~60 MB at 10k members.
 */
const DELTA_MEMO_MAX = 256;
/** And at most this many peers (upserts and removals) in them all (each answer's body is kept with it, api.ts). */
const DELTA_MEMO_PEERS = 20_000;
/** Peer objects kept per member (one per distinct `inbound` it is sent with). */
const PEERS_PER_MEMBER = 8;

interface Group {
  tags: readonly string[];
  vips: Set<string>;
}

function tagKey(tags: readonly string[]): string {
  return [...tags].sort().join('\n');
}

function byVip(a: Peer[]): Peer[] {
  return a.map((p) => [parseAddr(p.vip), p] as const).sort((x, y) => x[0] - y[0]).map((x) => x[1]);
}

export class PeerMapCache {
  private version = -1;
  private readonly members = new Map<string, Member>();
  private readonly groups = new Map<string, Group>();
  private readonly tagArrays = new Map<string, readonly string[]>();
  private policyText: string | null = null;
  private policy: CompiledPolicy = compilePolicy(null);
  private readonly compiled = new Map<string, CompiledPolicy>();
  /** Entries with versions in (logFrom, version]. */
  private log: ChangeEntry[] = [];
  private logFrom = 0;
  private inflight?: Promise<void>;
  /**
   * Scoped full maps by the receiver's tag class (policy.classId) under the current policy, with
   * the tags of one receiver of the class. A change drops only the classes that see a member it
   * touched (before or after), so the controllers' list an agent gets at join survives other agents' joins.
   */
  private readonly fullMemo = new Map<number, { tags: readonly string[]; list: Peer[] }>();
  private readonly inboundText = new WeakMap<PortSet, string[]>();
  /**
   * The Peer objects made of a member record (by its `inbound` array), so every list and delta
   * that sends it shares one object instead of a copy per answer (bench:scale at 10k members
   * held 25 copies per member). A changed member is a new record: its old Peers go with the old one.
   */
  private readonly peersOf = new WeakMap<Member, Peer[]>();
  /**
   * Narrow deltas at `version` by (receiver's tag class, since): members of one class that did
   * not change themselves get the same answer object (and api.ts serialises it once).
   */
  private readonly deltaMemo = new Map<string, PeerChanges>();
  private deltaMemoPeers = 0;
  private clearDeltaMemo(): void {
    this.deltaMemo.clear();
    this.deltaMemoPeers = 0;
  }

  /** Entries held by the shared-answer memos (tests). */
  get memoSizes(): { deltas: number; deltaPeers: number; fullMaps: number } {
    return { deltas: this.deltaMemo.size, deltaPeers: this.deltaMemoPeers, fullMaps: this.fullMemo.size };
  }
  /** Deltas computed / answered from deltaMemo (tests, bench). */
  readonly deltaStats = { computed: 0, shared: 0 };

  constructor(private readonly registry: RedisRegistry, private readonly log_: Logger = silentLogger()) {}

  /** The version the cache is at (-1 before the first read). */
  get at(): number {
    return this.version;
  }

  /** The policy the maps are scoped by, and its text (null: none). */
  get policyNow(): { policy: CompiledPolicy; text: string | null } {
    return { policy: this.policy, text: this.policyText };
  }

  /** Every tag some member carries now. */
  tagsInUse(): Set<string> {
    const out = new Set<string>();
    for (const g of this.groups.values()) for (const t of g.tags) out.add(t);
    return out;
  }

  /** A member's record as cached, if it exists. */
  member(vip: string): Member | undefined {
    return this.members.get(vip);
  }

  /** Bring the cache to a version ≥ `minVersion` if Redis has it (it may not: Redis went back). */
  async sync(minVersion = 0): Promise<void> {
    for (let round = 0; round < 2 && (this.version < 0 || this.version < minVersion); round++) {
      if (!this.inflight) this.inflight = this.refresh().finally(() => { this.inflight = undefined; });
      await this.inflight;
    }
  }

  /** The member's whole scoped map at a version ≥ minVersion (empty when it is not a member). */
  async full(vip: string, minVersion = 0): Promise<{ version: number; peers: Peer[] }> {
    await this.sync(minVersion);
    const me = this.members.get(vip);
    return { version: this.version, peers: me ? this.mapFor(me) : [] };
  }

  /**
   * What changed in the member's scoped map after `since`, at a version ≥ `want`; 'full' when
   * that cannot be told (since ahead of Redis or older than the kept feed, or unknown history).
   */
  async delta(vip: string, since: number, want = 0): Promise<PeerChanges | 'full'> {
    await this.sync(Math.max(since, want));
    if (since > this.version) return 'full';
    if (since === this.version) return { version: since, upserts: [], removals: [] };
    let older: ChangeEntry[] = [];
    if (since < this.logFrom) {
      const upTo = this.logFrom;
      const o = await this.registry.entriesBetween(since, upTo);
      if (!o || this.logFrom !== upTo) return 'full';
      older = o;
    }
    // Synchronous from here: the cache cannot move under us.
    const entries = older.length ? older.concat(this.log) : this.log.slice(this.firstAfter(since));
    const me = this.members.get(vip);
    if (!me) return 'full';
    return this.memoDiff(me, since, entries);
  }

  /** diff() of `me` over `entries` (the changes after `since`), shared through the bounded memo
   *  when the member is not among the changes and no policy change is in them: the answer then
   *  depends on its tag class, since and the version only (diff's narrow case). */
  private memoDiff(me: Member, since: number, entries: ChangeEntry[]): PeerChanges | 'full' {
    const shareable = this.shareable(me.vip, entries);
    const key = `${this.policy.classId(me.tags)}/${since}`;
    const memo = shareable ? this.deltaMemo.get(key) : undefined;
    if (memo && memo.version === this.version) {
      this.deltaStats.shared++;
      return memo;
    }
    const r = this.diff(me, entries);
    this.deltaStats.computed++;
    if (r !== 'full' && shareable) {
      const n = r.upserts.length + r.removals.length;
      if (this.deltaMemo.size >= DELTA_MEMO_MAX || this.deltaMemoPeers + n > DELTA_MEMO_PEERS) this.clearDeltaMemo();
      this.deltaMemo.set(key, r);
      this.deltaMemoPeers += n;
    }
    return r;
  }

  /**
   * Synchronous, at the version the cache is at now (peer-stream.ts, after sync): what changed
   * in the member's map after `since`, from the in-memory log only; 'full' when that cannot be
   * told from memory (since older than the log, ahead of the cache, or unknown history).
   */
  deltaNow(vip: string, since: number): PeerChanges | 'full' {
    if (since > this.version || since < this.logFrom) return 'full';
    if (since === this.version) return { version: since, upserts: [], removals: [] };
    const me = this.members.get(vip);
    if (!me) return 'full';
    return this.memoDiff(me, since, this.log.slice(this.firstAfter(since)));
  }

  /**
   * Synchronous: the members the in-memory log's entries after `since` are about, and whether a
   * policy change is among them (then every member's delta is its own); undefined when the log
   * no longer reaches back to `since`.
   */
  touchedSince(since: number): { vips: Set<string>; policy: boolean } | undefined {
    if (since < this.logFrom || since > this.version) return undefined;
    const vips = new Set<string>();
    let policy = false;
    for (let i = this.firstAfter(since); i < this.log.length; i++) {
      const e = this.log[i];
      if (e.type === EventType.PolicyChanged) policy = true; else vips.add(e.vip);
    }
    return { vips, policy };
  }

  /** No entry is about the member itself or the policy (so diff took its narrow path, member-independent). */
  private shareable(vip: string, entries: readonly ChangeEntry[]): boolean {
    for (const e of entries) if (e.type === EventType.PolicyChanged || e.vip === vip) return false;
    return true;
  }

  /** Index of the first log entry with a version above `v` (the log is in version order). */
  private firstAfter(v: number): number {
    let lo = 0;
    let hi = this.log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.log[mid].version > v) hi = mid; else lo = mid + 1;
    }
    return lo;
  }

  private diff(me: Member, entries: ChangeEntry[]): PeerChanges | 'full' {
    const first = new Map<string, ChangeEntry & { vip: string }>();
    let policyThen: string | null | undefined;
    for (const e of entries) {
      if (e.type === EventType.PolicyChanged) {
        if (policyThen === undefined) policyThen = e.prev;
      } else if (!first.has(e.vip)) {
        first.set(e.vip, e);
      }
    }
    const pNow = this.policy;
    const pThen = policyThen === undefined ? pNow : this.compile(policyThen);
    const myNow = me.tags;
    let myThen: readonly string[] = myNow;
    const mine = first.get(me.vip);
    if (mine && mine.type !== EventType.PolicyChanged) {
      // Joined after `since`, or a history without tags: its view then is unknown.
      if (mine.prevTags === null) return 'full';
      myThen = this.intern(mine.prevTags);
    }
    const wide = pThen !== pNow || tagKey(myThen) !== tagKey(myNow);
    const upserts: Peer[] = [];
    const removals: string[] = [];

    for (const [x, e] of first) {
      if (e.type === EventType.PolicyChanged) continue;
      const now = this.members.get(x);
      const nowVisible = now !== undefined && (x === me.vip || pNow.connected(myNow, now.tags));
      let thenVisible: boolean;
      if (e.type === EventType.NodeUp) thenVisible = false;
      else if (e.prevTags === null) thenVisible = true; // unknown: a removal is harmless
      else thenVisible = x === me.vip || pThen.connected(myThen, e.prevTags);
      if (nowVisible) upserts.push(this.entry(pNow, myNow, now));
      else if (thenVisible) removals.push(x);
    }

    if (wide) {
      // What to do with a tag set depends only on its classes under both policies.
      const memo = new Map<string, 'keep' | 'upsert' | 'remove'>();
      for (const g of this.groups.values()) {
        const classes = `${pThen.classId(g.tags)}/${pNow.classId(g.tags)}`;
        let act = memo.get(classes);
        if (act === undefined) {
          const thenC = pThen.connected(myThen, g.tags);
          const nowC = pNow.connected(myNow, g.tags);
          if (!nowC) act = thenC ? 'remove' : 'keep';
          else if (!thenC) act = 'upsert';
          else act = this.inboundOf(pThen.inboundFrom(myThen, g.tags)).join() === this.inboundOf(pNow.inboundFrom(myNow, g.tags)).join() ? 'keep' : 'upsert';
          memo.set(classes, act);
        }
        if (act === 'keep') continue;
        const nowC = act === 'upsert';
        for (const x of g.vips) {
          if (first.has(x) || x === me.vip) continue;
          if (nowC) upserts.push(this.entry(pNow, myNow, this.members.get(x)!));
          else removals.push(x);
        }
      }
      // Itself: always in its map; sent when what it "may open to itself" reads differently.
      if (!first.has(me.vip) && this.inboundOf(pThen.inboundFrom(myThen, myThen)).join() !== this.inboundOf(pNow.inboundFrom(myNow, myNow)).join()) {
        upserts.push(this.entry(pNow, myNow, me));
      }
    }
    return { version: this.version, upserts, removals };
  }

  /** The member's scoped map: every member of a connected tag set, and itself. Members of one
   *  tag class get the same list (but for themselves), so it is built once per class and version. */
  private mapFor(me: Member): Peer[] {
    const key = this.policy.classId(me.tags);
    let list = this.fullMemo.get(key)?.list;
    if (!list) {
      const out: Peer[] = [];
      for (const g of this.groups.values()) {
        if (!this.policy.connected(me.tags, g.tags)) continue;
        for (const x of g.vips) out.push(this.entry(this.policy, me.tags, this.members.get(x)!));
      }
      list = byVip(out);
      this.fullMemo.set(key, { tags: me.tags, list });
    }
    if (this.policy.connected(me.tags, me.tags)) return list;
    return byVip([...list, this.entry(this.policy, me.tags, me)]);
  }

  private entry(p: CompiledPolicy, receiverTags: readonly string[], m: Member): Peer {
    const inbound = this.inboundOf(p.inboundFrom(receiverTags, m.tags));
    let peers = this.peersOf.get(m);
    if (!peers) this.peersOf.set(m, peers = []);
    for (const x of peers) if (x.inbound === inbound) return x;
    // A literal with every field in one order (not a spread): every Peer shares one hidden class.
    // (Spreading records here gave each object a map of its own: ~70 MB of shapes at 10k members.)
    const peer: Peer = { vip: m.vip, originalIp: m.originalIp, publicKey: m.publicKey, hostname: m.hostname, tags: m.tags, inbound };
    if (peers.length < PEERS_PER_MEMBER) peers.push(peer);
    return peer;
  }

  private inboundOf(s: PortSet): string[] {
    let t = this.inboundText.get(s);
    if (!t) {
      t = s.specs.map(formatPortSpec);
      this.inboundText.set(s, t);
    }
    return t;
  }

  /** One shared array per tag set (policy answers are memoised by array). */
  private intern(tags: readonly string[]): readonly string[] {
    const key = tagKey(tags);
    const g = this.groups.get(key);
    if (g) return g.tags;
    let a = this.tagArrays.get(key);
    if (!a) {
      if (this.tagArrays.size >= 65536) this.tagArrays.clear();
      a = key === '' ? [] : key.split('\n');
      this.tagArrays.set(key, a);
    }
    return a;
  }

  private compile(text: string | null): CompiledPolicy {
    if (text === null) return this.compiled.get('') ?? this.remember('', compilePolicy(null));
    const seen = this.compiled.get(text);
    if (seen) return seen;
    let p: CompiledPolicy;
    try {
      p = compilePolicy(parsePolicy(text));
    } catch (err) {
      // Not written by a coordinator (they store only parsed text): fail closed.
      this.log_.error({ err: (err as Error).message }, 'the policy in Redis does not parse: no member reaches another until it is set again');
      p = compilePolicy({ rules: [] });
    }
    return this.remember(text, p);
  }

  private remember(key: string, p: CompiledPolicy): CompiledPolicy {
    if (this.compiled.size >= COMPILED_MAX) this.compiled.delete(this.compiled.keys().next().value!);
    this.compiled.set(key, p);
    return p;
  }

  private setPolicy(text: string | null): void {
    this.fullMemo.clear();
    this.policyText = text;
    this.policy = this.compile(text);
    // Keep the current one from being evicted first.
    this.compiled.delete(text ?? '');
    this.compiled.set(text ?? '', this.policy);
  }

  private setMember(m: Member): void {
    this.dropMember(m.vip);
    const key = tagKey(m.tags);
    let g = this.groups.get(key);
    if (!g) {
      g = { tags: this.tagArrays.get(key) ?? (key === '' ? [] : key.split('\n')), vips: new Set() };
      this.groups.set(key, g);
    }
    g.vips.add(m.vip);
    this.members.set(m.vip, { vip: m.vip, originalIp: m.originalIp, publicKey: m.publicKey, hostname: m.hostname, tags: g.tags as string[] });
  }

  private dropMember(vip: string): void {
    const old = this.members.get(vip);
    if (!old) return;
    this.members.delete(vip);
    const key = tagKey(old.tags);
    const g = this.groups.get(key);
    if (g) {
      g.vips.delete(vip);
      if (g.vips.size === 0) this.groups.delete(key);
    }
  }

  private async refresh(): Promise<void> {
    const ch = this.version < 0 ? 'full' : await this.registry.changes(this.version);
    if (ch === 'full') {
      const snap = await this.registry.snapshot();
      this.members.clear();
      this.groups.clear();
      for (const p of snap.peers) this.setMember(p);
      this.setPolicy(snap.policy);
      this.log = [];
      this.logFrom = snap.version;
      this.version = snap.version;
      this.fullMemo.clear();
      this.clearDeltaMemo();
      return;
    }
    if (ch.version === this.version) return;
    for (const e of ch.entries) this.log.push(e);
    // The tag sets of every member touched, before and after: the classes that see one of them lose their list.
    const touched: (readonly string[])[] = [];
    for (const [vip, m] of ch.nodes) {
      const old = this.members.get(vip);
      if (old) touched.push(old.tags);
      if (m) {
        this.setMember(m);
        touched.push(this.members.get(vip)!.tags);
      } else {
        this.dropMember(vip);
      }
    }
    if (ch.policy !== undefined) this.setPolicy(ch.policy);
    this.version = ch.version;
    for (const [key, memo] of this.fullMemo) {
      if (touched.some((tags) => this.policy.connected(memo.tags, tags))) this.fullMemo.delete(key);
    }
    this.clearDeltaMemo();
    if (this.log.length > LOG_MAX) {
      const cut = this.log.length - LOG_MAX;
      this.logFrom = this.log[cut - 1].version;
      this.log = this.log.slice(cut);
    }
  }
}
