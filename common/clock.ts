/**
 * Time source injected into every state machine, so tests drive timers without sleeping.
 * `now()` is monotonic milliseconds; `wallMs()` is Unix time in milliseconds (TAI64N, TTLs).
 */
export interface Clock {
  now(): number;
  wallMs(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallMs: () => Date.now(),
};

/** A clock that moves only when a test says so. */
export class ManualClock implements Clock {
  constructor(private monotonicMs = 0, private wallOffsetMs = 1_700_000_000_000) {}
  now(): number {
    return this.monotonicMs;
  }
  wallMs(): number {
    return this.wallOffsetMs + this.monotonicMs;
  }
  advance(ms: number): void {
    this.monotonicMs += ms;
  }
}
