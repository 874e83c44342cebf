/**
 * A token bucket per source, for handshake messages (wireguard-go `ratelimiter`, paper
 * §5.4.7): checked after mac1 (and, under load, mac2) and BEFORE any X25519, so one source
 * flooding initiations costs us at most `burst` + `perSecond` × seconds Diffie-Hellman
 * operations, however fast it sends.
 *
 *   bucket of a source: up to `burst` tokens, refilled at `perSecond`; a message takes one.
 *   table: at most `maxSources` buckets. A bucket idle for `idleMs` is full again and is
 *          forgotten (swept at most once per `idleMs`, from allow(); no timer of its own).
 *          When the table is full even after a sweep, a NEW source is refused (fail closed:
 *          the sources already known keep their buckets).
 *
 * Sources are numbers the caller chooses (a safe integer: e.g. an IPv4 address, or a relay
 * overlay address in a separate range); no strings, no allocation per message once a
 * source's bucket exists. Time comes only from the injected clock (monotonic ms).
 */
import type { Clock } from '../common';

/** wireguard-go: 20 handshake messages per second per source, bursts of 5. */
export const RATE_LIMIT_PER_SECOND = 20;
export const RATE_LIMIT_BURST = 5;
/** Buckets kept at most (wireguard-go keeps an unbounded map swept every second). */
export const RATE_LIMIT_MAX_SOURCES = 8192;

export interface RateLimiterOptions {
  perSecond?: number;
  burst?: number;
  maxSources?: number;
}

/** One message, in token units: a millisecond refills `perSecond` units, so a whole token is
 *  exactly TOKEN units and the arithmetic stays exact for integer rates (no 1000/rate). */
const TOKEN = 1000;

interface Bucket {
  /** Units (TOKEN per message). */
  tokens: number;
  last: number;
}

export class RateLimiter {
  private readonly perSecond: number;
  private readonly maxTokens: number;
  private readonly maxSources: number;
  /** A bucket idle this long is full: forgetting it changes nothing. */
  private readonly idleMs: number;
  private readonly table = new Map<number, Bucket>();
  private lastSweep: number;

  constructor(private readonly clock: Pick<Clock, 'now'>, opts: RateLimiterOptions = {}) {
    const perSecond = opts.perSecond ?? RATE_LIMIT_PER_SECOND;
    const burst = opts.burst ?? RATE_LIMIT_BURST;
    const maxSources = opts.maxSources ?? RATE_LIMIT_MAX_SOURCES;
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new RangeError(`perSecond must be a positive number, got ${perSecond}`);
    if (!Number.isInteger(burst) || burst < 1) throw new RangeError(`burst must be an integer >= 1, got ${burst}`);
    if (!Number.isInteger(maxSources) || maxSources < 1) throw new RangeError(`maxSources must be an integer >= 1, got ${maxSources}`);
    this.perSecond = perSecond;
    this.maxTokens = TOKEN * burst;
    this.maxSources = maxSources;
    this.idleMs = Math.max(1000, (1000 * burst) / perSecond);
    this.lastSweep = clock.now();
  }

  /** One message from `source`: true if it may be processed (a token was taken). */
  allow(source: number): boolean {
    const now = this.clock.now();
    if (now - this.lastSweep >= this.idleMs) this.sweep(now);
    const b = this.table.get(source);
    if (b) {
      b.tokens = Math.min(this.maxTokens, b.tokens + Math.max(0, now - b.last) * this.perSecond);
      b.last = now;
      if (b.tokens < TOKEN) return false;
      b.tokens -= TOKEN;
      return true;
    }
    if (this.table.size >= this.maxSources) {
      this.sweep(now);
      if (this.table.size >= this.maxSources) return false;
    }
    this.table.set(source, { tokens: this.maxTokens - TOKEN, last: now });
    return true;
  }

  /** Sources with a bucket now (for metrics and tests). */
  get size(): number {
    return this.table.size;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [k, b] of this.table) if (now - b.last >= this.idleMs) this.table.delete(k);
  }
}
