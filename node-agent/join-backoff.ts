/**
 * How long the agent waits before its next join attempt: capped exponential backoff with full
 * jitter (a random wait in [0, min(cap, base·2^failures)], so a site of members re-joining
 * after an outage spreads out), a refusal that retrying soon cannot fix (a 4xx other than
 * 408/429: key removed, token spent) jumps to the cap, and a `Retry-After` from a 429 or 503
 * is a floor. Pure: `random` is injected, the caller sleeps.
 */
export const JOIN_BACKOFF_BASE_MS = 1_000;
export const JOIN_BACKOFF_CAP_MS = 60_000;
/** A Retry-After longer than this is taken as this (a broken or hostile header cannot park the agent). */
export const JOIN_RETRY_AFTER_MAX_MS = 10 * 60_000;

export interface JoinBackoffOptions {
  baseMs?: number;
  capMs?: number;
  /** [0, 1); tests inject. @default Math.random */
  random?: () => number;
}

/** What a failed attempt tells the backoff: an HTTP status and Retry-After (seconds), if any. */
export interface JoinFailure {
  status?: number;
  retryAfterSec?: number;
}

export class JoinBackoff {
  private failures = 0;
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly random: () => number;

  constructor(o: JoinBackoffOptions = {}) {
    this.baseMs = o.baseMs ?? JOIN_BACKOFF_BASE_MS;
    this.capMs = o.capMs ?? JOIN_BACKOFF_CAP_MS;
    this.random = o.random ?? Math.random;
  }

  /** The wait (ms) after this failure. */
  next(f: JoinFailure = {}): number {
    this.failures++;
    const permanent = f.status !== undefined && f.status >= 400 && f.status < 500 && f.status !== 408 && f.status !== 429;
    const ceiling = permanent ? this.capMs : Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.failures - 1, 30));
    // Full jitter; a permanent refusal waits at least half the cap.
    const jittered = permanent ? ceiling / 2 + this.random() * (ceiling / 2) : this.random() * ceiling;
    let wait = Math.floor(jittered);
    if ((f.status === 429 || f.status === 503) && f.retryAfterSec !== undefined && Number.isFinite(f.retryAfterSec) && f.retryAfterSec > 0) {
      wait = Math.max(wait, Math.min(f.retryAfterSec * 1000, JOIN_RETRY_AFTER_MAX_MS));
    }
    return wait;
  }

  /** A join succeeded: start from the base again. */
  reset(): void {
    this.failures = 0;
  }

  get attempts(): number {
    return this.failures;
  }
}

/** A Retry-After header value → seconds (delta-seconds or an HTTP date), or undefined. */
export function parseRetryAfter(value: string | null | undefined, nowMs = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v);
  if (!/GMT$/.test(v)) return undefined; // IMF-fixdate, e.g. "Sun, 29 Nov 2026 11:20:00 GMT"
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, Math.ceil((t - nowMs) / 1000));
}
