/**
 * The agent's control plane: join through the coordinator (key proof, token on first
 * join), bring the data path up with the vip it got, then keep the peer set in step with
 * the coordinator's pushed peer map. If the coordinator is unreachable, the agent keeps
 * the last map (also across a restart, from the state dir) and reconnects with backoff.
 *
 * Every peer-map entry passes this agent's own check before it reaches the data path: its
 * allowed IPs may not overlap another member's (first holder keeps them; peer-claims.ts), and
 * its original IP may not lie in the overlay CIDR. A refused entry is counted and logged.
 */
import { hostname as osHostname } from 'node:os';
import { CoordinatorClient, CoordinatorHttpError, SessionExpiredError, readMembershipRecordUnverified, type JoinResponse,
  type PeerMapUpdate, type Peer as PeerEntry } from '../coordinator';
import { publicKeyFromPrivate, keyToBase64 } from '../protocol';
import { contains, parseAddr, parseNetwork, type Prefix, type Logger, redactKey } from '../common';
import { PeerClaims } from './peer-claims';
import { JoinBackoff, parseRetryAfter } from './join-backoff';
import { compileInbound } from './inbound-ports';
import { Endpoint } from './endpoint';
import type { PeerSpec } from './peer-set';
import { MembershipWriter, type StateDir, type Membership } from './state-dir';
import { checkOwnRecord } from './record-check';

export interface JoinOptions {
  coordinatorUrl: string;
  /** CA certificates (PEM) the coordinator's certificate must chain to (default: Node's store). */
  coordinatorCa?: string | Buffer;
  /** The coordinator signing key (base64), given up front; else the one pinned in the state dir, else pinned at first join. */
  coordinatorPubkey?: string;
  /** Accept unsigned join and peer-map answers while no signing key is pinned (plain-HTTP test setups). */
  insecureCoordinator?: boolean;
  /**
   * After re-asserting its record, keep the peers the rebuilt registry does not list yet for
   * this long (they re-assert too), then take the coordinator's full map. @default 90 s (REASSERT_SETTLE_MS)
   */
  reassertSettleMs?: number;
  token?: string;
  /** Write the peer map to the state dir at most this often while it changes (and at stop). @default MEMBERSHIP_SAVE_INTERVAL_MS (5 s) */
  membershipSaveIntervalMs?: number;
  originalIp: string;
  hostname?: string;
}

/** What the data path needs of the agent, so this file stays testable without a TUN. */
export interface PeerSink {
  upsertPeer(spec: PeerSpec): void;
  removePeer(publicKeyBase64: string): void;
  peerKeys(): string[];
}

/** A member's peer entry → the session engine's peer: reached through the relay by vip,
 *  owning its vip and its original IP (so transparent mode can deliver to it). */
export function peerSpecFromEntry(p: PeerEntry, onBadInbound?: (spec: string, reason: string) => void): PeerSpec {
  const vip = parseAddr(p.vip);
  const allowedIps: Prefix[] = [{ addr: vip, bits: 32 }];
  if (p.originalIp && p.originalIp !== p.vip) allowedIps.push({ addr: parseAddr(p.originalIp), bits: 32 });
  // What it may open towards us; no field (an older coordinator) means `*`, as before policy.
  const inbound = compileInbound(p.inbound === undefined ? undefined : Array.isArray(p.inbound) ? p.inbound : [], onBadInbound);
  return { publicKey: p.publicKey, allowedIps, endpoint: Endpoint.relay(vip), inbound };
}


/**
 * Join refusals that mean "the coordinator does not know this key" (its token is gone too):
 * what a member sees after Redis lost its data. With a saved record the member re-asserts it.
 */
const UNKNOWN_MEMBER_CODES: ReadonlySet<string> = new Set(['token-required', 'token-unknown', 'token-expired', 'token-exhausted']);
/** Where the peer-map follower is: the version and map it last applied. */
interface FollowState {
  since: number | undefined;
  /** The map held before the current watch applied an answer: a join answer, the cache, or a merge after a re-assert. */
  seed: readonly PeerEntry[];
  /** The client's map as of the last applied answer (updated in place by watchPeers); when set, it is the map held. */
  current?: ReadonlyMap<string, PeerEntry>;
  /** vip → key of the map held, kept per delta (a removal names a vip), so a delta costs O(change). */
  keyByVip: Map<string, string>;
}

