/**
 * The WireGuard handshake (paper §5.4.2–5.4.5, wireguard-go device/noise-protocol.go) as pure
 * functions: Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s with prologue "WireGuard v1 zx2c4
 * Jason@zx2c4.com", on the generic SymmetricState of noise-state.ts (checked against the
 * cacophony vectors).
 *
 *   initiator                                      responder
 *   createInitiation ── initiation (148) ───────►  consumeInitiation
 *                                                  (caller: mac1/mac2 via CookieChecker,
 *                                                   timestamp newer than the last one, flood)
 *   consumeResponse  ◄─────── response (92) ────── createResponse
 *   → SessionKeys (send = T1)                       → SessionKeys (send = T2)
 *
 * Randomness (ephemeral keys) and wall-clock time (TAI64N) are injected. mac1/mac2 are not
 * written or checked here: the caller runs CookieGenerator.addMacs on outgoing messages and
 * CookieChecker on incoming ones (cookie.ts), before calling consume*.
 *
 * Error contract:
 * - consumeInitiation / consumeResponse take network input and never throw; they return
 *   `{ ok: false, reason }` with reason one of HandshakeFailure: 'bad-length' | 'bad-type' |
 *   'bad-reserved' (decoder), 'low-order-key', 'decrypt-static', 'unknown-peer',
 *   'decrypt-timestamp', 'unknown-index', 'state-used', 'decrypt-empty'. Each reason is
 *   usable as a drop-reason/metric label.
 * - A failure produces no state and never changes the state passed in: a forged response
 *   does not kill a pending initiation (as in wireguard-go, it is just dropped).
 * - States are single-use: after a successful consumeResponse the InitiatorState, and after
 *   createResponse the ResponderState, are wiped (`used = true`, secrets zeroed);
 *   consumeResponse then answers 'state-used'.
 * - createLocalIdentity / createPeerCrypto / createInitiation take configuration and throw
 *   HandshakeKeyError for bad keys (wrong size, all-zero static-static DH). createResponse
 *   throws HandshakeStateError only on a programming error (a ResponderState used twice);
 *   its DH results cannot be zero once consumeInitiation accepted the ephemeral key.
 */
import {
  KEY_SIZE, MSG_INITIATION_SIZE, MSG_RESPONSE_SIZE, NOISE_CONSTRUCTION, WG_IDENTIFIER,
} from './constants';
import { deriveMacKeys, type MacKeys } from './cookie';
import { defaultRng, generatePrivateKey, publicKeyFromPrivate, type Rng } from './keys';
import { decodeInitiation, decodeResponse, encodeInitiation, encodeResponse, type MessageDecodeReason } from './messages';
import { dh, hash } from './noise';
import { SymmetricState } from './noise-state';
import { tai64nIsAfter, tai64nFromMs } from './tai64n';

export const HandshakeFailure = {
  LOW_ORDER_KEY: 'low-order-key',
  DECRYPT_STATIC: 'decrypt-static',
  UNKNOWN_PEER: 'unknown-peer',
  DECRYPT_TIMESTAMP: 'decrypt-timestamp',
  UNKNOWN_INDEX: 'unknown-index',
  STATE_USED: 'state-used',
  DECRYPT_EMPTY: 'decrypt-empty',
} as const;
export type HandshakeFailure = (typeof HandshakeFailure)[keyof typeof HandshakeFailure] | MessageDecodeReason;
export type Failed = { ok: false; reason: HandshakeFailure };

/** wireguard-go HandshakeInitationRate: a peer's initiations closer than this are floods. */
export const INITIATION_MIN_INTERVAL_MS = 20;

export class HandshakeKeyError extends Error {
  override readonly name = 'HandshakeKeyError';
  readonly code = 'ERR_HANDSHAKE_KEY';
}

export class HandshakeStateError extends Error {
  override readonly name = 'HandshakeStateError';
  readonly code = 'ERR_HANDSHAKE_STATE';
}

const EMPTY = new Uint8Array(0);
/** Ci = HASH(construction); Hi = HASH(Ci || identifier) (the Noise prologue). */
const INITIAL_CHAIN_KEY = hash(Buffer.from(NOISE_CONSTRUCTION, 'ascii'));
const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, Buffer.from(WG_IDENTIFIER, 'ascii'));

export interface LocalIdentity {
  readonly privateKey: Buffer;
  readonly publicKey: Buffer;
  /** Keys of mac1/cookie replies for messages addressed to us: give to CookieChecker. */
  readonly macKeys: MacKeys;
  /** HASH(Hi || our public key): the responder's hash before an initiation. */
  readonly initialHash: Buffer;
}

export interface PeerCrypto {
  readonly publicKey: Buffer;
  /** 32 zero bytes when none is configured (WireGuard's default). */
  readonly presharedKey: Buffer;
  /** DH(our static private, peer static public), never all zero. */
  readonly staticStatic: Buffer;
  /** Keys of mac1/cookie replies for messages we send to this peer: give to CookieGenerator. */
  readonly macKeys: MacKeys;
  /** HASH(Hi || peer public key): the initiator's hash before an initiation to this peer. */
  readonly initialHash: Buffer;
}

