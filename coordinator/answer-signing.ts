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
 *
 * Batches. Answers that leave in the same turn of the event loop (every waiter one change woke)
 * share one signature: each answer is a leaf
 *
 *   leaf  = SHA-256(0x00 "isthmus-answer-leaf-v1" \n route \n member \n since \n nonce \n SHA-256(body))
 *   node  = SHA-256(0x01 left right)
 *
 * of a Merkle tree whose root is signed as "isthmus-answer-batch-v1" \n root. The answer carries
 * the signature and its path to the root (`isthmus-signature-proof`: one byte side + 32 bytes
 * hash per level, base64). The member recomputes its own leaf from its own context, folds the
 * path and checks the signature: the same binding (route, member, since, nonce, body, key) as a
 * signature of its own. A batch of one is signed alone (no proof header). Identical bodies are
 * hashed once per batch. Stream frames (FrameContext below) are leaves of the same batches, with
 * their own leaf prefix "isthmus-frame-leaf-v1" (no frame can pass for an answer, nor the reverse).
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

export const NONCE_HEADER = 'isthmus-nonce';
export const SIGNATURE_HEADER = 'isthmus-signature';
/** The signing public key (base64, raw 32 bytes), so a member can pin it on first join. */
export const SIGNING_KEY_HEADER = 'isthmus-signing-key';
/** A batch signature's path from the answer's leaf to the signed root (see the file comment). */
export const PROOF_HEADER = 'isthmus-signature-proof';
/** Most levels a proof may have (2^32 answers in one batch is far beyond any turn of the loop). */
const MAX_PROOF_LEVELS = 32;

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** `stream`: the opening frame of a peer-map stream (peer-stream.ts), bound to the member's nonce like an answer. */
export type SignedRoute = 'join' | 'peers' | 'stream';

export interface AnswerContext {
  route: SignedRoute;
  member: string;
  since: string;
  nonce: string;
}

/**
 * A later frame of a peer-map stream (peer-stream.ts): not bound to a nonce (one frame goes to
 * every member of a view), but to what the receiving member holds and checks itself:
 *
 *   "isthmus-frame-v1" \n scope \n from \n body
 *
 *   scope  "view:<id>" (every member of one tag set: the same bytes for all of them) or
 *          "member:<vip>" (this member only: its own change, a policy change)
 *   from   the version the member holds; the body names the version it leads to (`to`)
 */
export interface FrameContext {
  scope: string;
  from: string;
}

export type SignedContext = AnswerContext | FrameContext;

function isFrame(c: SignedContext): c is FrameContext {
  return 'scope' in c;
}

/** The context line(s) of an answer or a frame, each field checked for newlines. */
function contextText(c: SignedContext, leaf: boolean): string {
  if (isFrame(c)) {
    for (const v of [c.scope, c.from]) if (v.includes('\n')) throw new Error('frame context field holds a newline');
    return `isthmus-frame${leaf ? '-leaf' : ''}-v1\n${c.scope}\n${c.from}\n`;
  }
  for (const v of [c.member, c.since, c.nonce]) if (v.includes('\n')) throw new Error('answer context field holds a newline');
  return `isthmus-answer${leaf ? '-leaf' : ''}-v1\n${c.route}\n${c.member}\n${c.since}\n${c.nonce}\n`;
}

export function signedMessage(c: SignedContext, body: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from(contextText(c, false)), Buffer.from(body)]);
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

export function signAnswer(key: KeyObject, c: SignedContext, body: string | Buffer): string {
  return sign(null, signedMessage(c, body), key).toString('base64');
}

export function verifyAnswer(publicKey: KeyObject, c: SignedContext, body: string | Buffer, signature: string): boolean {
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64) return false;
  return verify(null, signedMessage(c, body), publicKey, sig);
}

