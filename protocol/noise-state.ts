/**
 * The generic Noise state objects (Noise spec rev 34 §5) for DH=25519, cipher=ChaChaPoly,
 * hash=BLAKE2s. WireGuard's handshake (handshake.ts) is Noise_IKpsk2 with the WireGuard
 * identifier as prologue, built on SymmetricState; HandshakeState here runs any supported
 * pattern from its name and exists so the layer can be checked against the cacophony
 * vectors (test/unit/protocol/noise-vectors.test.ts).
 */
import nacl from 'tweetnacl';
import { aeadOpen, aeadSeal, hash, HASH_LEN, kdf2, kdf3 } from './noise';

const EMPTY = new Uint8Array(0);

export class CipherState {
  n = 0n;
  constructor(public k: Buffer | undefined = undefined) {}
  hasKey(): boolean {
    return this.k !== undefined;
  }
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Buffer {
    if (!this.k) return Buffer.from(plaintext);
    return aeadSeal(this.k, this.n++, plaintext, ad);
  }
  /** Undefined on authentication failure; the nonce advances only on success. */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Buffer | undefined {
    if (!this.k) return Buffer.from(ciphertext);
    const pt = aeadOpen(this.k, this.n, ciphertext, ad);
    if (pt) this.n++;
    return pt;
  }
}

export class SymmetricState {
  readonly cs = new CipherState();
  constructor(public ck: Buffer, public h: Buffer) {}

  /** InitializeSymmetric: h = name padded to HASHLEN, or HASH(name) when longer; ck = h. */
  static initialize(protocolName: string): SymmetricState {
    const name = Buffer.from(protocolName, 'ascii');
    let h: Buffer;
    if (name.length <= HASH_LEN) {
      h = Buffer.alloc(HASH_LEN);
      name.copy(h);
    } else {
      h = hash(name);
    }
    return new SymmetricState(Buffer.from(h), h);
  }

  mixHash(data: Uint8Array): void {
    this.h = hash(this.h, data);
  }
  mixKey(ikm: Uint8Array): void {
    const [ck, k] = kdf2(this.ck, ikm);
    this.ck = ck;
    this.cs.k = k;
    this.cs.n = 0n;
  }
  mixKeyAndPsk(psk: Uint8Array): void {
    const [ck, t, k] = kdf3(this.ck, psk);
    this.ck = ck;
    this.mixHash(t);
    this.cs.k = k;
    this.cs.n = 0n;
  }
  encryptAndHash(plaintext: Uint8Array): Buffer {
    const c = this.cs.encryptWithAd(this.h, plaintext);
    this.mixHash(c);
    return c;
  }
  decryptAndHash(ciphertext: Uint8Array): Buffer | undefined {
    const p = this.cs.decryptWithAd(this.h, ciphertext);
    if (p) this.mixHash(ciphertext);
    return p;
  }
  /** Split(): the initiator sends with the first key, the responder with the second. */
  split(): [Buffer, Buffer] {
    return kdf2(this.ck, EMPTY);
  }
}

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

type Token = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss' | 'psk';
interface Pattern {
  /** Pre-message tokens: [initiator's, responder's]. */
  pre: [Token[], Token[]];
  messages: Token[][];
}

const PATTERNS: Record<string, Pattern> = {
  NN: { pre: [[], []], messages: [['e'], ['e', 'ee']] },
  IK: { pre: [[], ['s']], messages: [['e', 'es', 's', 'ss'], ['e', 'ee', 'se']] },
  XX: { pre: [[], []], messages: [['e'], ['e', 'ee', 's', 'es'], ['s', 'se']] },
};

/** Parses "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s" into its message pattern with psk tokens placed. */
function patternFor(protocolName: string): { pattern: Pattern; psk: boolean } {
  const parts = protocolName.split('_');
  if (parts.length !== 5 || parts[0] !== 'Noise' || parts[2] !== '25519' || parts[3] !== 'ChaChaPoly' || parts[4] !== 'BLAKE2s') {
    throw new Error(`unsupported Noise protocol ${protocolName}`);
  }
  const m = /^([A-Z]+)((?:psk\d)*)$/.exec(parts[1].replace(/\+/g, ''));
  const base = m && PATTERNS[m[1]];
  if (!m || !base) throw new Error(`unsupported Noise pattern ${parts[1]}`);
  const messages = base.messages.map((t) => [...t]);
  const psks = m[2].match(/\d/g)?.map(Number) ?? [];
  for (const p of psks) {
    if (p === 0) messages[0].unshift('psk');
    else messages[p - 1].push('psk');
  }
  return { pattern: { pre: base.pre, messages }, psk: psks.length > 0 };
}

export interface HandshakeStateInit {
  protocolName: string;
  initiator: boolean;
  prologue?: Uint8Array;
  s?: KeyPair;
  /** Fixed ephemeral key (tests); otherwise generated with nacl. */
  e?: KeyPair;
  rs?: Uint8Array;
  re?: Uint8Array;
  psks?: Uint8Array[];
}

