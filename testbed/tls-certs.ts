/**
 * TLS material for a test or demo coordinator, made with the openssl CLI into `dir`: a CA,
 * a server certificate it signs for the given IP addresses, and a coordinator signing key.
 *
 *   const m = makeCoordinatorTls(dir, ['127.0.0.1']);
 *   isthmus coordinator --tls-cert m.cert --tls-key m.key --signing-key m.signingKey
 *   isthmus agent --coordinator https://127.0.0.1:PORT --coordinator-ca m.ca
 *
 * Throwaway: 2-day certificates, keys mode 0600, in a directory the caller removes.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CoordinatorTls {
  /** CA certificate (PEM): what members and admin commands get as --coordinator-ca. */
  ca: string;
  caKey: string;
  /** Server certificate and key (PEM): the coordinator's --tls-cert, --tls-key. */
  cert: string;
  key: string;
  /** Coordinator signing key file (0600) and its public key (base64). */
  signingKey: string;
  signingPublicKey: string;
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`);
  }
}

/** A CA (its own, or `issuer`'s) and a server certificate for `ips` signed by it; `name` prefixes the files. */
export function makeCoordinatorTls(dir: string, ips: string[], o: { name?: string; issuer?: Pick<CoordinatorTls, 'ca' | 'caKey'> } = {}): CoordinatorTls {
  mkdirSync(dir, { recursive: true });
  const name = o.name ?? 'coordinator';
  const f = (s: string) => join(dir, `${name}-${s}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  let ca = o.issuer?.ca;
  let caKey = o.issuer?.caKey;
  if (!ca || !caKey) {
    ca = f('ca.pem');
    caKey = f('ca.key');
    openssl(['req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '2', '-subj', `/CN=isthmus test CA ${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    chmodSync(caKey, 0o600);
  }
  const cert = f('cert.pem');
  const key = f('key.pem');
  const csr = f('req.csr');
  const ext = f('ext.cnf');
  writeFileSync(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`
    + `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}\n`);
  openssl(['req', ...ec, '-keyout', key, '-out', csr, '-subj', `/CN=isthmus coordinator ${name}`]);
  chmodSync(key, 0o600);
  openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  // The same key `isthmus keygen --signing-key` writes: Ed25519, PKCS#8 PEM; the public key raw, base64.
  const sk = generateKeyPairSync('ed25519');
  const signingKey = f('signing.key');
  writeFileSync(signingKey, sk.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const signingPublicKey = sk.publicKey.export({ format: 'jwk' }).x!;
  return { ca, caKey, cert, key, signingKey, signingPublicKey: Buffer.from(signingPublicKey, 'base64url').toString('base64') };
}
