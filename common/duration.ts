/**
 * Durations, the one parser for every flag, config key and API field: `250ms`, `10s`, `15m`,
 * `24h`, `7d` (a decimal number and one unit). A bare number is read in `bareUnit` (seconds
 * unless told): the API's `ttl` takes bare seconds; a command-line flag reports a bare number as
 * deprecated (cli/durations.ts), so every documented value carries its unit.
 */
export const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export type DurationUnit = keyof typeof DURATION_UNITS;

export class InvalidDurationError extends Error {
  override name = 'InvalidDurationError';
  readonly code = 'invalid-duration';
}

const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;

/** Milliseconds. Throws InvalidDurationError on anything else (negative, empty, unknown unit). */
export function parseDuration(text: string | number, bareUnit: DurationUnit = 's'): number {
  if (typeof text === 'number') {
    if (!Number.isFinite(text) || text < 0) throw new InvalidDurationError(`not a duration: ${text}`);
    return Math.round(text * DURATION_UNITS[bareUnit]);
  }
  const m = PATTERN.exec(String(text).trim());
  if (!m) throw new InvalidDurationError(`not a duration (use e.g. 250ms, 30s, 15m, 1h, 7d): ${text}`);
  return Math.round(Number(m[1]) * DURATION_UNITS[(m[2] as DurationUnit | undefined) ?? bareUnit]);
}

/** True when `text` is a number without a unit ("10", 10). */
export function isBareDuration(text: string | number): boolean {
  return typeof text === 'number' || /^\d+(?:\.\d+)?$/.test(String(text).trim());
}

/** Milliseconds as the shortest exact text: 250 → "250ms", 10000 → "10s", 86400000 → "1d". */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms !== 0 && ms % DURATION_UNITS[unit] === 0) return `${ms / DURATION_UNITS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

const MICROS_PATTERN = /^(\d+(?:\.\d+)?)(us|µs|ms|s)$/;
const MICROS_PER = { us: 1, 'µs': 1, ms: 1000, s: 1_000_000 } as const;

/**
 * Microseconds, for budgets finer than the millisecond (`50us`, `50µs`, `0.2ms`, `0`; a unit
 * is required except for 0). Throws InvalidDurationError on anything else.
 */
export function parseDurationMicros(text: string | number): number {
  if (text === 0 || String(text).trim() === '0') return 0;
  const m = MICROS_PATTERN.exec(String(text).trim());
  if (!m) throw new InvalidDurationError(`not a duration in microseconds (use e.g. 50us, 0.2ms, or 0): ${text}`);
  return Math.round(Number(m[1]) * MICROS_PER[m[2] as keyof typeof MICROS_PER]);
}
