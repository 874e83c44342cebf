/**
 * Rate limit for the relay's unsolicited replies (REAUTH, UNREACHABLE): at most one per
 * key (a 4-tuple or a destination) per `intervalMs`, and a global token bucket so a flood
 * from many spoofed sources cannot turn the relay into a reflector. Pure: time is passed in.
 */
export interface RateLimiterOptions {
  /** @default 1000 */
  intervalMs?: number;
  /** Global replies per second. @default 200 */
  perSecond?: number;
  /** Keys remembered before the table is reset. @default 4096 */
  maxKeys?: number;
}

export class RateLimiter {
  private readonly last = new Map<number, number>();
  private tokens: number;
  private refilledAt: number;
  private readonly intervalMs: number;
  private readonly perSecond: number;
  private readonly maxKeys: number;

  constructor(now: number, opts: RateLimiterOptions = {}) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.perSecond = opts.perSecond ?? 200;
    this.maxKeys = opts.maxKeys ?? 4096;
    this.tokens = this.perSecond;
    this.refilledAt = now;
  }

  /** True when a reply for `key` may be sent now (and records it). */
  allow(key: number, now: number): boolean {
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < this.intervalMs) return false;
    const elapsed = now - this.refilledAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.perSecond, this.tokens + (elapsed * this.perSecond) / 1000);
      this.refilledAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    if (this.last.size >= this.maxKeys) this.last.clear();
    this.last.set(key, now);
    return true;
  }
}

/**
 * Token buckets per key (source IP) plus one global bucket, for expensive work done for
 * unauthenticated senders (an AUTH's X25519 proof check). Pure: time is passed in.
 */
export interface WorkLimiterOptions {
  /** Per-key rate and burst. @default 50/s, burst 100 */
  perKeyPerSecond?: number;
  perKeyBurst?: number;
  /** Global rate and burst. @default 300/s, burst 300 */
  globalPerSecond?: number;
  globalBurst?: number;
  /** @default 4096 */
  maxKeys?: number;
}

export class WorkLimiter {
  private readonly keys = new Map<number, { tokens: number; at: number }>();
  private global: { tokens: number; at: number };
  private readonly o: Required<WorkLimiterOptions>;

  constructor(now: number, opts: WorkLimiterOptions = {}) {
    this.o = { perKeyPerSecond: 50, perKeyBurst: 100, globalPerSecond: 300, globalBurst: 300, maxKeys: 4096, ...opts };
    this.global = { tokens: this.o.globalBurst, at: now };
  }

  private static refill(b: { tokens: number; at: number }, now: number, rate: number, burst: number): void {
    if (now > b.at) {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
      b.at = now;
    }
  }

  /** Take one unit of work for `key`; false when the key or the relay is over budget. */
  take(key: number, now: number): boolean {
    let b = this.keys.get(key);
    if (!b) {
      if (this.keys.size >= this.o.maxKeys) this.keys.clear();
      b = { tokens: this.o.perKeyBurst, at: now };
      this.keys.set(key, b);
    }
    WorkLimiter.refill(b, now, this.o.perKeyPerSecond, this.o.perKeyBurst);
    WorkLimiter.refill(this.global, now, this.o.globalPerSecond, this.o.globalBurst);
    if (b.tokens < 1 || this.global.tokens < 1) return false;
    b.tokens -= 1;
    this.global.tokens -= 1;
    return true;
  }
}
