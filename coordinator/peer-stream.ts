/**
 * Streaming peer-map watch (`GET /v1/peers/stream`): one long-lived response per member, each
 * change that affects its view written to it as one frame (stream-frames.ts for the format).
 *
 * Streams are grouped by (view, since): the view id of the member's tag set and the version it
 * holds. A change is handled per group, not per stream:
 *   1. one Redis read per change per coordinator (PeerMapCache.sync, single-flight);
 *   2. per group: the members the new entries are about, or all of them after a policy change,
 *      get their own delta (member-scoped frame); every other member of the group gets the same
 *      delta, computed, serialised and signed ONCE (view-scoped frame) and written as the same
 *      Buffer to each socket. A group whose shared delta is empty costs one memoised lookup and
 *      writes nothing (an agent's view does not change when another agent joins);
 *   3. every frame of one round is signed in one batch (BatchSigner: one Ed25519 signature).
 * Frames are written in version order: rounds run one at a time, and a stream is registered
 * only after its opening frame is written.
 *
 * Heartbeats. Every stream gets a frame at least every `heartbeatMs` (default 25 s: under the
 * 30–60 s idle timeouts of common load balancers and proxies, e.g. nginx proxy_read_timeout 60 s,
 * ALB 60 s), so neither an LB in between nor the member takes a quiet stream for a dead one; the
 * member reconnects when it hears nothing for 3 heartbeats. Streams are spread over BEAT_BUCKETS
 * buckets, one bucket per tick. A heartbeat of a member whose cursor is behind the coordinator
 * (changes it did not need to see) is an empty delta to the current version (shared per group,
 * signed), else an unsigned `beat`: so cursors of quiet members stay recent and groups merge.
 *
 * Backpressure. Before each frame, a stream whose unsent bytes exceed `maxBufferBytes` is
 * dropped (destroyed: the member reconnects from its cursor); a single frame is always queued
 * whole, so memory per stream is bounded by the limit plus one frame (frames are shared Buffers).
 *
 * Ending. A member removed (or re-joined under another key) has its stream closed when its change
 * arrives; a group the in-memory feed no longer reaches (Redis lost its state, a long gap) is
 * closed too: those members reconnect and their opening frame tells them (401, or a full map).
 * A stream also ends after `maxLifetimeMs` (±10 %), so its session token is checked (and renewed)
 * again by the reconnect.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { Logger } from '../common';
import { SIGNING_KEY_HEADER, type AnswerSignature, type BatchSigner, type FrameContext } from './answer-signing';
import { UnauthorizedError } from './errors';
import type { PeerFeed } from './peer-feed';
import type { PeerMapCache } from './peer-map-cache';
import { BEAT_LINE, frameLine, memberScope, STREAM_CONTENT_TYPE, viewOf, viewScope, type DeltaFrame, type OpenFrame } from './stream-frames';
import type { PeerChanges } from './types';

/** Heartbeat ticks per interval: each tick beats one bucket of streams. */
const BEAT_BUCKETS = 25;

export interface PeerStreamOptions {
  /** @default DEFAULT_STREAM_HEARTBEAT_MS (25 s) */
  heartbeatMs: number;
  /** Unsent bytes a stream may hold before the next frame, else it is dropped. @default 4 MiB */
  maxBufferBytes: number;
  /** A stream ends after about this long (the member reconnects). @default 1 h */
  maxLifetimeMs: number;
}

interface Stream {
  vip: string;
  publicKey: string;
  view: string;
  since: number;
  res: ServerResponse;
  bucket: number;
  endAt: number;
  closed: boolean;
}

interface Out {
  body: string;
  context?: FrameContext;
  streams: Stream[];
}

export class PeerStreamHub {
  /** view → since → streams */
  private readonly groups = new Map<string, Map<number, Set<Stream>>>();
  private readonly byVip = new Map<string, Set<Stream>>();
  private readonly buckets: Set<Stream>[] = Array.from({ length: BEAT_BUCKETS }, () => new Set());
  private nextBucket = 0;
  private beatTick = 0;
  private dueBuckets: number[] = [];
  private dirty = false;
  private pumping?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private count = 0;
  /** Counters (metrics, tests, bench). */
  readonly stats = { opened: 0, dropped: 0, ended: 0, frames: 0, framesWritten: 0, beats: 0 };

  constructor(private readonly peerMap: PeerMapCache, private readonly feed: PeerFeed, private readonly signer: BatchSigner | undefined,
    private readonly signingPub: string | undefined, private readonly o: PeerStreamOptions, private readonly log: Logger) {}

  /** Streams open on this coordinator. */
  get open(): number {
    return this.count;
  }

  start(): void {
    this.unsubscribe = this.feed.onChange(() => this.kick());
    this.timer = setInterval(() => {
      this.dueBuckets.push(this.beatTick++ % BEAT_BUCKETS);
      this.kick();
    }, Math.max(1, Math.floor(this.o.heartbeatMs / BEAT_BUCKETS)));
    this.timer.unref();
  }

