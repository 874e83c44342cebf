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

let root: pino.Logger | undefined;

export function rootLogger(opts: LoggerOptions = {}): pino.Logger {
  if (!root) {
    root = pino({
      level: opts.level ?? process.env.ISTHMUS_LOG_LEVEL ?? 'info',
      base: undefined,
      redact: { paths: ['token', 'privateKey', 'adminToken', 'password', '*.token', '*.privateKey'], censor: '[redacted]' },
    }, pino.destination({ dest: 2, sync: true }));
  }
  return root;
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
