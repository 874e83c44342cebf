/**
 * Secrets from files (`--token-file`, `--admin-token-file`, `--redis-password-file`, ...), so
 * they need not sit in process arguments (`ps`, /proc/PID/cmdline) or shell history.
 * A file others on the host may read or write is refused, as the agent refuses its key file.
 */
import { readFileSync, statSync } from 'node:fs';
import { CliError } from './shutdown';

/** Why `path` is not private (every user on the host may read or write it), or undefined. */
export function worldAccess(path: string, flag: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
  return mode & 0o007 ? `${flag} ${path} is accessible to every user (mode ${mode.toString(8)}): chmod 600 (or 640) it` : undefined;
}

/** The file's content without its trailing newline; a CliError naming `flag` otherwise. */
export function readSecretFile(path: string, flag: string): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode & 0o777;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (mode & 0o007) throw new CliError(`${flag} ${path} is accessible to every user (mode ${mode.toString(8)}): chmod 600 (or 640) it`);
  const secret = text.replace(/\r?\n$/, '');
  if (!secret) throw new CliError(`${flag} ${path} is empty`);
  if (/[\r\n]/.test(secret)) throw new CliError(`${flag} ${path}: want the secret on one line`);
  return secret;
}

/**
 * The value of a secret given either inline (`--X`, discouraged) or as a file (`--X-file`);
 * undefined when neither is given.
 */
export function secretFrom(inline: string | undefined, file: string | undefined, flag: string): string | undefined {
  if (inline !== undefined && file !== undefined) throw new CliError(`give either --${flag} or --${flag}-file, not both`);
  if (file !== undefined) return readSecretFile(file, `--${flag}-file`);
  return inline;
}
