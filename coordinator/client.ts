/**
 * The library agents and the CLI use to talk to a coordinator (global fetch, Node 20).
 *
 *   const c = new CoordinatorClient({ url: 'https://coord:8080' });   // http:// only with insecure: true
 *   const j = await c.join({ privateKey, publicKey, token, originalIp, hostname });
 *   await c.watchPeers(j.sessionToken, j.version, (u) => apply(u.peers), signal);
 */
import type { KeyObject } from 'node:crypto';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import { proveKey } from '../protocol';
import { newNonce, NONCE_HEADER, parseSigningPublicKey, PROOF_HEADER, SIGNATURE_HEADER, SIGNING_KEY_HEADER, verifySignedAnswer, type SignedContext, type SignedRoute } from './answer-signing';
import { BEAT_BODY, MAX_FRAME_BYTES, memberScope, parseFrameLine, viewScope, type DeltaFrame, type OpenFrame, type StreamFrame } from './stream-frames';
import { readLines } from './stream-reader';
import { silentLogger, type Logger } from '../common';
import { nodeFilterQuery, type NodeFilterInput } from './node-filter';
import type { ChallengeResponse, ErrorBody, JoinResponse, NodeTagsRequest, NodeTagsResponse, NodeView, Peer, PeersResponse,
  PolicyCheckRequest, PolicyCheckResponse, PolicySetResponse, PolicyView, ProxyUserCreateRequest, ProxyUserCreated, ProxyUserView, RecordResponse, RemovedKeyView, TokenCreateRequest, TokenView } from './types';

export interface CoordinatorClientOptions {
  /** e.g. https://10.0.0.1:8080 (no trailing path) */
  url: string;
  logger?: Logger;
  fetch?: typeof fetch;
  /** Admin bearer for the admin helpers. */
  adminToken?: string;
  /**
   * CA certificates (PEM) an https:// coordinator's certificate must chain to, instead of
   * Node's default store (its bundled roots plus NODE_EXTRA_CA_CERTS).
   */
  ca?: string | Buffer;
  /** Check the signatures of join and peer-map answers (docs/SECURITY.md). */
  answers?: AnswerVerification;
  /**
   * Allow a plain http:// `url`: anyone on the path can read the tokens and change the answers.
   * Tests only (the CLI's `--insecure-coordinator`). Without it an http:// URL is refused.
   */
  insecure?: boolean;
}

/** The coordinator URL is plain http:// and the client was not built with `insecure: true`. */
export class InsecureCoordinatorError extends Error {
  override name = 'InsecureCoordinatorError';
  readonly code = 'ERR_INSECURE_COORDINATOR';
}

export interface AnswerVerification {
  /** The pinned signing key (base64): every join and peer-map answer must be signed by it. */
  pinned?: string;
  /**
   * No pin yet: the first signed join answer whose signature checks against the key it names
   * pins that key (trust on first use); `onPin` is told, so the member can keep it.
   */
  onPin?: (key: string) => void;
  /** No pin yet: accept unsigned answers (`--insecure-coordinator`). Never once a key is pinned. */
  allowUnsigned?: boolean;
}

/**
 * A join or peer-map answer failed its signature check (missing, wrong, or by a key other than
 * the pinned one). The answer was not used.
 */
export class AnswerVerificationError extends Error {
  override name = 'AnswerVerificationError';
  constructor(readonly code: 'unsigned' | 'bad-signature' | 'other-signing-key', message: string) {
    super(message);
  }
}

