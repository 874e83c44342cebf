/**
 * The relay's share of the access policy (issue 10: enforcement at coordinator, relay and
 * agent): a DATA frame between two members the policy does not connect is dropped as
 * 'policy'. Checked where a frame's two ends are both known:
 *
 *   member ─DATA─► relay 1 ──────────────────────────► member        local: both sessions
 *   member ─DATA─► relay 1 ─MESH_DATA─► relay 2 ─────► member        relay 1: src session, dst remote
 *                                                                    relay 2: src remote, dst session
 *
 * Both relays of a mesh hop check (defence in depth: relay 2 does not trust relay 1's policy
 * copy to be as new as its own; the second check costs one Map lookup).
 *
 * Cost per frame, with a policy set: the classes of the two ends (a session field, or one Map
 * lookup for a remote member) index a byte matrix of (class, class) verdicts filled on first
 * use from CompiledPolicy.connected. No allocation. With no policy (`mode === POLICY_OFF`)
 * callers skip the gate after one field load.
 *
 * Tags: a local member's are loaded at AUTH, before it is bound (so a bound session always has
 * a class), and re-read on node-changed. A remote member's are looked up on first use and kept
 * in a bounded cache that node-up/-changed/-removed invalidate. While a remote member's tags
 * are being looked up, its frames are held (policy-held.ts) and run through the relay again
 * when the answer arrives; past the hold's bounds they are dropped as 'policy-pending'.
 *
 * Policy: loaded at start, on `policy-changed` and after a Redis reconnect. A malformed policy
 * is logged once and counted (`policyRejected`); the last good one stays. With no good one
 * yet (malformed at start) the relay connects no one: this is a security boundary, and the
 * coordinator and agents still say why (they refuse the same text).
 */
import { type Logger, formatAddr, EventType } from '../common';
import { compilePolicy, parsePolicy, type CompiledPolicy, type Policy } from '../policy';
import { PolicyHeld, type HeldFrame, type HeldPort } from './policy-held';
import type { PolicySource, PolicySourceEvent } from './policy-source';
import type { PolicyMirror } from './fast-path';
import type { Session, SessionTable } from './session-table';
import type { RelayStats } from './stats';

/** `mode`: no policy (skip the check), a policy in force, or not loaded yet (drop as pending). */
export const POLICY_OFF = 0;
export const POLICY_ON = 1;
export const POLICY_LOADING = 2;

/** verdict matrix cells */
const UNKNOWN = 0;
const ALLOW = 1;
const DENY = 2;

const EMPTY: readonly string[] = Object.freeze([]);

export interface PolicyGateInit {
  /** Remote members whose tags are cached. @default 65_536 */
  maxRemote?: number;
  /** Tag lookups in flight at once. @default 256 */
  maxLookups?: number;
  /** Least interval between two debug lines about policy drops, ms. @default 1000 */
  dropLogIntervalMs?: number;
}

export interface PolicyGateDeps {
  source: PolicySource;
  sessions: SessionTable;
  stats: RelayStats;
  log: Logger;
  /** Run a held frame through the relay again (its tags are known now). */
  rerun: (f: HeldFrame) => void;
  /** Told every class assignment, verdict and policy change (the relay's C fast path). */
  mirror?: PolicyMirror;
}

/** Distinct tag sets interned (beyond it, arrays are kept as read). */
const MAX_INTERNED = 4096;

interface Remote {
  tags: readonly string[];
  cls: number;
}

export class PolicyGate {
  /** POLICY_OFF / POLICY_ON / POLICY_LOADING; read on the hot path. */
  mode = POLICY_LOADING;
  private compiled: CompiledPolicy = compilePolicy(null);
  private cap = 0;
  private verdicts = new Uint8Array(0);
  /** one tag array per class id, to ask `connected` about a pair of classes */
  private reps: (readonly string[])[] = [];
  private readonly remote = new Map<number, Remote>();
  private readonly inflight = new Set<number>();
  /** in-flight lookups an event made stale: asked again when they answer */
  private readonly stale = new Set<number>();
  private readonly held = new PolicyHeld();
  /** One frozen array per distinct tag set: sessions with the same tags share it. */
  private readonly interned = new Map<string, readonly string[]>();
  private readonly o: Required<PolicyGateInit>;
  private nodeEvents = 0;
  private lastText: string | null | undefined = undefined;
  private badText: string | undefined;
  private loading: Promise<void> | undefined;
  private reloadAgain = false;
  private lastDropLog = -Infinity;
  private dropsSinceLog = 0;
  private closed = false;

