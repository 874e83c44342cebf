/**
 * The value shapes flags share, parsed one way for every command: HOST:PORT addresses and
 * durations. Errors are plain Errors naming the flag (for yargs `.check`, which prints them).
 */
import { type DurationUnit, InvalidDurationError, isBareDuration, parseAddr, parseDuration, parseDurationMicros } from '../common';

export interface HostPortOptions {
  /** Host when only `PORT` or `:PORT` is given; without it a host is required. */
  defaultHost?: string;
  /** The host must be an IPv4 address (sockets that bind IPv4 only). */
  ipv4?: boolean;
  /** Shown in the error, e.g. 0.0.0.0:8080. */
  example?: string;
}

/** "HOST:PORT" ("[v6]:PORT" too; "PORT"/":PORT" with a defaultHost) → parts; port 0 means "pick one". */
export function parseHostPort(value: unknown, flag: string, o: HostPortOptions = {}): { host: string; port: number } {
  // yargs makes a flag given twice an array: name the mistake instead of failing on it.
  if (typeof value !== 'string') throw new Error(`${flag} takes one HOST:PORT, got ${JSON.stringify(value)}`);
  const m = /^(?:(\[[^\]]*\]|[^:[\]]*):)?(\d{1,5})$/.exec(value.trim());
  const host = m?.[1] ? m[1].replace(/^\[|\]$/g, '') : o.defaultHost;
  if (!m || !host || (m[1] === undefined && o.defaultHost === undefined)) {
    throw new Error(`${flag} must be HOST:PORT (e.g. ${o.example ?? '0.0.0.0:9100'})${o.defaultHost !== undefined ? ', :PORT or PORT' : ''}, got ${JSON.stringify(value)}`);
  }
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`${flag}: port ${port} is out of range 0-65535`);
  if (o.ipv4) {
    try {
      parseAddr(host);
    } catch {
      throw new Error(`${flag}: host must be an IPv4 address, got ${JSON.stringify(host)}`);
    }
  }
  return { host, port };
}

export interface DurationOptions {
  /** Unit of a bare number, the flag's unit before durations took one (deprecated, warned). */
  bare: DurationUnit;
  min?: number;
  max?: number;
}

const warned = new Set<string>();

/**
 * A duration flag (`250ms`, `10s`, `5m`, `24h`) in milliseconds. A bare number is read in the
 * flag's old unit, with a warning (once per flag) that asks for the unit.
 */
export function durationFlag(value: unknown, flag: string, o: DurationOptions): number {
  let ms: number;
  try {
    if (typeof value !== 'string' && typeof value !== 'number') throw new InvalidDurationError('');
    ms = parseDuration(value, o.bare);
  } catch (err) {
    if (!(err instanceof InvalidDurationError)) throw err;
    throw new Error(`${flag} must be a duration like 250ms, 10s, 5m, 24h; got ${JSON.stringify(value)}`);
  }
  const range = (v: number) => `${v % 1000 === 0 && v >= 1000 ? `${v / 1000}s` : `${v}ms`}`;
  if ((o.min !== undefined && ms < o.min) || (o.max !== undefined && ms > o.max)) {
    throw new Error(`${flag} must be between ${range(o.min ?? 0)} and ${o.max !== undefined ? range(o.max) : 'any'}, got ${JSON.stringify(value)}`);
  }
  if (isBareDuration(value) && !warned.has(flag)) {
    warned.add(flag);
    process.stderr.write(`isthmus: warning: ${flag} ${value}: a number without a unit is read as ${o.bare === 's' ? 'seconds' : o.bare === 'ms' ? 'milliseconds' : o.bare} (deprecated): write ${value}${o.bare}\n`);
  }
  return ms;
}

/** `--busy-poll`: the addon's busy-poll budget in microseconds (0: off), at most 1ms. */
export function busyPollFlag(value: unknown, flag = '--busy-poll'): number {
  let us: number;
  try {
    if (typeof value !== 'string' && typeof value !== 'number') throw new InvalidDurationError('');
    us = parseDurationMicros(value);
  } catch (err) {
    if (!(err instanceof InvalidDurationError)) throw err;
    throw new Error(`${flag} must be a duration like 50us or 0.1ms (0: off); got ${JSON.stringify(value)}`);
  }
  if (us > 1000) throw new Error(`${flag} must be at most 1ms (it is a spin after traffic, not a sleep), got ${JSON.stringify(value)}`);
  return us;
}

/** The default of `--busy-poll` on the agent and the relay (bench/README.md "busy-poll"). */
export const DEFAULT_BUSY_POLL = '0';

/** `--busy-poll` as the agent and the relay declare it. */
export const BUSY_POLL_OPTION = {
  type: 'string',
  default: DEFAULT_BUSY_POLL,
  describe: 'After a packet, keep polling the TUN and UDP sockets without sleeping for this long (e.g. 50us; at most 1ms; 0: off), '
    + 'so a reply that follows soon is handled without an epoll wake-up; never spins when idle (native addon only)',
} as const;
