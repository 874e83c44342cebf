/** Human durations for flags and the API: `500ms`, `30s`, `15m`, `1h`, `7d`, or bare seconds. */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export class InvalidDurationError extends Error {
  override name = 'InvalidDurationError';
  readonly code = 'invalid-duration';
}

/** Milliseconds. Throws InvalidDurationError on anything else (negative, empty, unknown unit). */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') {
    if (!Number.isFinite(text) || text < 0) throw new InvalidDurationError(`not a duration: ${text}`);
    return Math.round(text * 1000);
  }
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new InvalidDurationError(`not a duration (use e.g. 30s, 15m, 1h, 7d): ${text}`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 's']);
}
