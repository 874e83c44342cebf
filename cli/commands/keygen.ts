import type { CommandModule } from 'yargs';
import { readFileSync } from 'node:fs';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64, keyFromBase64 } from '../../protocol';

/** `isthmus keygen`: a new private key on stdout, like `wg genkey`. */
export const keygenCommand: CommandModule = {
  command: 'keygen',
  describe: 'Print a new private key (base64), like `wg genkey`',
  handler: () => {
    process.stdout.write(keyToBase64(generatePrivateKey()) + '\n');
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