function heldMap(st: FollowState): readonly PeerEntry[] {
  return st.current ? [...st.current.values()] : st.seed;
}

function keysByVip(peers: Iterable<PeerEntry>): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of peers) m.set(p.vip, p.publicKey);
  return m;
}

/**
 * After a re-assert the rebuilt registry lists only the members that re-asserted so far: the
 * agent keeps its other cached peers this long (beyond the coordinators' default 60 s
 * --reassert-grace plus a 25 s long-poll), adding what comes back, then takes the full map.
 */
export const REASSERT_SETTLE_MS = 90_000;
/** How often the agent checks whether its membership record needs refreshing. */
export const RECORD_CHECK_MS = 60_000;

export class MembershipClient {
  readonly client: CoordinatorClient;
  private readonly privateKey: Buffer;
  readonly publicKey: string;
  private sessionToken: string | undefined;
  private readonly abort = new AbortController();
  private readonly claims = new PeerClaims();
  private overlay: Prefix | undefined;
  private refused = 0;
  /** The peer map of the last join (or the state dir), until run() follows the coordinator's. */
  private joined: readonly PeerEntry[] = [];
  /** What run() follows, once it runs. */
  private st: FollowState | undefined;
  /** Its version (the cursor the next long-poll sends). */
  mapVersion: number | undefined;
  /** The coordinator connection, for `isthmus status`. */
  readonly contact: { url: string; connected: boolean; lastContactWallMs: number; error?: string };
  private record: string | undefined;
  private recordRefreshing = false;
  /** The vip and CIDR of the last accepted answer: a record received must name them. */
  private identity: { vip: string; cidr: string } | undefined;
  /** Records received that failed the check (record-check.ts), and why the last one did. */
  private recordRefused = 0;
  private recordError: string | undefined;
  /** Set by a successful re-assert, taken by the peer-map loop (it then keeps cached peers a while). */
  private reasserted = false;
  /** The peer map on disk, written at most every few seconds while it changes, and at stop(). */
  readonly saved: MembershipWriter;

  constructor(private readonly opts: JoinOptions, private readonly state: StateDir, private readonly log: Logger) {
    const saved = state.signingKey();
    if (opts.coordinatorPubkey && saved && saved !== opts.coordinatorPubkey.trim()) {
      log.warn({ pinned: saved, given: opts.coordinatorPubkey }, '--coordinator-pubkey replaces the coordinator signing key pinned in the state dir');
    }
    const pinned = opts.coordinatorPubkey?.trim() ?? saved;
    if (opts.coordinatorPubkey && pinned !== saved) state.saveSigningKey(pinned!);
    this.client = new CoordinatorClient({
      url: opts.coordinatorUrl, logger: log, ca: opts.coordinatorCa, insecure: opts.insecureCoordinator,
      answers: { pinned, allowUnsigned: opts.insecureCoordinator, onPin: (k) => state.saveSigningKey(k) },
    });
    this.privateKey = state.privateKey();
    this.publicKey = keyToBase64(publicKeyFromPrivate(this.privateKey));
    this.contact = { url: opts.coordinatorUrl, connected: false, lastContactWallMs: 0 };
    this.record = state.loadRecord();
    this.saved = new MembershipWriter(state, (err) => log.warn({ err: err.message }, 'could not save the peer map to the state dir; trying again at the next change'),
      opts.membershipSaveIntervalMs);
  }

  /** The signed membership record this member keeps (undefined: none yet, or no signing coordinator). */
  get membershipRecord(): string | undefined {
    return this.record;
  }

  /** The kept record's issue and expiry times (ms since the epoch), and refused ones, for `isthmus status`. */
  get recordStatus(): { issuedWallMs?: number; expiresWallMs?: number; refused: number; error?: string } {
    const r = this.record ? readMembershipRecordUnverified(this.record) : undefined;
    return { issuedWallMs: r?.iat, expiresWallMs: r?.exp, refused: this.recordRefused, ...(this.recordError ? { error: this.recordError } : {}) };
  }

  /** Keep a record received from the coordinator only if it verifies (record-check.ts); else keep the old one. */
  private keepRecord(r: { record?: string }): boolean {
    if (!r.record || r.record === this.record) return true;
    const id = this.identity;
    const c = id ? checkOwnRecord(r.record, { signingKey: this.client.signingKey, publicKey: this.publicKey, vip: id.vip, cidr: id.cidr, now: Date.now() })
      : { ok: false as const, reason: 'no accepted answer to check it against' };
    if (!c.ok) {
      this.recordRefused++;
      this.recordError = `membership record refused: ${c.reason}`;
      this.log.error({ reason: c.reason, recordRefused: this.recordRefused }, 'membership record from the coordinator refused; not stored (the one kept stays)');
      return false;
    }
    this.recordError = undefined;
    this.record = r.record;
    this.state.saveRecord(r.record);
    return true;
  }