/** Pending initiation; keep it by localIndex until the response arrives or it times out. */
export interface InitiatorState {
  readonly peer: PeerCrypto;
  readonly localIndex: number;
  readonly ephemeralPrivate: Buffer;
  readonly ck: Buffer;
  readonly h: Buffer;
  used: boolean;
}

/** A consumed initiation waiting for createResponse. */
export interface ResponderState {
  readonly peer: PeerCrypto;
  readonly remoteIndex: number;
  readonly remoteEphemeral: Buffer;
  readonly ck: Buffer;
  readonly h: Buffer;
  used: boolean;
}

/** Transport keys; the initiator sends with T1 = KDF2(ck, ε)[0], the responder with T2. */
export interface SessionKeys {
  sendKey: Buffer;
  recvKey: Buffer;
  localIndex: number;
  remoteIndex: number;
  isInitiator: boolean;
}

function checkKey(k: Uint8Array, what: string): Buffer {
  if (k.length !== KEY_SIZE) throw new HandshakeKeyError(`${what} must be ${KEY_SIZE} bytes, got ${k.length}`);
  return Buffer.from(k);
}

export function createLocalIdentity(privateKey: Uint8Array): LocalIdentity {
  const priv = checkKey(privateKey, 'private key');
  const publicKey = publicKeyFromPrivate(priv);
  return { privateKey: priv, publicKey, macKeys: deriveMacKeys(publicKey), initialHash: hash(INITIAL_HASH, publicKey) };
}

export function createPeerCrypto(local: LocalIdentity, peerPublicKey: Uint8Array, presharedKey?: Uint8Array): PeerCrypto {
  const publicKey = checkKey(peerPublicKey, 'peer public key');
  const psk = presharedKey ? checkKey(presharedKey, 'preshared key') : Buffer.alloc(KEY_SIZE);
  const staticStatic = dh(local.privateKey, publicKey);
  if (!staticStatic) throw new HandshakeKeyError('peer public key is a low-order point (static-static DH is zero)');
  return { publicKey, presharedKey: psk, staticStatic, macKeys: deriveMacKeys(publicKey), initialHash: hash(INITIAL_HASH, publicKey) };
}

function ephemeral(rng: Rng): { priv: Buffer; pub: Buffer } {
  const priv = generatePrivateKey(rng);
  return { priv, pub: publicKeyFromPrivate(priv) };
}

/**
 * Message 1. `message` is 148 bytes with mac1/mac2 zero: run CookieGenerator.addMacs on it
 * before sending. `senderIndex` is our index for this handshake (unique, caller-allocated).
 */
export function createInitiation(local: LocalIdentity, peer: PeerCrypto, senderIndex: number, wallMs: number,
  rng: Rng = defaultRng): { message: Buffer; state: InitiatorState } {
  const ss = new SymmetricState(INITIAL_CHAIN_KEY, peer.initialHash);
  const e = ephemeral(rng);
  ss.mixHash(e.pub);
  ss.mixKey(e.pub); // psk mode: `e` also feeds the chaining key (WireGuard: Ci = KDF1(Ci, Epub))
  const es = dh(e.priv, peer.publicKey);
  if (!es) throw new HandshakeKeyError('peer public key is a low-order point');
  ss.mixKey(es);
  const encryptedStatic = ss.encryptAndHash(local.publicKey);
  ss.mixKey(peer.staticStatic);
  const encryptedTimestamp = ss.encryptAndHash(tai64nFromMs(wallMs));
  const message = Buffer.alloc(MSG_INITIATION_SIZE);
  const zeroMac = Buffer.alloc(16);
  encodeInitiation(message, { sender: senderIndex, ephemeral: e.pub, encryptedStatic, encryptedTimestamp, mac1: zeroMac, mac2: zeroMac });
  return { message, state: { peer, localIndex: senderIndex >>> 0, ephemeralPrivate: e.priv, ck: ss.ck, h: ss.h, used: false } };
}

export type ConsumedInitiation =
  | { ok: true; peer: PeerCrypto; remoteIndex: number; timestamp: Buffer; state: ResponderState }
  | Failed;

/**
 * Message 1, responder side. `lookupPeer` maps the decrypted initiator static key to one of
 * our configured peers. On success the caller must still check
 * `isNewerTimestamp(timestamp, lastTimestampOfPeer)` (replay) and its flood limit before
 * createResponse, and then remember `timestamp` for that peer.
 */
