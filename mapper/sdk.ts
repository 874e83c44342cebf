/**
 * `Mapper`: a typed client for the lookup API with its own TTL cache and in-flight request
 * coalescing (many concurrent `resolve(x)` calls cost one HTTP request).
 *
 *   const mapper = new Mapper({ url: 'http://127.0.0.1:7070' });
 *   const { virtualIp } = await mapper.resolve('10.1.2.3');   // throws UnknownOriginalIpError
 *   net.connect(port, virtualIp);
 */
import { InvalidIpError, MapperApiError, UnknownOriginalIpError } from './errors';
import type { MapResult } from './lookup-api';
import { isAddr } from '../common';

export type { MapResult };
export { UnknownOriginalIpError, InvalidIpError, MapperApiError };

export interface MapperOptions {
  /** base URL of the lookup API, e.g. `http://127.0.0.1:7070` */
  url: string;
  /** how long a found mapping is reused @default 5000 */
  ttlMs?: number;
  /** how long an unknown original IP is remembered @default 1000 */
  negativeTtlMs?: number;
  /** per request @default 2000 */
  timeoutMs?: number;
  /** @default 1024 */
  maxEntries?: number;
  /** injectable for tests @default globalThis.fetch */
  fetch?: typeof fetch;
  /** the mapper's credentials (`--socks-user` / `--socks-pass-file`), sent as HTTP Basic; required when it has them */
  auth?: { username: string; password: string };
}

export const DEFAULT_MAPPER_OPTIONS = { ttlMs: 5000, negativeTtlMs: 1000, timeoutMs: 2000, maxEntries: 1024 } as const;

type Slot = { at: number; value: MapResult | null };

export class Mapper {
  private readonly base: string;
  private readonly ttlMs: number;
  private readonly negTtlMs: number;
  private readonly timeoutMs: number;
  private readonly maxEntries: number;
  private readonly fetchFn: typeof fetch;
  private readonly authHeader: Record<string, string>;
  private readonly cache = new Map<string, Slot>();
  private readonly inflight = new Map<string, Promise<MapResult | null>>();

  constructor(opts: MapperOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    this.ttlMs = opts.ttlMs ?? DEFAULT_MAPPER_OPTIONS.ttlMs;
    this.negTtlMs = opts.negativeTtlMs ?? DEFAULT_MAPPER_OPTIONS.negativeTtlMs;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_MAPPER_OPTIONS.timeoutMs;
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAPPER_OPTIONS.maxEntries;
    this.fetchFn = opts.fetch ?? globalThis.fetch;
    this.authHeader = opts.auth ? { authorization: `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}` } : {};
  }

  /** The mapping for an original IP. Throws UnknownOriginalIpError, InvalidIpError, MapperApiError. */
  async resolve(originalIp: string): Promise<MapResult> {
    const r = await this.lookup('map', originalIp);
    if (!r) throw new UnknownOriginalIpError(originalIp);
    return r;
  }

  /** Like resolve, but null for an unknown original IP. */
  async tryResolve(originalIp: string): Promise<MapResult | null> {
    return this.lookup('map', originalIp);
  }

  /** The member that holds a virtual IP, or null. */
  async reverse(virtualIp: string): Promise<MapResult | null> {
    return this.lookup('reverse', virtualIp);
  }

  /** Many original IPs in one request (at most 256); unknown ones are absent from the map. */
  async resolveMany(originalIps: string[]): Promise<Map<string, MapResult>> {
    for (const ip of originalIps) if (!isAddr(ip)) throw new InvalidIpError(ip);
    const body = await this.request('/v1/map', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ips: originalIps }) }) as { found: MapResult[] };
    const out = new Map<string, MapResult>();
    for (const r of body.found) {
      out.set(r.originalIp, r);
      this.store('map:' + r.originalIp, r);
    }
    return out;
  }

  /** Forgets everything cached (e.g. after a dial to a cached address failed). */
  clear(originalIp?: string): void {
    if (originalIp === undefined) this.cache.clear();
    else this.cache.delete('map:' + originalIp);
  }

  private lookup(kind: 'map' | 'reverse', ip: string): Promise<MapResult | null> {
    if (!isAddr(ip)) return Promise.reject(new InvalidIpError(ip));
    const key = `${kind}:${ip}`;
    const slot = this.cache.get(key);
    if (slot && Date.now() - slot.at < (slot.value ? this.ttlMs : this.negTtlMs)) return Promise.resolve(slot.value);
    const cur = this.inflight.get(key);
    if (cur) return cur;
    const p = this.request(`/v1/${kind}/${ip}`, { method: 'GET' })
      .then((v) => { const r = v as MapResult | null; this.store(key, r); return r; })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private store(key: string, value: MapResult | null): void {
    this.cache.delete(key);
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(key, { at: Date.now(), value });
  }

  /** JSON body for 200, null for 404; everything else is a MapperApiError. */
  private async request(path: string, init: RequestInit): Promise<unknown> {
    let res: Response;
    try {
      res = await this.fetchFn(this.base + path, { ...init, headers: { ...(init?.headers as Record<string, string> | undefined), ...this.authHeader }, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new MapperApiError(`mapper API unreachable at ${this.base}: ${(err as Error).message}`);
    }
    if (res.status === 404) { await res.body?.cancel(); return null; }
    const text = await res.text();
    if (res.status !== 200) {
      let reason = text.slice(0, 200);
      try { reason = (JSON.parse(text) as { reason?: string }).reason ?? reason; } catch { /* not JSON */ }
      throw new MapperApiError(`mapper API ${path} answered ${res.status}: ${reason}`, res.status);
    }
    return JSON.parse(text);
  }
}