  constructor(init: PolicyGateInit, private readonly d: PolicyGateDeps) {
    this.o = { maxRemote: 65_536, maxLookups: 256, dropLogIntervalMs: 1000, ...init };
    d.source.onEvent((e) => this.onEvent(e));
  }

  /** Load the policy; rejects if the source fails (the relay should not run without it). */
  start(): Promise<void> {
    this.closed = false;
    return this.reload(true);
  }

  stop(): void {
    this.closed = true;
    this.held.expire(0, true);
  }

  /** Rules in force (-1: none set; status and tests). */
  get rules(): number {
    return this.compiled.policy?.rules.length ?? -1;
  }

  // ---- hot path ---------------------------------------------------------------------------

  /** May a frame from class `a` reach class `b`? Counts and logs the drop when not. */
  admit(a: number, b: number, srcVip: number, dstVip: number, now: number): boolean {
    if (this.mode === POLICY_LOADING || a < 0 || b < 0) {
      this.d.stats.drop('policy-pending');
      return false;
    }
    let v = a < this.cap && b < this.cap ? this.verdicts[a * this.cap + b] : UNKNOWN;
    if (v === UNKNOWN) v = this.decide(a, b);
    if (v === ALLOW) return true;
    this.d.stats.drop('policy');
    this.dropsSinceLog++;
    if (now - this.lastDropLog >= this.o.dropLogIntervalMs) {
      this.lastDropLog = now;
      if (this.d.log.isLevelEnabled('debug')) {
        this.d.log.debug({ vip: formatAddr(srcVip), dstVip: formatAddr(dstVip), dropped: this.dropsSinceLog }, 'frames dropped: the access policy does not connect these members');
      }
      this.dropsSinceLog = 0;
    }
    return false;
  }

  /** The class of a member that is not bound here; -1 while its tags are looked up (hold the frame). */
  remoteClass(vip: number): number {
    const r = this.remote.get(vip);
    if (r !== undefined) return r.cls;
    this.lookup(vip);
    return -1;
  }

  /** Keep a copy of a frame until `vip`'s tags are known; counted as 'policy-pending' when full. */
  hold(vip: number, port: HeldPort, buf: Uint8Array, off: number, len: number, addr: number, udpPort: number, now: number): void {
    if (!this.held.hold(vip, port, buf, off, len, addr, udpPort, now)) this.d.stats.drop('policy-pending');
  }

  // ---- members ----------------------------------------------------------------------------

  /** Tags of a member about to be bound (AUTH). Rejects on backend failure. */
  async tagsForBind(vip: number): Promise<{ tags: readonly string[]; gen: number }> {
    const gen = this.nodeEvents;
    return { tags: this.intern((await this.d.source.lookupTags(vip)) ?? EMPTY), gen };
  }

  /** The shared copy of a tag list (a relay holds one per member: 100k members, a few distinct sets). */
  private intern(tags: readonly string[]): readonly string[] {
    if (tags.length === 0) return EMPTY;
    const k = JSON.stringify(tags);
    const hit = this.interned.get(k);
    if (hit) return hit;
    if (this.interned.size >= MAX_INTERNED) return tags;
    const t = Object.freeze([...tags]);
    this.interned.set(k, t);
    return t;
  }

  /** Classify a session just bound with tagsForBind's answer; re-reads its tags if an event raced. */
  adopt(s: Session, gen: number): void {
    s.policyClass = this.classify(s.tags);
    this.d.mirror?.classified(s);
    if (gen !== this.nodeEvents) this.refreshLocal(s.vip);
  }

  /** Housekeeping (the relay's tick): frames that waited too long are dropped; a failed first load is retried. */
  tick(now: number): void {
    // Not loaded yet (the first read failed): try again every tick.
    if (this.mode === POLICY_LOADING && !this.loading && !this.closed) void this.reload(false);
    const n = this.held.expire(now);
    if (n > 0) this.d.stats.drops['policy-pending'] += n;
  }

  private classify(tags: readonly string[]): number {
    const c = this.compiled.classId(tags);
    if (this.reps[c] === undefined) this.reps[c] = tags;
    return c;
  }

  private decide(a: number, b: number): number {
    if (a >= this.cap || b >= this.cap) {
      let cap = Math.max(16, this.cap);
      while (cap <= Math.max(a, b)) cap *= 2;
      const m = new Uint8Array(cap * cap);
      for (let i = 0; i < this.cap; i++) m.set(this.verdicts.subarray(i * this.cap, (i + 1) * this.cap), i * cap);
      this.cap = cap;
      this.verdicts = m;
    }
    const v = this.compiled.connected(this.reps[a], this.reps[b]) ? ALLOW : DENY;
    this.verdicts[a * this.cap + b] = v;
    this.verdicts[b * this.cap + a] = v;
    this.d.mirror?.decided(a, b, v === ALLOW);
    this.d.mirror?.decided(b, a, v === ALLOW);
    return v;
  }