  close(): void {
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    this.endAll();
  }

  /**
   * End every stream gracefully. Called when the state in Redis was rebuilt under us (server.ts):
   * versions start again, so no cursor means anything, and a stream authenticated before the loss
   * would otherwise only ever see heartbeats. Each member's reconnect finds out: 401 for a member
   * the rebuilt registry does not hold (it re-asserts its record), else a full map.
   */
  endAll(): void {
    for (const set of this.byVip.values()) for (const s of set) this.end(s, false);
  }

  /**
   * Answer `GET /v1/peers/stream`: the opening frame (the full map, or the changes after
   * `since`), then register the stream. Throws (a 4xx/5xx answer) before anything is written.
   */
  async serve(vip: string, since: number | undefined, nonce: string | undefined, reply: FastifyReply): Promise<void> {
    let open: OpenFrame | undefined;
    let publicKey = '';
    for (let round = 0; !open; round++) {
      const want = this.feed.latest;
      const ch: PeerChanges | 'full' = since === undefined ? 'full' : await this.peerMap.delta(vip, since, want);
      const full = ch === 'full' ? await this.peerMap.full(vip, want) : undefined;
      const version = full ? full.version : (ch as PeerChanges).version;
      // The view and the map must be of one version: computed again if the cache moved meanwhile.
      if (version !== this.peerMap.at && round < 8) continue;
      const me = this.peerMap.member(vip);
      if (!me) throw new UnauthorizedError('this member is not in the registry (removed, or Redis lost it): join again');
      publicKey = me.publicKey;
      const head = { type: 'open' as const, vip, view: viewOf(me.tags), version, heartbeatMs: this.o.heartbeatMs };
      open = full ? { ...head, full: true, peers: full.peers }
        : { ...head, full: false, from: since!, upserts: (ch as PeerChanges).upserts, removals: (ch as PeerChanges).removals };
    }
    const body = JSON.stringify(open);
    const sig = this.signer && nonce ? await this.signer.sign({ route: 'stream', member: vip, since: since === undefined ? '-' : String(since), nonce }, body) : undefined;
    reply.hijack();
    const res = reply.raw;
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(200, {
      'content-type': STREAM_CONTENT_TYPE, 'cache-control': 'no-store', 'x-accel-buffering': 'no',
      ...(this.signingPub ? { [SIGNING_KEY_HEADER]: this.signingPub } : {}),
    });
    res.socket?.setNoDelay(true);
    res.write(frameLine(body, sig));
    const jitter = 0.9 + Math.random() * 0.2;
    const s: Stream = { vip, publicKey, view: open.view, since: open.version, res, bucket: this.nextBucket++ % BEAT_BUCKETS,
      endAt: Date.now() + this.o.maxLifetimeMs * jitter, closed: false };
    res.on('close', () => this.remove(s));
    this.add(s);
    this.stats.opened++;
    if (s.since < this.feed.latest || s.since < this.peerMap.at) this.kick();
  }

  private add(s: Stream): void {
    let subs = this.groups.get(s.view);
    if (!subs) this.groups.set(s.view, subs = new Map());
    let set = subs.get(s.since);
    if (!set) subs.set(s.since, set = new Set());
    set.add(s);
    let mine = this.byVip.get(s.vip);
    if (!mine) this.byVip.set(s.vip, mine = new Set());
    mine.add(s);
    this.buckets[s.bucket].add(s);
    this.count++;
  }

  private unlink(s: Stream): void {
    const subs = this.groups.get(s.view);
    const set = subs?.get(s.since);
    if (set?.delete(s) && set.size === 0) {
      subs!.delete(s.since);
      if (subs!.size === 0) this.groups.delete(s.view);
    }
  }

  private remove(s: Stream): void {
    if (s.closed) return;
    s.closed = true;
    this.unlink(s);
    const mine = this.byVip.get(s.vip);
    if (mine?.delete(s) && mine.size === 0) this.byVip.delete(s.vip);
    this.buckets[s.bucket].delete(s);
    this.count--;
  }

  /** Move a stream to the group of what it holds after a frame. */
  private advance(s: Stream, view: string, since: number): void {
    this.unlink(s);
    s.view = view;
    s.since = since;
    let subs = this.groups.get(view);
    if (!subs) this.groups.set(view, subs = new Map());
    let set = subs.get(since);
    if (!set) subs.set(since, set = new Set());
    set.add(s);
  }

  /** End a stream: gracefully (the member reconnects from its cursor) or at once (dropped). */
  private end(s: Stream, drop: boolean): void {
    if (s.closed) return;
    this.remove(s);
    if (drop) {
      this.stats.dropped++;
      s.res.destroy();
    } else {
      this.stats.ended++;
      s.res.end();
    }
  }

  private kick(): void {
    this.dirty = true;
    this.pumping ??= this.pump().finally(() => { this.pumping = undefined; });
  }

