/**
 * The library agents and the CLI use to talk to a coordinator (global fetch, Node 20).
 *
 *   const c = new CoordinatorClient({ url: 'http://coord:7000' });
 *   const j = await c.join({ privateKey, publicKey, token, originalIp, hostname });
 *   await c.watchPeers(j.sessionToken, j.version, (u) => apply(u.peers), signal);
 */
import { proveKey } from '../protocol';
import { silentLogger, type Logger } from '../common';
import type { ChallengeResponse, ErrorBody, JoinResponse, NodeTagsRequest, NodeTagsResponse, NodeView, Peer, PeersResponse,
  PolicyCheckRequest, PolicyCheckResponse, PolicySetResponse, PolicyView, RemovedKeyView, TokenCreateRequest, TokenView } from './types';

export interface CoordinatorClientOptions {
  /** e.g. http://10.0.0.1:7000 (no trailing path) */
  url: string;
  logger?: Logger;
  fetch?: typeof fetch;
  /** Admin bearer for the admin helpers. */
  adminToken?: string;
}

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
  constructor(readonly status: number, readonly code: string, message: string, readonly body: Record<string, unknown> = {}) {
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

export class CoordinatorClient {
  private readonly base: string;
  private readonly log: Logger;
  private readonly f: typeof fetch;

  constructor(private readonly o: CoordinatorClientOptions) {
    this.base = o.url.replace(/\/+$/, '');
    this.log = o.logger ?? silentLogger();
    this.f = o.fetch ?? fetch;
  }

  private async call<T>(method: string, path: string,
    opts: { body?: unknown; rawBody?: string; bearer?: string; signal?: AbortSignal } = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
    const body = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await this.f(this.base + path, { method, headers, body, signal: opts.signal });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const e = (json ?? {}) as Partial<ErrorBody>;
      const msg = `${method} ${path}: ${res.status} ${e.error ?? ''} ${e.message ?? text.slice(0, 200)}`.trim();
      if (res.status === 401 && opts.bearer && path.startsWith('/v1/peers')) throw new SessionExpiredError(401, e.error ?? 'unauthorized', msg);
      throw new CoordinatorHttpError(res.status, e.error ?? 'http-error', msg, (json ?? {}) as Record<string, unknown>);
    }
    return json as T;
  }

  async challenge(): Promise<ChallengeResponse> {
    return this.call('GET', '/v1/challenge');
  }

  /** Proves key possession over a fresh challenge and joins (or re-joins: same key, same vip). */
  async join(j: JoinOptions): Promise<JoinResponse> {
    const c = await this.challenge();
    const proof = proveKey(j.privateKey, j.publicKey, Buffer.from(c.ephemeralPublic, 'base64'), Buffer.from(c.nonce, 'base64'), 'join');
    return this.call('POST', '/v1/join', {
      body: {
        publicKey: Buffer.from(j.publicKey).toString('base64'), challengeId: c.id, proof: Buffer.from(proof).toString('base64'),
        ...(j.token ? { token: j.token } : {}), originalIp: j.originalIp, hostname: j.hostname,
      },
    });
  }

  /** One long-poll; `since` undefined → the full map. */
  async peers(sessionToken: string, since?: number, signal?: AbortSignal, waitMs?: number): Promise<PeersResponse> {
    const q = new URLSearchParams();
    if (since !== undefined) q.set('since', String(since));
    if (waitMs !== undefined) q.set('wait', String(waitMs));
    const qs = q.toString();
    return this.call('GET', `/v1/peers${qs ? '?' + qs : ''}`, { bearer: sessionToken, signal });
  }

  /**
   * Long-poll loop until `signal` aborts (resolves) or the session is refused (rejects with
   * SessionExpiredError: join again, then call watchPeers again). On network or server errors
   * it retries with exponential backoff and jitter; the last map stays valid meanwhile.
   * `initial` seeds the map (the peers from join) so deltas apply to it.
   */
  async watchPeers(sessionToken: string, since: number | undefined, onUpdate: (u: PeerMapUpdate) => void,
    signal: AbortSignal, opts: BackoffOptions & { initial?: Peer[] } = {}): Promise<void> {
    const map = new Map<string, Peer>((opts.initial ?? []).map((p) => [p.vip, p]));
    let version = since;
    let attempt = 0;
    this.log.info('runWatchPeers started');
    try {
      while (!signal.aborted) {
        let r: PeersResponse;
        try {
          r = await this.peers(sessionToken, version, signal);
        } catch (err) {
          if (signal.aborted) break;
          if (err instanceof SessionExpiredError) throw err;
          const wait = backoffDelay(attempt++, opts);
          this.log.warn({ err: (err as Error).message, retryMs: wait }, 'coordinator unreachable; keeping the last peer map');
          await sleep(wait, signal);
          continue;
        }
        attempt = 0;
        if (r.full) {
          map.clear();
          for (const p of r.peers) map.set(p.vip, p);
          version = r.version;
          onUpdate({ version, peers: map, full: true, upserts: r.peers, removals: [] });
        } else {
          version = r.version;
          if (r.upserts.length === 0 && r.removals.length === 0) continue;
          for (const p of r.upserts) map.set(p.vip, p);
          for (const v of r.removals) map.delete(v);
          onUpdate({ version, peers: map, full: false, upserts: r.upserts, removals: r.removals });
        }
      }
    } finally {
      this.log.info('runWatchPeers stopped');
    }
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

  async listNodes(): Promise<NodeView[]> {
    return (await this.call<{ nodes: NodeView[] }>('GET', '/v1/nodes', { bearer: this.adminBearer() })).nodes;
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
