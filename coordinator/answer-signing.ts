/**
 * Signed coordinator answers (docs/SECURITY.md). A coordinator holding a signing key (Ed25519,
 * shared by every coordinator of a deployment) signs each join and peer-map answer it gives a
 * request that carries a nonce. The signature covers the answer's exact body bytes and a
 * context the member checks from its own side of the exchange:
 *
 *   "isthmus-answer-v1" \n route \n member \n since \n nonce \n body
 *
 *   route   "join" or "peers"
 *   member  join: the member's public key (from its request); peers: its vip (from its session)
 *   since   the `since` the request asked for ("-" for a full map)
 *   nonce   the member's fresh random `isthmus-nonce` header
 *
 * So an answer cannot be replayed (the nonce is fresh), moved to another member (member), or
 * passed off as the answer to another question (route, since); a TLS-terminating middlebox can
 * read it but not change a byte of it without the private key.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

export const NONCE_HEADER = 'isthmus-nonce';
export const SIGNATURE_HEADER = 'isthmus-signature';
/** The signing public key (base64, raw 32 bytes), so a member can pin it on first join. */
export const SIGNING_KEY_HEADER = 'isthmus-signing-key';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export type SignedRoute = 'join' | 'peers';

export interface AnswerContext {
  route: SignedRoute;
  member: string;
  since: string;
  nonce: string;
}

export function signedMessage(c: AnswerContext, body: string | Buffer): Buffer {
  for (const v of [c.member, c.since, c.nonce]) if (v.includes('\n')) throw new Error('answer context field holds a newline');
  return Buffer.concat([Buffer.from(`isthmus-answer-v1\n${c.route}\n${c.member}\n${c.since}\n${c.nonce}\n`), Buffer.from(body)]);
}

export function newNonce(): string {
  return randomBytes(18).toString('base64url');
}

/** A nonce as members send it: 16–64 base64url characters. */
export function isNonce(s: string): boolean {
  return /^[A-Za-z0-9_-]{16,64}$/.test(s);
}

/** A new signing key as PKCS#8 PEM (the `--signing-key` file) and its public key (base64, 32 bytes). */
export function generateSigningKey(): { pem: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, publicKey: signingPublicKey(privateKey) };
}

/** The base64 raw public key of an Ed25519 private (or public) key. */
export function signingPublicKey(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ type: 'spki', format: 'der' });
  return der.subarray(ED25519_SPKI_PREFIX.length).toString('base64');
}

/** A pinned public key (base64 of 32 bytes) as a KeyObject; throws with a reason. */
export function parseSigningPublicKey(b64: string): KeyObject {
  const raw = Buffer.from(b64.trim(), 'base64');
  if (raw.length !== 32 || raw.toString('base64') !== b64.trim()) throw new Error('not a base64 Ed25519 public key (32 bytes)');
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** Read a `--signing-key` file: PKCS#8 PEM Ed25519, not readable by group or others. */
export function loadSigningKey(path: string): KeyObject {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) throw new Error(`${path} is readable by others (mode ${mode.toString(8)}): chmod 600 it`);
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(path));
  } catch (err) {
    throw new Error(`${path}: not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${path}: an Ed25519 key is needed (isthmus keygen --signing-key FILE), got ${key.asymmetricKeyType}`);
  return key;
}

export function signAnswer(key: KeyObject, c: AnswerContext, body: string | Buffer): string {
  return sign(null, signedMessage(c, body), key).toString('base64');
}

export function verifyAnswer(publicKey: KeyObject, c: AnswerContext, body: string | Buffer, signature: string): boolean {
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64) return false;
  return verify(null, signedMessage(c, body), publicKey, sig);
}