  private async pump(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      try {
        await this.round();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'peer-map stream round failed; trying again at the next change or heartbeat');
      }
    }
  }

  /** One pass: bring every group to the cache's version; beat the due buckets. */
  private async round(): Promise<void> {
    if (this.count === 0) {
      this.dueBuckets = [];
      return;
    }
    await this.peerMap.sync(this.feed.latest);
    const at = this.peerMap.at;
    const out: Out[] = [];
    for (const [view, subs] of [...this.groups]) {
      for (const [since, set] of [...subs]) {
        if (since === at) continue;
        const t = this.peerMap.touchedSince(since);
        if (!t) {
          // Not in the in-memory feed (Redis lost its state, or a gap): reconnecting tells them.
          for (const s of [...set]) this.end(s, false);
          continue;
        }
        // Members with a delta of their own: those the entries are about, or all after a policy change.
        const personal: Stream[] = [];
        if (t.policy) personal.push(...set);
        else if (t.vips.size < set.size) {
          for (const v of t.vips) for (const s of this.byVip.get(v) ?? []) if (s.view === view && s.since === since) personal.push(s);
        } else {
          for (const s of set) if (t.vips.has(s.vip)) personal.push(s);
        }
        for (const s of personal) this.personal(s, at, out);
        if (personal.length === set.size) continue;
        const own = new Set(personal);
        let rep: Stream | undefined;
        for (const s of set) if (!own.has(s)) { rep = s; break; }
        if (!rep) continue;
        const d = this.peerMap.deltaNow(rep.vip, since);
        if (d === 'full') {
          for (const s of [...set]) if (!own.has(s)) this.end(s, false);
          continue;
        }
        if (d.upserts.length === 0 && d.removals.length === 0) continue; // nothing for this view: no write, cursor kept
        const streams = [...set].filter((s) => !own.has(s));
        out.push(this.viewFrame(view, since, d, streams));
        for (const s of streams) this.advance(s, view, d.version);
      }
    }
    // Heartbeats of the due buckets: cursors behind move to `at` (empty delta, shared per group), others get a beat.
    const beats: Stream[] = [];
    const now = Date.now();
    for (const b of this.dueBuckets.splice(0)) {
      const behind = new Map<string, Stream[]>();
      for (const s of this.buckets[b]) {
        if (now >= s.endAt) {
          this.end(s, false);
          continue;
        }
        if (s.since >= at) {
          beats.push(s);
          continue;
        }
        const k = `${s.view}\n${s.since}`;
        let l = behind.get(k);
        if (!l) behind.set(k, l = []);
        l.push(s);
      }
      for (const l of behind.values()) {
        out.push(this.viewFrame(l[0].view, l[0].since, { version: at, upserts: [], removals: [] }, l));
        for (const s of l) this.advance(s, s.view, at);
      }
    }
    const sigs: Array<AnswerSignature | undefined> = await Promise.all(out.map((f) => (this.signer && f.context ? this.signer.sign(f.context, f.body) : undefined)));
    out.forEach((f, i) => {
      const line = frameLine(f.body, sigs[i]);
      this.stats.frames++;
      for (const s of f.streams) this.write(s, line);
    });
    for (const s of beats) {
      this.stats.beats++;
      this.write(s, BEAT_LINE_BUF);
    }
  }

  /** A member's own delta (its change, or a policy change); its stream ends if it is no longer the member. */
  private personal(s: Stream, at: number, out: Out[]): void {
    const me = this.peerMap.member(s.vip);
    const d = me && me.publicKey === s.publicKey ? this.peerMap.deltaNow(s.vip, s.since) : 'full';
    if (d === 'full') {
      this.end(s, false);
      return;
    }
    const view = viewOf(me!.tags);
    if (d.upserts.length === 0 && d.removals.length === 0 && view === s.view) return;
    const f: DeltaFrame = { type: 'delta', scope: memberScope(s.vip), from: s.since, to: d.version, upserts: d.upserts, removals: d.removals, view };
    out.push({ body: JSON.stringify(f), context: { scope: f.scope, from: String(s.since) }, streams: [s] });
    this.advance(s, view, at);
  }

  private viewFrame(view: string, since: number, d: PeerChanges, streams: Stream[]): Out {
    const f: DeltaFrame = { type: 'delta', scope: viewScope(view), from: since, to: d.version, upserts: d.upserts, removals: d.removals };
    return { body: JSON.stringify(f), context: { scope: f.scope, from: String(since) }, streams };
  }

  private write(s: Stream, line: Buffer): void {
    if (s.closed) return;
    if (s.res.writableLength > this.o.maxBufferBytes) {
      this.log.warn({ vip: s.vip, unsentBytes: s.res.writableLength }, 'peer-map stream dropped: the member does not read (it reconnects from its cursor)');
      this.end(s, true);
      return;
    }
    s.res.write(line);
    this.stats.framesWritten++;
  }
}

const BEAT_LINE_BUF = Buffer.from(BEAT_LINE);