/** The coordinator's TLS certificate did not verify (another CA, wrong name, expired). */
export class CoordinatorTlsError extends Error {
  override name = 'CoordinatorTlsError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

const TLS_ERROR_CODES = /CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS|ERR_SSL/;

export interface JoinOptions {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  /** Needed for the first join of a key only. */
  token?: string;
  /**
   * The address this member joins from, or one inside a prefix its token allows
   * (`originalCidrs`); never an overlay or special-purpose address, never another member's.
   */
  originalIp: string;
  hostname: string;
  /** 'none': a cursor-only answer (no peers); follow the map with watchPeers(token, undefined, …). @default 'full' */
  map?: 'full' | 'none';
}

/** What `watchPeers` hands to its callback after each answer that changed something. */
export interface PeerMapUpdate {
  version: number;
  /** The whole current map (maintained by the client), keyed by vip. */
  peers: ReadonlyMap<string, Peer>;
  /** True when this answer replaced the map. */
  full: boolean;
  upserts: Peer[];
  removals: string[];
}

/**
 * A non-2xx answer. `code` is the server's `error` field, `status` the HTTP status, `body` the
 * whole answer (e.g. `path`, `line`, `column` of a refused policy).
 */
export class CoordinatorHttpError extends Error {
  override name = 'CoordinatorHttpError';
  constructor(readonly status: number, readonly code: string, message: string, readonly body: Record<string, unknown> = {},
    /** The answer's Retry-After header, raw (429, 503), if any */
    readonly retryAfter?: string) {
    super(message);
  }
}

/** The session token is no longer valid (member removed, or token expired): join again. */
export class SessionExpiredError extends CoordinatorHttpError {
  override name = 'SessionExpiredError';
}

export interface BackoffOptions {
  /** @default 500 */ minMs?: number;
  /** @default 30000 */ maxMs?: number;
}

/** Default upper bound of the random wait before reopening a peer-map stream the coordinator ended. */
export const RECONNECT_JITTER_MS = 1_000;
/** A stream that has sent nothing for this many heartbeats is taken for dead (and reopened). */
export const SILENT_HEARTBEATS = 3;
/** Before the opening frame names the heartbeat: how long a stream may stay silent. */
const OPENING_SILENT_MS = 90_000;

export interface WatchOptions extends BackoffOptions {
  initial?: Peer[];
  /** Random source in [0, 1) for the reconnect jitter (tests). @default Math.random */
  random?: () => number;
  /** Told of each stream's outcome: its opening frame arrived (no argument) or the error (`isthmus status`). */
  onContact?: (err?: Error) => void;
  /**
   * After the coordinator ended a stream (its lifetime, a restart), wait a random
   * [0, reconnectJitterMs) ms before reopening it, so N members do not reconnect in one millisecond.
   * @default 1000 (RECONNECT_JITTER_MS)
   */
  reconnectJitterMs?: number;
  /**
   * Check the signature of every stream frame (default). `false` is for the scale bench's
   * simulated members only (bench/README.md): the opening frame is still checked.
   */
  verifyFrames?: boolean;
}

/** Full jitter: a random wait in [0, min(max, min·2^attempt)], at least 50 ms. */
export function backoffDelay(attempt: number, o: BackoffOptions = {}, rnd = Math.random): number {
  const cap = Math.min(o.maxMs ?? 30_000, (o.minMs ?? 500) * 2 ** Math.min(attempt, 20));
  return Math.max(50, Math.floor(rnd() * cap));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** What a watch holds between streams. */
interface StreamState {
  map: Map<string, Peer>;
  version: number | undefined;
}

export class CoordinatorClient {
  private readonly base: string;
  private readonly log: Logger;
  private readonly f: typeof fetch;
  private pinnedKey: KeyObject | undefined;
  private pinnedText: string | undefined;
  /** Our vip, from the last verified join answer: peer-map answers must be signed for it. */
  private memberVip: string | undefined;
  /** Join and peer-map answers refused by the signature check (each logged). */
  refusedAnswers = 0;

  constructor(private readonly o: CoordinatorClientOptions) {
    this.base = o.url.replace(/\/+$/, '');
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(this.base)?.[1].toLowerCase();
    if (scheme !== 'https' && scheme !== 'http') {
      throw new Error(`coordinator URL ${JSON.stringify(o.url)} must be https://HOST:PORT`);
    }
    if (scheme === 'http' && !o.insecure) {
      throw new InsecureCoordinatorError(`coordinator URL ${o.url} is plain http://: anyone on the path could read the tokens and change the peer maps. `
        + 'Use https://, or construct the client with the option insecure: true (CLI: --insecure-coordinator) to allow it anyway');
    }
    this.log = o.logger ?? silentLogger();
    if (o.fetch) this.f = o.fetch;
    else if (o.ca !== undefined) {
      const dispatcher = new UndiciAgent({ connect: { ca: o.ca } });
      this.f = ((url: string, init: RequestInit) => undiciFetch(url, { ...init, dispatcher } as never)) as unknown as typeof fetch;
    } else this.f = fetch;
    if (o.answers?.pinned) this.pin(o.answers.pinned);
  }

  /** The signing key answers are checked against (base64), once pinned. */
  get signingKey(): string | undefined {
    return this.pinnedText;
  }

  private pin(key: string): void {
    try {
      this.pinnedKey = parseSigningPublicKey(key);
    } catch (err) {
      throw new Error(`coordinator signing key ${JSON.stringify(key)}: ${(err as Error).message}`);
    }
    this.pinnedText = key.trim();
  }

  /** Check a join or peer-map answer's signature before its body is used; throws AnswerVerificationError. */
  private verify(res: Response, text: string, route: SignedRoute, member: string | undefined, since: string, nonce: string): void {
    // A batch signature's path to its root (answer-signing.ts); absent for an answer signed alone.
    this.verifyParts(res.headers.get(SIGNATURE_HEADER) ?? undefined, res.headers.get(PROOF_HEADER) ?? undefined,
      res.headers.get(SIGNING_KEY_HEADER)?.trim(), text, route, member, since, nonce);
  }

  /**
   * A stream frame after the opening one (stream-frames.ts): signed by the pinned key for the
   * context the member expects (its scope, the version it holds); unsigned only while no key is
   * pinned and unsigned answers are allowed. Throws AnswerVerificationError.
   */
  private verifyFrame(sig: string | undefined, proof: string | undefined, body: string, context: SignedContext): void {
    const refuse = (code: AnswerVerificationError['code'], msg: string) => {
      this.refusedAnswers++;
      throw new AnswerVerificationError(code, `stream frame refused: ${msg}`);
    };
    if (!this.pinnedKey) {
      if (sig || !this.o.answers?.allowUnsigned) refuse('unsigned', 'no pinned coordinator key to check it against');
      return;
    }
    if (!sig) refuse('unsigned', `not signed, and frames must be signed by the pinned coordinator key ${this.pinnedText}`);
    if (!verifySignedAnswer(this.pinnedKey, context, body, sig!, proof)) {
      refuse('bad-signature', `signature by the pinned coordinator key ${this.pinnedText} does not verify for ${'scope' in context ? context.scope : context.route} `
        + 'from the version held (changed on the way, replayed, or meant for another member)');
    }
  }

  private verifyParts(sig: string | undefined, proof: string | undefined, named: string | undefined, text: string, route: SignedRoute,
    member: string | undefined, since: string, nonce: string): void {
    const v = this.o.answers!;
    const refuse = (code: AnswerVerificationError['code'], msg: string) => {
      this.refusedAnswers++;
      throw new AnswerVerificationError(code, `${route} answer refused: ${msg}`);
    };
    if (!sig) {
      if (this.pinnedKey) refuse('unsigned', `not signed, and answers must be signed by the pinned coordinator key ${this.pinnedText}`);
      if (!v.allowUnsigned) refuse('unsigned', 'the coordinator does not sign its answers (start it with --signing-key FILE), or something between us strips the signature');
      return;
    }
    if (!member) refuse('bad-signature', 'no verified join yet to check the answer against: join first');
    if (!this.pinnedKey) {
      if (route !== 'join' || !named) refuse('unsigned', 'no pinned coordinator key to check against: join first, or give the key (--coordinator-pubkey)');
      let k: KeyObject;
      try {
        k = parseSigningPublicKey(named!);
      } catch {
        return refuse('bad-signature', 'the signing key it names is not an Ed25519 key');
      }
      if (!verifySignedAnswer(k, { route, member: member!, since, nonce }, text, sig, proof)) refuse('bad-signature', 'signature does not verify');
      this.pin(named!);
      this.log.warn({ signingKey: named }, 'coordinator signing key pinned on first join (trust on first use; see docs/SECURITY.md)');
      v.onPin?.(named!);
      return;
    }
    if (named && named !== this.pinnedText) {
      refuse('other-signing-key', `signed by coordinator key ${named}, not the pinned ${this.pinnedText} (another deployment, or someone in between; `
        + 'if this deployment rotated its key, see docs/SECURITY.md)');
    }
    if (!verifySignedAnswer(this.pinnedKey, { route, member: member!, since, nonce }, text, sig, proof)) {
      refuse('bad-signature', `signature by the pinned coordinator key ${this.pinnedText} does not verify (the answer was changed on the way)`);
    }
  }

  private async call<T>(method: string, path: string,
    opts: { body?: unknown; rawBody?: string; bearer?: string; signal?: AbortSignal;
      signed?: { route: SignedRoute; member: string | undefined; since: string } } = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
    const body = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    if (body !== undefined) headers['content-type'] = 'application/json';
    const nonce = opts.signed && this.o.answers ? newNonce() : undefined;
    if (nonce) headers[NONCE_HEADER] = nonce;
    const res = await this.fetchRaw(path, { method, headers, body, signal: opts.signal });
    const text = await res.text();
    if (res.ok && nonce) this.verify(res, text, opts.signed!.route, opts.signed!.member, opts.signed!.since, nonce);
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) this.httpError(res, method, path, text, json, !!opts.bearer);
    return json as T;
  }

  private async fetchRaw(path: string, init: RequestInit): Promise<Response> {
    try {
      return await this.f(this.base + path, init);
    } catch (err) {
      const code = String((err as { cause?: { code?: string } }).cause?.code ?? '');
      if (TLS_ERROR_CODES.test(code)) {
        throw new CoordinatorTlsError(code, `${this.base}: TLS certificate refused (${code}): it does not chain to the trusted CA `
          + '(--coordinator-ca FILE, else Node\'s CA store) or does not name this host');
      }
      throw err;
    }
  }

  /** Throw the error a non-2xx answer stands for (401 on a peer-map call: SessionExpiredError). */
  private httpError(res: Response, method: string, path: string, text: string, json: unknown, bearer: boolean): never {
    const e = (json ?? {}) as Partial<ErrorBody>;
    const msg = `${method} ${path}: ${res.status} ${e.error ?? ''} ${e.message ?? text.slice(0, 200)}`.trim();
    if (res.status === 401 && bearer && path.startsWith('/v1/peers')) throw new SessionExpiredError(401, e.error ?? 'unauthorized', msg);
    throw new CoordinatorHttpError(res.status, e.error ?? 'http-error', msg, (json ?? {}) as Record<string, unknown>, res.headers.get('retry-after') ?? undefined);
  }

  async challenge(): Promise<ChallengeResponse> {
    return this.call('GET', '/v1/challenge');
  }

  /** Proves key possession over a fresh challenge and joins (or re-joins: same key, same vip). */
  async join(j: JoinOptions): Promise<JoinResponse> {
    const c = await this.challenge();
    const proof = proveKey(j.privateKey, j.publicKey, Buffer.from(c.ephemeralPublic, 'base64'), Buffer.from(c.nonce, 'base64'), 'join');
    const publicKey = Buffer.from(j.publicKey).toString('base64');
    const r = await this.call<JoinResponse>('POST', '/v1/join', {
      body: {
        publicKey, challengeId: c.id, proof: Buffer.from(proof).toString('base64'),
        ...(j.token ? { token: j.token } : {}), originalIp: j.originalIp, hostname: j.hostname, ...(j.map ? { map: j.map } : {}),
      },
      signed: { route: 'join', member: publicKey, since: '-' },
    });
    this.memberVip = r.vip;
    return r;
  }

  /**
   * Re-assert a signed membership record (Redis lost this member): proves key possession over
   * a fresh challenge (context 'reassert'); answered like a join, with a fresh record.
   */
  async reassert(j: { privateKey: Uint8Array; publicKey: Uint8Array; record: string }): Promise<JoinResponse> {
    const c = await this.challenge();
    const proof = proveKey(j.privateKey, j.publicKey, Buffer.from(c.ephemeralPublic, 'base64'), Buffer.from(c.nonce, 'base64'), 'reassert');
    const publicKey = Buffer.from(j.publicKey).toString('base64');
    const r = await this.call<JoinResponse>('POST', '/v1/reassert', {
      body: { publicKey, challengeId: c.id, proof: Buffer.from(proof).toString('base64'), record: j.record },
      signed: { route: 'join', member: publicKey, since: '-' },
    });
    this.memberVip = r.vip;
    return r;
  }

  /** A fresh membership record of this member's identity as the coordinator holds it now. */
  async record(sessionToken: string): Promise<RecordResponse> {
    return this.call('GET', '/v1/record', { bearer: sessionToken });
  }

  /** One long-poll; `since` undefined → the full map. */
  async peers(sessionToken: string, since?: number, signal?: AbortSignal, waitMs?: number): Promise<PeersResponse> {
    const q = new URLSearchParams();
    if (since !== undefined) q.set('since', String(since));
    if (waitMs !== undefined) q.set('wait', String(waitMs));
    const qs = q.toString();
    return this.call('GET', `/v1/peers${qs ? '?' + qs : ''}`,
      { bearer: sessionToken, signal, signed: { route: 'peers', member: this.memberVip, since: since === undefined ? '-' : String(since) } });
  }

  /**
   * Follow the member's peer map over a stream (`GET /v1/peers/stream`, docs/PROTOCOL.md §4)
   * until `signal` aborts (resolves) or the session is refused (rejects with SessionExpiredError:
   * join again, then call watchPeers again). `since`: the version of the map held (`initial`
   * seeds it, so deltas apply to it); undefined: the opening frame brings the full map. A stream
   * the coordinator ends is reopened from the last version after a random [0, reconnectJitterMs)
   * wait; on network or server errors, a refused frame or a silent stream (no heartbeat), it is
   * reopened with exponential backoff and jitter; the last map stays valid meanwhile.
   */
  async watchPeers(sessionToken: string, since: number | undefined, onUpdate: (u: PeerMapUpdate) => void,
    signal: AbortSignal, opts: WatchOptions = {}): Promise<void> {
    const st: StreamState = { map: new Map<string, Peer>((opts.initial ?? []).map((p) => [p.vip, p])), version: since };
    let attempt = 0;
    this.log.info('runWatchPeers started');
    try {
      while (!signal.aborted) {
        let frames = 0;
        try {
          await this.followStream(sessionToken, st, (u) => {
            if (frames++ === 0) opts.onContact?.();
            attempt = 0;
            if (u) onUpdate(u);
          }, signal, opts);
        } catch (err) {
          if (signal.aborted) break;
          opts.onContact?.(err as Error);
          if (err instanceof SessionExpiredError) throw err;
          const wait = backoffDelay(attempt++, opts);
          if (err instanceof AnswerVerificationError) {
            this.log.warn({ err: err.message, code: err.code, refusedAnswers: this.refusedAnswers, retryMs: wait }, 'peer-map frame refused; keeping the last peer map');
          } else {
            this.log.warn({ err: (err as Error).message, frames, retryMs: wait }, 'peer-map stream failed; keeping the last peer map');
          }
          await sleep(wait, signal);
          continue;
        }
        // Ended by the coordinator (its lifetime, a restart): reopen from where we are, jittered.
        const jitter = Math.floor((opts.random ?? Math.random)() * (opts.reconnectJitterMs ?? RECONNECT_JITTER_MS));
        await sleep(jitter, signal);
      }
    } finally {
      this.log.info('runWatchPeers stopped');
    }
  }

  /** One stream: open it from `st.version`, apply its frames to `st` (calling `onFrame`) until it ends. */
  private async followStream(sessionToken: string, st: StreamState, onFrame: (u: PeerMapUpdate | undefined) => void,
    signal: AbortSignal, opts: WatchOptions): Promise<void> {
    const headers: Record<string, string> = { authorization: `Bearer ${sessionToken}` };
    const nonce = this.o.answers ? newNonce() : undefined;
    if (nonce) headers[NONCE_HEADER] = nonce;
    const asked = st.version;
    const path = `/v1/peers/stream${asked === undefined ? '' : `?since=${asked}`}`;
    const ac = new AbortController();
    const both = AbortSignal.any([signal, ac.signal]);
    const res = await this.fetchRaw(path, { method: 'GET', headers, signal: both });
    if (!res.ok) {
      const text = await res.text();
      let json: unknown;
      try { json = JSON.parse(text); } catch { json = undefined; }
      this.httpError(res, 'GET', path, text, json, true);
    }
    if (!res.body) throw new Error('peer-map stream without a body');
    const named = res.headers.get(SIGNING_KEY_HEADER)?.trim();
    let heartbeatMs: number | undefined;
    let view: string | undefined;
    const vip = () => this.memberVip;
    const apply = (version: number, full: boolean, upserts: Peer[], removals: string[]) => {
      if (full) st.map.clear();
      for (const p of upserts) st.map.set(p.vip, p);
      for (const v of removals) st.map.delete(v);
      st.version = version;
      onFrame(full || upserts.length > 0 || removals.length > 0 ? { version, peers: st.map, full, upserts, removals } : undefined);
    };
    try {
      await readLines(res.body, (line) => {
        const f = parseFrameLine(line);
        if (!f) throw new Error('peer-map stream: not a frame line');
        let frame: StreamFrame;
        if (view === undefined) {
          // The opening frame: checked as an answer to this request (our vip, since, nonce).
          if (nonce) this.verifyParts(f.signature, f.proof, named, f.body, 'stream', vip(), asked === undefined ? '-' : String(asked), nonce);
          frame = JSON.parse(f.body) as StreamFrame;
          if (frame.type !== 'open' || (vip() !== undefined && frame.vip !== vip()) || typeof frame.view !== 'string') {
            throw new AnswerVerificationError('bad-signature', 'peer-map stream: the first frame is not this member\'s opening frame');
          }
          const o = frame as OpenFrame;
          if (!o.full && o.from !== asked) throw new AnswerVerificationError('bad-signature', 'peer-map stream: opening delta from another version');
          this.memberVip ??= o.vip;
          view = o.view;
          heartbeatMs = o.heartbeatMs;
          if (o.full) apply(o.version, true, o.peers, []);
          else apply(o.version, false, o.upserts, o.removals);
          return;
        }
        if (f.body === BEAT_BODY) {
          onFrame(undefined);
          return;
        }
        frame = JSON.parse(f.body) as StreamFrame;
        if (frame.type !== 'delta') return; // a later kind of frame: not ours to read
        const d = frame as DeltaFrame;
        const mine = memberScope(vip() ?? '');
        if (d.scope !== viewScope(view) && d.scope !== mine) {
          this.refusedAnswers++;
          throw new AnswerVerificationError('bad-signature', `stream frame refused: scope ${d.scope} is neither our view nor us`);
        }
        if (d.from !== st.version || !(d.to > d.from)) {
          this.refusedAnswers++;
          throw new AnswerVerificationError('bad-signature', `stream frame refused: from ${d.from} to ${d.to}, and we hold ${st.version}`);
        }
        if (this.o.answers && (opts.verifyFrames !== false || !this.pinnedKey)) this.verifyFrame(f.signature, f.proof, f.body, { scope: d.scope, from: String(st.version) });
        if (d.scope === mine && typeof d.view === 'string') view = d.view;
        apply(d.to, false, d.upserts, d.removals);
      }, { maxLineBytes: MAX_FRAME_BYTES, silentMs: () => (heartbeatMs ? heartbeatMs * SILENT_HEARTBEATS : OPENING_SILENT_MS), signal: both });
    } finally {
      ac.abort();
    }
    if (view === undefined && !signal.aborted) throw new Error('peer-map stream ended before its opening frame');
  }

  async leave(sessionToken: string): Promise<void> {
    await this.call('POST', '/v1/leave', { bearer: sessionToken });
  }

  private adminBearer(): string {
    if (!this.o.adminToken) throw new Error('admin token required');
    return this.o.adminToken;
  }

  /** Returns the secret (shown once) and its record. */
  async createToken(req: TokenCreateRequest = {}): Promise<TokenView & { token: string }> {
    return this.call('POST', '/v1/tokens', { body: req, bearer: this.adminBearer() });
  }

  async listTokens(): Promise<TokenView[]> {
    return (await this.call<{ tokens: TokenView[] }>('GET', '/v1/tokens', { bearer: this.adminBearer() })).tokens;
  }

  async revokeToken(id: string): Promise<void> {
    await this.call('DELETE', `/v1/tokens/${encodeURIComponent(id)}`, { bearer: this.adminBearer() });
  }

  /** Creates a proxy user (gateway credentials); the answer carries its password, shown once. */
  async createProxyUser(req: ProxyUserCreateRequest): Promise<ProxyUserCreated> {
    return this.call('POST', '/v1/proxy-users', { body: req, bearer: this.adminBearer() });
  }

  async listProxyUsers(): Promise<ProxyUserView[]> {
    return (await this.call<{ users: ProxyUserView[] }>('GET', '/v1/proxy-users', { bearer: this.adminBearer() })).users;
  }

  async revokeProxyUser(name: string): Promise<void> {
    await this.call('DELETE', `/v1/proxy-users/${encodeURIComponent(name)}`, { bearer: this.adminBearer() });
  }

  /** Members, optionally filtered by the server (node-filter.ts). */
  async listNodes(filter: NodeFilterInput = {}): Promise<NodeView[]> {
    return (await this.call<{ nodes: NodeView[] }>('GET', `/v1/nodes${nodeFilterQuery(filter)}`, { bearer: this.adminBearer() })).nodes;
  }

  /**
   * Remove a member. Its key is refused by later joins (403 key-removed) until `allowKey`,
   * unless `allowRejoin`. Returns whether the key is now refused.
   */
  async removeNode(vip: string, opts: { allowRejoin?: boolean } = {}): Promise<{ keyRefused: boolean }> {
    const q = opts.allowRejoin ? '?allowRejoin=true' : '';
    const r = await this.call<{ keyRefused: boolean }>('DELETE', `/v1/nodes/${encodeURIComponent(vip)}${q}`, { bearer: this.adminBearer() });
    return { keyRefused: r.keyRefused };
  }

  /** Admin tag change of a member named by vip or hostname (additions first, then removals). */
  async setNodeTags(member: string, change: NodeTagsRequest): Promise<NodeTagsResponse> {
    return this.call('POST', `/v1/nodes/${encodeURIComponent(member)}/tags`, { body: change, bearer: this.adminBearer() });
  }

  /** Keys an admin removed (their joins are refused). */
  async listRemovedKeys(): Promise<RemovedKeyView[]> {
    return (await this.call<{ keys: RemovedKeyView[] }>('GET', '/v1/removed-keys', { bearer: this.adminBearer() })).keys;
  }

  /** Let a removed key join again (it still needs a valid token). 404 when it is not refused. */
  async allowKey(publicKey: string): Promise<void> {
    await this.call('POST', '/v1/removed-keys/allow', { body: { publicKey }, bearer: this.adminBearer() });
  }

  /**
   * Set the access policy. `policy`: the file's text (sent as is, so a refusal names its line
   * and column) or an object in the file format. A bad policy is refused whole (400
   * invalid-policy with `path`, `line`, `column` in the error's `body`); the previous one stays.
   */
  async setPolicy(policy: string | object): Promise<PolicySetResponse> {
    return this.call('PUT', '/v1/policy', { rawBody: typeof policy === 'string' ? policy : JSON.stringify(policy), bearer: this.adminBearer() });
  }

  /** The policy in force (`policy: null` and a note saying so when none is set). */
  async getPolicy(): Promise<PolicyView> {
    return this.call('GET', '/v1/policy', { bearer: this.adminBearer() });
  }

  /** Back to no policy: every member reaches every member. */
  async clearPolicy(): Promise<{ ok: true; changed: boolean; version: number; note: string }> {
    return this.call('DELETE', '/v1/policy', { bearer: this.adminBearer() });
  }

  /** May `from` open a flow to `to` on `port` (`tcp/80`, `udp/53`, `icmp`)? Each side: vip, original IP or hostname. */
  async checkPolicy(req: PolicyCheckRequest): Promise<PolicyCheckResponse> {
    return this.call('POST', '/v1/policy/check', { body: req, bearer: this.adminBearer() });
  }
}