export function consumeInitiation(local: LocalIdentity, message: Uint8Array,
  lookupPeer: (staticPublic: Buffer) => PeerCrypto | undefined): ConsumedInitiation {
  const d = decodeInitiation(message);
  if (!d.ok) return d;
  const m = d.msg;
  const ss = new SymmetricState(INITIAL_CHAIN_KEY, local.initialHash);
  ss.mixHash(m.ephemeral);
  ss.mixKey(m.ephemeral);
  const es = dh(local.privateKey, m.ephemeral);
  if (!es) return { ok: false, reason: HandshakeFailure.LOW_ORDER_KEY };
  ss.mixKey(es);
  const staticPublic = ss.decryptAndHash(m.encryptedStatic);
  if (!staticPublic) return { ok: false, reason: HandshakeFailure.DECRYPT_STATIC };
  const peer = lookupPeer(staticPublic);
  if (!peer) return { ok: false, reason: HandshakeFailure.UNKNOWN_PEER };
  ss.mixKey(peer.staticStatic);
  const timestamp = ss.decryptAndHash(m.encryptedTimestamp);
  if (!timestamp) return { ok: false, reason: HandshakeFailure.DECRYPT_TIMESTAMP };
  const state: ResponderState = {
    peer, remoteIndex: m.sender, remoteEphemeral: Buffer.from(m.ephemeral), ck: ss.ck, h: ss.h, used: false,
  };
  return { ok: true, peer, remoteIndex: m.sender, timestamp, state };
}

/** Replay protection: an initiation's timestamp must be strictly newer than the last accepted. */
export function isNewerTimestamp(timestamp: Uint8Array, lastAccepted: Uint8Array | undefined): boolean {
  return lastAccepted === undefined || tai64nIsAfter(timestamp, lastAccepted);
}

/**
 * Message 2. `message` is 92 bytes with mac1/mac2 zero: run CookieGenerator.addMacs on it.
 * The responder may send transport data only after it has received the initiator's first
 * transport message (key confirmation); that is the caller's rule.
 */
export function createResponse(local: LocalIdentity, state: ResponderState, senderIndex: number,
  rng: Rng = defaultRng): { message: Buffer; keys: SessionKeys } {
  void local; // same call shape as the others; the responder's static key is already in `state`
  if (state.used) throw new HandshakeStateError('ResponderState already used');
  const ss = new SymmetricState(state.ck, state.h);
  const e = ephemeral(rng);
  ss.mixHash(e.pub);
  ss.mixKey(e.pub);
  const ee = dh(e.priv, state.remoteEphemeral);
  const se = dh(e.priv, state.peer.publicKey);
  if (!ee || !se) throw new HandshakeStateError('zero DH in response (ephemeral key not validated)');
  ss.mixKey(ee);
  ss.mixKey(se);
  ss.mixKeyAndPsk(state.peer.presharedKey);
  const encryptedNothing = ss.encryptAndHash(EMPTY);
  const message = Buffer.alloc(MSG_RESPONSE_SIZE);
  const zeroMac = Buffer.alloc(16);
  encodeResponse(message, { sender: senderIndex, receiver: state.remoteIndex, ephemeral: e.pub, encryptedNothing, mac1: zeroMac, mac2: zeroMac });
  const [t1, t2] = ss.split();
  e.priv.fill(0);
  wipe(state);
  return { message, keys: { sendKey: t2, recvKey: t1, localIndex: senderIndex >>> 0, remoteIndex: state.remoteIndex, isInitiator: false } };
}

export type ConsumedResponse = { ok: true; peer: PeerCrypto; keys: SessionKeys } | Failed;

/**
 * Message 2, initiator side. `lookupInitiator` maps the response's receiver index to the
 * peer and its pending InitiatorState with that localIndex (undefined if none). Drop the
 * InitiatorState after success (it is wiped).
 */
export function consumeResponse(local: LocalIdentity, message: Uint8Array,
  lookupInitiator: (receiverIndex: number) => { peer: PeerCrypto; state: InitiatorState } | undefined): ConsumedResponse {
  const d = decodeResponse(message);
  if (!d.ok) return d;
  const m = d.msg;
  const found = lookupInitiator(m.receiver);
  const st = found?.state;
  if (!st || st.localIndex !== m.receiver) return { ok: false, reason: HandshakeFailure.UNKNOWN_INDEX };
  if (st.used) return { ok: false, reason: HandshakeFailure.STATE_USED };
  const ss = new SymmetricState(st.ck, st.h);
  ss.mixHash(m.ephemeral);
  ss.mixKey(m.ephemeral);
  const ee = dh(st.ephemeralPrivate, m.ephemeral);
  const se = dh(local.privateKey, m.ephemeral);
  if (!ee || !se) return { ok: false, reason: HandshakeFailure.LOW_ORDER_KEY };
  ss.mixKey(ee);
  ss.mixKey(se);
  ss.mixKeyAndPsk(st.peer.presharedKey);
  if (!ss.decryptAndHash(m.encryptedNothing)) return { ok: false, reason: HandshakeFailure.DECRYPT_EMPTY };
  const [t1, t2] = ss.split();
  wipe(st);
  return { ok: true, peer: found.peer, keys: { sendKey: t1, recvKey: t2, localIndex: st.localIndex, remoteIndex: m.sender, isInitiator: true } };
}

function wipe(st: InitiatorState | ResponderState): void {
  st.used = true;
  st.ck.fill(0);
  if ('ephemeralPrivate' in st) st.ephemeralPrivate.fill(0);
}
