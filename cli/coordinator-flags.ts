/**
 * How every command that talks to a coordinator (`agent`, `token`, `node`, `policy`) reaches
 * it: https:// verified against --coordinator-ca (else Node's default CA store), plain http://
 * only with --insecure-coordinator, which logs a warning each run (docs/SECURITY.md).
 */
import { readFileSync } from 'node:fs';

export interface CoordinatorTlsArgs {
  coordinator?: string;
  'coordinator-ca'?: string;
  'insecure-coordinator'?: boolean;
}

export const COORDINATOR_CA_OPTION = {
  type: 'string',
  describe: 'PEM file of the CA(s) the coordinator\'s TLS certificate must chain to (default: Node\'s CA store, plus NODE_EXTRA_CA_CERTS)',
} as const;

export const INSECURE_COORDINATOR_OPTION = {
  type: 'boolean',
  default: false,
  describe: 'Allow a plain http:// coordinator (and, for an agent without a pinned key, unsigned peer maps): anyone on the path can read and change them. Tests only',
} as const;

/** Throws (for yargs .check) when the URL is malformed, or http:// without --insecure-coordinator. */
export function checkCoordinatorFlags(a: CoordinatorTlsArgs): void {
  const url = a.coordinator;
  if (!url) return;
  if (!/^https?:\/\/[^/\s]+\/?$/.test(url)) throw new Error(`--coordinator must be https://HOST:PORT, got ${JSON.stringify(url)}`);
  if (url.startsWith('http://') && !a['insecure-coordinator']) {
    throw new Error(`--coordinator ${url} is plain http://: anyone on the path could read the tokens and change the peer maps. `
      + 'Use https:// (the coordinator\'s --tls-cert/--tls-key), or pass --insecure-coordinator to allow it anyway');
  }
  if (a['coordinator-ca'] !== undefined && url.startsWith('http://')) throw new Error('--coordinator-ca needs an https:// --coordinator');
}

/** The CA to verify against (read now; a bad file names the flag), after warning about an insecure setup. */
export function coordinatorCa(a: CoordinatorTlsArgs, warn: (msg: string) => void): Buffer | undefined {
  if (a['insecure-coordinator']) {
    warn(a.coordinator?.startsWith('http://')
      ? `--insecure-coordinator: talking to ${a.coordinator} over plain HTTP; anyone on the path can read tokens and change peer maps`
      : '--insecure-coordinator: unsigned peer maps are accepted until a coordinator signing key is pinned');
  }
  const file = a['coordinator-ca'];
  if (file === undefined) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read --coordinator-ca ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!pem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) throw new Error(`--coordinator-ca ${file}: no PEM certificate in it`);
  return pem;
}
