/**
 * Process lifecycle for the daemons: one ordered list of cleanups run once on SIGINT,
 * SIGTERM or a fatal error, and a CliError for messages the user should see without a
 * stack trace.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly code = 'ERR_CLI';
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

const cleanups: Array<() => unknown> = [];
let shuttingDown = false;

export function onShutdown(fn: () => unknown): void {
  cleanups.push(fn);
}

export async function shutdown(exitCode: number): Promise<never> {
  if (!shuttingDown) {
    shuttingDown = true;
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`isthmus: cleanup failed: ${(err as Error).message}\n`);
      }
    }
  }
  process.exit(exitCode);
}

export function installSignalHandlers(): void {
  process.once('SIGINT', () => void shutdown(130));
  process.once('SIGTERM', () => void shutdown(143));
}
