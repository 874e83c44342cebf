import type { CommandModule } from 'yargs';
import { readFileSync, writeFileSync } from 'node:fs';
import { generateSigningKey } from '../../coordinator';
import { CliError } from '../shutdown';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64, keyFromBase64 } from '../../protocol';

/** `isthmus keygen`: a new private key on stdout, like `wg genkey`. */
export const keygenCommand: CommandModule<object, { 'signing-key'?: string }> = {
  command: 'keygen',
  describe: 'Print a new private key (base64), like `wg genkey`; or, with --signing-key FILE, make a coordinator signing key',
  builder: (y) => y.option('signing-key', { type: 'string',
    describe: 'Write a new coordinator signing key (Ed25519, PEM) to FILE (mode 0600, never overwritten) and print its public key '
      + '(for the agents\' --coordinator-pubkey). Give the same file to every coordinator of the deployment' }),
  handler: (a) => {
    if (a['signing-key'] === undefined) {
      process.stdout.write(keyToBase64(generatePrivateKey()) + '\n');
      return;
    }
    const k = generateSigningKey();
    try {
      writeFileSync(a['signing-key'], k.pem, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CliError(`cannot write --signing-key ${a['signing-key']}: ${code === 'EEXIST' ? 'it exists (never overwritten)' : code ?? (err as Error).message}`);
    }
    process.stdout.write(k.publicKey + '\n');
  },
};

/** `isthmus pubkey < private`: the public key of a private key on stdin, like `wg pubkey`. */
export const pubkeyCommand: CommandModule = {
  command: 'pubkey',
  describe: 'Read a private key on stdin, print its public key, like `wg pubkey`',
  handler: () => {
    const input = readFileSync(0, 'utf8').trim();
    process.stdout.write(keyToBase64(publicKeyFromPrivate(keyFromBase64(input))) + '\n');
  },
};
