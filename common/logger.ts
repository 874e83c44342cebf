import pino from 'pino';

/**
 * Structured logging, one child logger per component (`isthmus:relay`, `isthmus:agent`, ...).
 * Field names are fixed in docs/LOGGING.md. Secrets never go into a log call: pass
 * `redactKey(k)` for a public key, never a private key or token.
 */
export type Logger = pino.Logger;

export interface LoggerOptions {
  /** @default 'info' (or ISTHMUS_LOG_LEVEL) */
  level?: string;
}

/** The levels `--log-level` takes, most verbose first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = typeof LOG_LEVELS[number];

let root: pino.Logger | undefined;
/** Set before the root logger exists (the CLI sets it from --log-level before a daemon starts). */
let wanted: string | undefined;

export function rootLogger(opts: LoggerOptions = {}): pino.Logger {
  if (!root) {
    root = pino({
      level: opts.level ?? wanted ?? process.env.ISTHMUS_LOG_LEVEL ?? 'info',
      base: undefined,
      redact: { paths: ['token', 'privateKey', 'adminToken', 'password', '*.token', '*.privateKey'], censor: '[redacted]' },
    }, pino.destination({ dest: 2, sync: true }));
  }
  return root;
}

/**
 * Change the level of every component's logger, now and later (children follow their root's
 * level unless given their own). Used at start (--log-level) and on SIGHUP.
 */
export function setLogLevel(level: LogLevel): void {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new Error(`log level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
  wanted = level;
  // Children (components and theirs) follow their root's level unless given their own.
  if (root) root.level = level;
}

/** The level in force (or to be, once the first logger is made). */
export function logLevel(): string {
  return root?.level ?? wanted ?? process.env.ISTHMUS_LOG_LEVEL ?? 'info';
}

export function forComponent(component: string): Logger {
  return rootLogger().child({ component });
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** First 8 characters of a base64 public key: enough to tell members apart in logs. */
export function redactKey(keyBase64: string): string {
  return keyBase64.slice(0, 8) + '…';
}
