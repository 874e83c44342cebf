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