  private accepted(r: JoinResponse): Membership {
    this.sessionToken = r.sessionToken;
    this.identity = { vip: r.vip, cidr: r.cidr };
    this.keepRecord(r);
    const m: Membership = { vip: r.vip, cidr: r.cidr, version: r.version, peers: r.peers };
    this.contacted();
    this.joined = r.peers;
    this.mapVersion = r.version;
    this.setOverlay(r.cidr);
    this.saved.save(m);
    this.saved.flush(); // a join answer is on disk before the data path starts from it
    return m;
  }

  /**
   * The coordinator does not know this key (Redis lost its data, and its token with it):
   * restore our identity from the signed record, with a fresh key proof.
   */
  private async reassert(why: CoordinatorHttpError): Promise<Membership> {
    this.log.warn({ code: why.code }, 'the coordinator does not know this member: re-asserting its signed membership record');
    const r = await this.client.reassert({ privateKey: this.privateKey, publicKey: publicKeyFromPrivate(this.privateKey), record: this.record! });
    this.log.info({ vip: r.vip }, 'membership record re-asserted: identity restored');
    this.reasserted = true;
    return this.accepted(r);
  }

  /**
   * Fetch a fresh record when less than half of this one's life is left, or when the identity
   * the coordinator holds for us (our own peer-map entry) differs from it (an admin changed our
   * tags). Best effort: a failure is logged and tried again at the next check.
   */
  async refreshRecord(self?: PeerEntry): Promise<boolean> {
    if (!this.sessionToken || this.recordRefreshing || !this.record) return false;
    const cur = readMembershipRecordUnverified(this.record);
    const now = Date.now();
    const stale = !cur || cur.exp - now < (cur.exp - cur.iat) / 2
      || (self !== undefined && (self.vip !== cur.vip || self.originalIp !== cur.orig || self.hostname !== cur.hostname
        || [...self.tags].sort().join('\n') !== cur.tags.join('\n')));
    if (!stale) return false;
    this.recordRefreshing = true;
    try {
      if (!this.keepRecord(await this.client.record(this.sessionToken))) return false;
      this.log.info('membership record refreshed');
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'membership record refresh failed; trying again later');
      return false;
    } finally {
      this.recordRefreshing = false;
    }
  }

  /** One exchange with the coordinator ended: an answer, or `err`. */
  private contacted(err?: Error): void {
    this.contact.connected = !err;
    if (err) this.contact.error = err.message;
    else {
      this.contact.lastContactWallMs = Date.now();
      delete this.contact.error;
    }
  }

  get key(): Buffer {
    return this.privateKey;
  }

  /** Join (or re-join: same key, same vip, no token needed). Falls back to the saved
   *  membership when the coordinator cannot be reached and this key joined before. */
  async join(): Promise<Membership> {
    try {
      try {
        return this.accepted(await this.client.join({
          privateKey: this.privateKey, publicKey: publicKeyFromPrivate(this.privateKey), token: this.opts.token,
          originalIp: this.opts.originalIp, hostname: this.opts.hostname ?? osHostname(),
        }));
      } catch (err) {
        if (this.record && err instanceof CoordinatorHttpError && err.status === 401 && UNKNOWN_MEMBER_CODES.has(err.code)) {
          return await this.reassert(err);
        }
        throw err;
      }
    } catch (err) {
      const saved = this.state.loadMembership();
      const status = (err as { status?: number }).status;
      this.contacted(err as Error);
      if (saved && status === undefined) {
        this.joined = saved.peers;
        this.mapVersion = saved.version;
        this.log.warn({ err: (err as Error).message }, 'coordinator unreachable or its answer refused: starting from the saved membership');
        this.setOverlay(saved.cidr);
        return saved;
      }
      throw err;
    }
  }

  /** Peer-map entries refused since start (their allowed IPs overlapped another member's, or a bad original IP). */
  get refusedPeerEntries(): number {
    return this.refused;
  }

  /** The overlay CIDR (from the join answer): no peer's original IP may lie in it. */
  setOverlay(cidr: string): void {
    try {
      this.overlay = parseNetwork(cidr);
    } catch {
      this.overlay = undefined;
    }
  }

  private refuse(p: PeerEntry, why: string, fields: Record<string, unknown>): void {
    this.refused++;
    this.log.warn({ peer: redactKey(p.publicKey), vip: p.vip, originalIp: p.originalIp, refusedPeerEntries: this.refused, ...fields },
      `peer-map entry refused: ${why}`);
  }

  /** Our own entry: our addresses are ours (a peer claiming them is refused). */
  private claimSelf(p: PeerEntry): void {
    const c = this.claims.claim(this.publicKey, peerSpecFromEntry(p).allowedIps);
    if (c) this.refuse(p, 'our own addresses overlap another member\'s', { cidr: c.cidr, holder: redactKey(c.holder) });
  }

  /** Check one entry and hand it to the data path; false when refused (a previously accepted entry of that peer stays). */
  private accept(p: PeerEntry, sink: PeerSink): boolean {
    const spec = peerSpecFromEntry(p, (bad, reason) => this.log.warn({ peer: redactKey(p.publicKey), vip: p.vip, spec: bad, reason },
      'peer-map entry: inbound port spec not understood, left out (the peer may open less, never more)'));
    if (this.overlay && p.originalIp && p.originalIp !== p.vip && contains(this.overlay, parseAddr(p.originalIp))) {
      this.refuse(p, 'its original IP is inside the overlay CIDR', { cidr: `${p.originalIp}/32` });
      return false;
    }
    const c = this.claims.claim(p.publicKey, spec.allowedIps);
    if (c) {
      this.refuse(p, 'its allowed IPs overlap another member\'s (the first holder keeps them)', { cidr: c.cidr, holder: redactKey(c.holder) });
      return false;
    }
    sink.upsertPeer(spec);
    return true;
  }

  private drop(publicKey: string, sink: PeerSink): void {
    this.claims.release(publicKey);
    sink.removePeer(publicKey);
  }

  /**
   * Apply upserts: peers we already hold first (so an address one of them gave up is free
   * before a newcomer claims it), then new ones; a conflict keeps the first holder.
   */
  private applyUpserts(upserts: Iterable<PeerEntry>, sink: PeerSink): Set<string> {
    const kept = new Set<string>();
    const fresh: PeerEntry[] = [];
    const list = [...upserts];
    for (const p of list) if (p.publicKey === this.publicKey) this.claimSelf(p); // our own addresses first
    for (const p of list) {
      if (p.publicKey === this.publicKey) continue;
      if (this.claims.has(p.publicKey)) {
        this.accept(p, sink);
        kept.add(p.publicKey); // refused or not, its earlier accepted entry stays
      } else fresh.push(p);
    }
    for (const p of fresh) if (this.accept(p, sink)) kept.add(p.publicKey);
    return kept;
  }

  /** Apply a map to the peer set: everything in it (but us) that passes the checks, nothing else. */
  applyFull(peers: Iterable<PeerEntry>, sink: PeerSink): void {
    const list = [...peers];
    const inMap = new Set(list.map((p) => p.publicKey));
    for (const k of sink.peerKeys()) if (!inMap.has(k)) this.drop(k, sink);
    const kept = this.applyUpserts(list, sink);
    for (const k of sink.peerKeys()) if (!kept.has(k)) this.drop(k, sink);
  }

  /** The peer map as last received (or loaded from the state dir), our own entry included. Built on each call. */
  get entries(): readonly PeerEntry[] {
    return this.st ? heldMap(this.st) : this.joined;
  }

  /** Follow the coordinator's peer map until stop(); re-joins when the session expires. */
  async run(initial: Membership, sink: PeerSink): Promise<void> {
    const st: FollowState = { since: initial.version, seed: initial.peers, keyByVip: keysByVip(initial.peers) };
    this.st = st;
    const recordTimer = setInterval(() => { void this.refreshRecord(st.current?.get(initial.vip) ?? st.seed.find((p) => p.vip === initial.vip)); }, RECORD_CHECK_MS);
    recordTimer.unref();
    try {
      await this.follow(initial, sink, st);
    } finally {
      clearInterval(recordTimer);
    }
  }

  /** Add `peers` to the data path and to the map held, keeping the entries they do not replace. */
  private merge(st: FollowState, peers: Iterable<PeerEntry>, sink: PeerSink): void {
    const list = [...peers];
    this.applyUpserts(list, sink);
    const byVip = new Map(heldMap(st).map((p) => [p.vip, p]));
    for (const p of list) {
      byVip.set(p.vip, p);
      st.keyByVip.set(p.vip, p.publicKey);
    }
    st.seed = [...byVip.values()];
    st.current = undefined;
  }

  private async follow(initial: Membership, sink: PeerSink, st: FollowState): Promise<void> {
    const signal = this.abort.signal;
    const backoff = new JoinBackoff();
    /** Until when cached peers are kept after a re-assert (full maps merged, not applied). */
    let settleUntil = 0;
    while (!signal.aborted) {
      if (!this.sessionToken) {
        try {
          const m = await this.join();
          if (!this.sessionToken) throw new Error('coordinator still unreachable');
          if (this.reasserted) {
            this.reasserted = false;
            settleUntil = Date.now() + (this.opts.reassertSettleMs ?? REASSERT_SETTLE_MS);
            this.merge(st, m.peers, sink);
            this.log.info({ peers: st.seed.length, settleMs: settleUntil - Date.now() }, 'keeping cached peers while the others re-assert');
          } else {
            this.applyFull(m.peers, sink);
            st.seed = m.peers;
            st.current = undefined;
            st.keyByVip = keysByVip(m.peers);
          }
          st.since = m.version;
          backoff.reset();
        } catch (err) {
          const e = err as { status?: number; retryAfter?: string; message?: string };
          const waitMs = backoff.next({ status: e.status, retryAfterSec: parseRetryAfter(e.retryAfter) });
          this.log.warn({ err: e.message, status: e.status, attempt: backoff.attempts, retryInMs: waitMs }, 'join failed; retrying');
          await abortableSleep(waitMs, signal);
          continue;
        }
      }
      // While settling, the watch ends when the window does; the next one asks for a full map.
      const settling = settleUntil > Date.now();
      const watch = new AbortController();
      const settleTimer = settling ? setTimeout(() => watch.abort(), settleUntil - Date.now()) : undefined;
      try {
        await this.client.watchPeers(this.sessionToken!, st.since, (u: PeerMapUpdate) => {
          if (u.full && settleUntil > Date.now()) this.merge(st, u.peers.values(), sink);
          else {
            if (u.full) {
              this.applyFull(u.peers.values(), sink);
              st.keyByVip = keysByVip(u.peers.values());
            } else {
              // Removals first: an address a removed member held may be claimed in the same update.
              for (const vip of u.removals) {
                const key = st.keyByVip.get(vip);
                st.keyByVip.delete(vip);
                if (key && key !== this.publicKey) this.drop(key, sink);
              }
              this.applyUpserts(u.upserts, sink);
              for (const p of u.upserts) st.keyByVip.set(p.vip, p.publicKey);
            }
            st.current = u.peers;
          }
          st.since = u.version;
          this.mapVersion = u.version;
          const version = u.version;
          this.saved.save(() => ({ vip: initial.vip, cidr: initial.cidr, version, peers: [...this.entries] }));
          this.log.info({ peers: u.peers.size, version: u.version, full: u.full, upserts: u.upserts.length, removals: u.removals.length }, 'peer map updated');
          void this.refreshRecord(u.peers.get(initial.vip));
        }, AbortSignal.any([signal, watch.signal]), { initial: [...heldMap(st)], onContact: (err) => this.contacted(err) });
        if (settling && watch.signal.aborted && !signal.aborted) {
          settleUntil = 0;
          st.since = undefined;
          this.log.info('re-assert window over: taking the coordinator\'s full peer map');
        }
      } catch (err) {
        if (err instanceof SessionExpiredError) {
          this.log.warn('coordinator session expired: re-joining');
          this.sessionToken = undefined;
          continue;
        }
        throw err;
      } finally {
        clearTimeout(settleTimer);
      }
    }
  }

  /** Stop following; the newest peer map is written to the state dir now. */
  stop(): void {
    this.abort.abort();
    this.saved.flush();
  }

  /** Remove this member from the coordinator and forget its key. */
  async leave(): Promise<void> {
    if (!this.sessionToken) await this.join();
    if (!this.sessionToken) throw new Error('cannot reach the coordinator to leave');
    await this.client.leave(this.sessionToken);
    this.saved.discard();
    this.state.clear();
  }
}

/** Wait `ms`, or less if `signal` aborts first. */
function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