  private lookup(vip: number): void {
    if (this.closed || this.inflight.has(vip) || this.inflight.size >= this.o.maxLookups) return;
    this.inflight.add(vip);
    this.d.source.lookupTags(vip).then((tags) => {
      this.inflight.delete(vip);
      if (this.closed) return;
      if (this.stale.delete(vip)) return this.lookup(vip);
      if (this.remote.size >= this.o.maxRemote) this.remote.delete(this.remote.keys().next().value!);
      const t = this.intern(tags ?? EMPTY);
      this.remote.set(vip, { tags: t, cls: this.classify(t) });
      for (const f of this.held.take(vip)) this.d.rerun(f);
    }, (err: Error) => {
      this.inflight.delete(vip);
      this.stale.delete(vip);
      this.d.log.warn({ err: err.message, vip: formatAddr(vip) }, 'member tags lookup failed');
      this.d.stats.drops['policy-pending'] += this.held.take(vip).length;
    });
  }

  private refreshLocal(vip: number): void {
    this.d.source.lookupTags(vip).then((tags) => {
      const s = this.d.sessions.byOverlay(vip);
      if (!s || this.closed || tags === undefined) return;
      s.tags = this.intern(tags);
      s.policyClass = this.classify(tags);
      this.d.mirror?.classified(s);
    }, (err: Error) => this.d.log.warn({ err: err.message, vip: formatAddr(vip) }, 'member tags refresh failed'));
  }

  private onEvent(e: PolicySourceEvent | undefined): void {
    if (this.closed) return;
    if (e === undefined) {
      // Reconnected: anything may have changed while events were lost.
      for (const v of this.inflight) this.stale.add(v);
      this.remote.clear();
      this.nodeEvents++;
      for (const s of this.d.sessions.sessions()) this.refreshLocal(s.vip);
      void this.reload(false);
      return;
    }
    if (e.type === EventType.PolicyChanged) {
      void this.reload(false);
      return;
    }
    this.nodeEvents++;
    if (this.inflight.has(e.vip)) this.stale.add(e.vip);
    this.remote.delete(e.vip);
    if (e.type === EventType.NodeChanged && this.d.sessions.byOverlay(e.vip)) this.refreshLocal(e.vip);
  }

  // ---- policy -----------------------------------------------------------------------------

  /** Read and apply the policy; a reload requested meanwhile runs once more after. */
  private reload(first: boolean): Promise<void> {
    if (this.loading) {
      this.reloadAgain = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.reloadAgain = false;
          let text: string | null;
          try {
            text = await this.d.source.loadPolicy();
          } catch (err) {
            if (first) throw err;
            this.d.log.warn({ err: (err as Error).message }, 'reading the access policy failed; keeping the current one');
            return;
          }
          if (this.closed) return;
          this.apply(text);
        } while (this.reloadAgain);
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  private apply(text: string | null): void {
    if (text === this.lastText && this.mode !== POLICY_LOADING) return;
    let policy: Policy | null = null;
    if (text !== null) {
      try {
        policy = parsePolicy(text);
      } catch (err) {
        this.d.stats.policyRejected++;
        if (text !== this.badText) {
          this.badText = text;
          this.d.log.error({ err: (err as Error).message, keeping: this.mode === POLICY_LOADING ? 'none: connecting no one' : 'the last good policy' },
            'the access policy in Redis is malformed');
        }
        if (this.mode !== POLICY_LOADING) return;
        policy = { rules: [] };
      }
    }
    this.lastText = text;
    this.badText = undefined;
    this.compiled = compilePolicy(policy);
    this.reps = [];
    this.verdicts.fill(UNKNOWN);
    for (const s of this.d.sessions.sessions()) {
      s.policyClass = this.classify(s.tags);
      this.d.mirror?.classified(s);
    }
    for (const r of this.remote.values()) r.cls = this.classify(r.tags);
    this.mode = policy ? POLICY_ON : POLICY_OFF;
    this.d.mirror?.applied(this.mode);
    this.d.log.info({ rules: policy?.rules.length ?? 0 }, policy ? 'access policy in force' : 'no access policy: every member reaches every member');
  }
}