function sha256(...parts: (string | Buffer)[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

function checkContext(c: SignedContext): void {
  contextText(c, true);
}

/** A batch answer's (or frame's) leaf: its context and the hash of its body. */
export function answerLeaf(c: SignedContext, bodyHash: Buffer): Buffer {
  return sha256(LEAF, contextText(c, true), bodyHash);
}

function batchMessage(root: Buffer): Buffer {
  return Buffer.concat([Buffer.from('isthmus-answer-batch-v1\n'), root]);
}

/** One signed answer: the signature, and for a batch of more than one the path to the root. */
export interface AnswerSignature {
  signature: string;
  proof?: string;
}

/**
 * Sign many answers with one signature: a Merkle tree over their leaves (file comment).
 * `bodies[i]` may be the same string for many answers (hashed once).
 */
export function signBatch(key: KeyObject, items: Array<{ context: SignedContext; body: string | Buffer }>): AnswerSignature[] {
  if (items.length === 1) return [{ signature: signAnswer(key, items[0].context, items[0].body) }];
  const bodyHashes = new Map<string | Buffer, Buffer>();
  // levels[0]: the leaves; levels[l + 1][k] = node(levels[l][2k], levels[l][2k + 1]), or
  // levels[l][2k] carried up as is when it has no right sibling. The root is the last level's one.
  const levels: Buffer[][] = [items.map(({ context, body }) => {
    let h = bodyHashes.get(body);
    if (!h) {
      h = sha256(body);
      bodyHashes.set(body, h);
    }
    return answerLeaf(context, h);
  })];
  for (let level = levels[0]; level.length > 1;) {
    const next: Buffer[] = new Array(Math.ceil(level.length / 2));
    for (let k = 0; k < next.length; k++) next[k] = 2 * k + 1 < level.length ? sha256(NODE, level[2 * k], level[2 * k + 1]) : level[2 * k];
    levels.push(next);
    level = next;
  }
  const signature = sign(null, batchMessage(levels[levels.length - 1][0]), key).toString('base64');
  // Each leaf's path: at every level its sibling (side 0: the sibling is on the right), if any.
  const path = Buffer.alloc(33 * (levels.length - 1));
  return items.map((_, i) => {
    let n = 0;
    for (let l = 0, idx = i; l < levels.length - 1; l++, idx >>= 1) {
      const sib = idx ^ 1;
      if (sib >= levels[l].length) continue;
      path[n] = idx & 1;
      levels[l][sib].copy(path, n + 1);
      n += 33;
    }
    return { signature, proof: path.toString('base64', 0, n) };
  });
}

/** Check an answer signed alone (no proof) or in a batch (proof: its path to the signed root). */
export function verifySignedAnswer(publicKey: KeyObject, c: SignedContext, body: string | Buffer, signature: string, proof?: string): boolean {
  if (proof === undefined) return verifyAnswer(publicKey, c, body, signature);
  const sig = Buffer.from(signature, 'base64');
  const path = Buffer.from(proof, 'base64');
  if (sig.length !== 64 || path.length === 0 || path.length % 33 !== 0 || path.length / 33 > MAX_PROOF_LEVELS) return false;
  if (path.toString('base64') !== proof.trim()) return false;
  let h: Buffer;
  try {
    h = answerLeaf(c, sha256(body));
  } catch {
    return false;
  }
  for (let off = 0; off < path.length; off += 33) {
    const side = path[off];
    const sib = path.subarray(off + 1, off + 33);
    if (side === 0) h = sha256(NODE, h, sib);
    else if (side === 1) h = sha256(NODE, sib, h);
    else return false;
  }
  return verify(null, batchMessage(h), publicKey, sig);
}

/**
 * Signs answers in batches: every `sign` made in one turn of the event loop shares one Ed25519
 * signature (signBatch), made at the next `setImmediate`. The waiters one change wakes answer
 * in the same turn, so a change costs one signature per coordinator, not one per waiter.
 */
export class BatchSigner {
  private queue: Array<{ context: SignedContext; body: string | Buffer; done: (s: AnswerSignature) => void; fail: (e: Error) => void }> = [];
  /** Signatures made and answers they covered (metrics, bench). */
  signatures = 0;
  answers = 0;

  constructor(private readonly key: KeyObject) {}

  sign(context: SignedContext, body: string | Buffer): Promise<AnswerSignature> {
    checkContext(context);
    return new Promise((done, fail) => {
      if (this.queue.length === 0) setImmediate(() => this.flush());
      this.queue.push({ context, body, done, fail });
    });
  }

  private flush(): void {
    const q = this.queue;
    this.queue = [];
    if (q.length === 0) return;
    try {
      const sigs = signBatch(this.key, q);
      this.signatures++;
      this.answers += q.length;
      q.forEach((x, i) => x.done(sigs[i]));
    } catch (err) {
      for (const x of q) x.fail(err as Error);
    }
  }
}