function keyPairFromSecret(secretKey: Uint8Array): KeyPair {
  return { secretKey, publicKey: nacl.scalarMult.base(secretKey) };
}

/** Noise HandshakeState (spec §5.3) for the patterns in PATTERNS, with psk modifiers. */
export class HandshakeState {
  readonly ss: SymmetricState;
  private readonly pattern: Pattern;
  private readonly pskMode: boolean;
  private readonly initiator: boolean;
  private s?: KeyPair;
  private e?: KeyPair;
  private rs?: Uint8Array;
  private re?: Uint8Array;
  private readonly psks: Uint8Array[];
  private index = 0;

  constructor(init: HandshakeStateInit) {
    const { pattern, psk } = patternFor(init.protocolName);
    this.pattern = pattern;
    this.pskMode = psk;
    this.initiator = init.initiator;
    this.s = init.s;
    this.e = init.e;
    this.rs = init.rs;
    this.re = init.re;
    this.psks = [...(init.psks ?? [])];
    this.ss = SymmetricState.initialize(init.protocolName);
    this.ss.mixHash(init.prologue ?? EMPTY);
    const [preI, preR] = pattern.pre;
    for (const [tokens, ours] of [[preI, this.initiator], [preR, !this.initiator]] as const) {
      for (const t of tokens) {
        const key = t === 's' ? (ours ? this.s?.publicKey : this.rs) : ours ? this.e?.publicKey : this.re;
        if (!key) throw new Error(`pre-message key ${t} missing`);
        this.ss.mixHash(key);
      }
    }
  }

  static fixedKeyPair(secretKey: Uint8Array): KeyPair {
    return keyPairFromSecret(secretKey);
  }

  get handshakeHash(): Buffer {
    return this.ss.h;
  }
  get finished(): boolean {
    return this.index >= this.pattern.messages.length;
  }

  private dhToken(t: 'ee' | 'es' | 'se' | 'ss'): Uint8Array {
    // es: initiator's e with responder's s; se: initiator's s with responder's e.
    const localKind = t === 'ee' ? 'e' : t === 'ss' ? 's' : this.initiator ? t[0] : t[1];
    const remoteKind = t === 'ee' ? 'e' : t === 'ss' ? 's' : this.initiator ? t[1] : t[0];
    const local = localKind === 'e' ? this.e : this.s;
    const remote = remoteKind === 'e' ? this.re : this.rs;
    if (!local || !remote) throw new Error(`missing key for ${t}`);
    return nacl.scalarMult(local.secretKey, remote);
  }

  writeMessage(payload: Uint8Array): Buffer {
    const tokens = this.pattern.messages[this.index++];
    const out: Uint8Array[] = [];
    for (const t of tokens) {
      if (t === 'e') {
        this.e ??= nacl.box.keyPair();
        out.push(this.e.publicKey);
        this.ss.mixHash(this.e.publicKey);
        if (this.pskMode) this.ss.mixKey(this.e.publicKey);
      } else if (t === 's') {
        if (!this.s) throw new Error('static key missing');
        out.push(this.ss.encryptAndHash(this.s.publicKey));
      } else if (t === 'psk') {
        const psk = this.psks.shift();
        if (!psk) throw new Error('psk missing');
        this.ss.mixKeyAndPsk(psk);
      } else {
        this.ss.mixKey(this.dhToken(t));
      }
    }
    out.push(this.ss.encryptAndHash(payload));
    return Buffer.concat(out);
  }

  /** Undefined when the message is malformed or does not authenticate. */
  readMessage(message: Uint8Array): Buffer | undefined {
    const tokens = this.pattern.messages[this.index++];
    let off = 0;
    for (const t of tokens) {
      if (t === 'e') {
        if (message.length - off < 32) return undefined;
        this.re = message.slice(off, off + 32);
        off += 32;
        this.ss.mixHash(this.re);
        if (this.pskMode) this.ss.mixKey(this.re);
      } else if (t === 's') {
        const len = this.ss.cs.hasKey() ? 48 : 32;
        if (message.length - off < len) return undefined;
        const rs = this.ss.decryptAndHash(message.subarray(off, off + len));
        if (!rs) return undefined;
        this.rs = rs;
        off += len;
      } else if (t === 'psk') {
        const psk = this.psks.shift();
        if (!psk) throw new Error('psk missing');
        this.ss.mixKeyAndPsk(psk);
      } else {
        this.ss.mixKey(this.dhToken(t));
      }
    }
    return this.ss.decryptAndHash(message.subarray(off));
  }

  /** After the last message: [initiator→responder, responder→initiator] cipher states. */
  split(): { send: CipherState; recv: CipherState } {
    const [k1, k2] = this.ss.split();
    return this.initiator
      ? { send: new CipherState(k1), recv: new CipherState(k2) }
      : { send: new CipherState(k2), recv: new CipherState(k1) };
  }
}
