/**
 * Relay framing: the small header a member puts in front of each WireGuard message it sends
 * through a relay, and the relay's control frames (auth, keepalive). Full description with
 * diagrams and the auth flow: docs/PROTOCOL.md. Pure: no I/O.
 *
 * Every frame is one UDP datagram and starts with an 8-byte header:
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  frame type   |          reserved (zero, ignored)             |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |   overlay IPv4: DESTINATION member→relay, SOURCE relay→member |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  payload (per type) ...
 *
 * Frame types live in 0x10..0x1f, never 1..4, so a relay frame is never mistaken for a bare
 * WireGuard message. Frames are datagrams, so an unknown type is skipped by dropping the
 * datagram (derp's handleUnknownFrame, without the length field).
 *
 * Decoders never throw: they return false/undefined on any length or field mismatch.
 */

/** Length of the common header: type(1) reserved(3) vip(4). */
export const RELAY_HEADER_LEN = 8;
/** Offset of the frame type byte. */
export const RELAY_OFFSET_TYPE = 0;
/** Offset of the big-endian overlay IPv4 address (destination or source, see above). */
export const RELAY_OFFSET_VIP = 4;
/** Offset of the type-specific payload. */
export const RELAY_OFFSET_PAYLOAD = 8;

/**
 * Wire version carried in HELLO, AUTH and AUTH_OK. Changelog of wire-incompatible bumps:
 *   1: first version.
 */
export const RELAY_PROTOCOL_VERSION = 1;

/** Lowest and highest byte a relay frame type may take (the range is reserved for relay frames). */
export const FRAME_TYPE_MIN = 0x10;
export const FRAME_TYPE_MAX = 0x1f;

export const FrameType = {
  /** both ways · vip = dst (member→relay) / src (relay→member) · payload: one WireGuard message (types 1..4) */
  DATA: 0x10,
  /** member→relay · vip = 0 · version(1) + zero padding up to HELLO_PAYLOAD_LEN (anti-amplification) */
  HELLO: 0x11,
  /** relay→member · vip = 0 · ephemeral public key(32) + nonce(16) */
  CHALLENGE: 0x12,
  /** member→relay · vip = claimed own vip · version(1) reserved(3) static pub(32) ephemeral(32) nonce(16) proof(32) */
  AUTH: 0x13,
  /** relay→member · vip = member's vip · version(1) reserved(1) keepalive seconds(2) idLen(1) relay id(idLen, UTF-8) */
  AUTH_OK: 0x14,
  /** relay→member · vip = 0 · reason code(1), see AuthFailReason */
  AUTH_FAIL: 0x15,
  /** member→relay · vip = 0 · sequence(4) */
  PING: 0x16,
  /** relay→member · vip = 0 · sequence(4) echoed from PING */
  PONG: 0x17,
  /** relay→member · vip = 0 · no payload: "I don't know your 4-tuple", re-authenticate now */
  REAUTH: 0x18,
  /** relay→member · vip = the unknown destination · no payload */
  UNREACHABLE: 0x19,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** HELLO payload length: as long as a CHALLENGE payload, so the relay never answers with more bytes than it got. */
export const HELLO_PAYLOAD_LEN = 48;
/** X25519 public key length. */
export const RELAY_KEY_LEN = 32;
/** Challenge nonce length (same as the key-proof nonce). */
export const CHALLENGE_NONCE_LEN = 16;
/** CHALLENGE payload: ephemeral(32) nonce(16). */
export const CHALLENGE_PAYLOAD_LEN = RELAY_KEY_LEN + CHALLENGE_NONCE_LEN;
/** Key proof length (protocol/key-proof.ts). */
export const AUTH_PROOF_LEN = 32;
/** AUTH payload: version(1) reserved(3) static(32) ephemeral(32) nonce(16) proof(32). */
export const AUTH_PAYLOAD_LEN = 4 + RELAY_KEY_LEN + RELAY_KEY_LEN + CHALLENGE_NONCE_LEN + AUTH_PROOF_LEN;
/** AUTH_OK fixed payload before the relay id: version(1) reserved(1) keepalive(2) idLen(1). */
export const AUTH_OK_FIXED_LEN = 5;
/** Longest relay id in AUTH_OK, in UTF-8 bytes. */
export const RELAY_ID_MAX_LEN = 64;
/** PING/PONG payload: sequence(4). */
export const PING_PAYLOAD_LEN = 4;
/** Key-proof context string for relay authentication. */
export const RELAY_PROOF_CONTEXT = 'relay';

export const AuthFailReason = {
  /** version byte not supported by this relay */
  BAD_VERSION: 1,
  /** challenge expired, not issued by this relay, or issued to another 4-tuple: ask again */
  STALE_CHALLENGE: 2,
  /** the proof does not match the static key */
  BAD_PROOF: 3,
  /** the static key is not in the member directory */
  UNKNOWN_KEY: 4,
  /** the claimed overlay address is not the one the directory has for this key */
  VIP_MISMATCH: 5,
  /** this challenge was already used */
  REPLAYED: 6,
  /** the directory could not be consulted; try again later */
  UNAVAILABLE: 7,
} as const;
export type AuthFailReason = (typeof AuthFailReason)[keyof typeof AuthFailReason];

/** True for the byte range reserved for relay frames (0x10..0x1f). */
export function isRelayFrameType(t: number): boolean {
  return t >= FRAME_TYPE_MIN && t <= FRAME_TYPE_MAX;
}

/** Write the 8-byte header at `off`. `vip` is a host-order uint32. */
export function writeRelayHeader(buf: Uint8Array, off: number, type: number, vip: number): void {
  buf[off] = type;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  writeU32(buf, off + RELAY_OFFSET_VIP, vip);
}

export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 255;
  buf[off + 1] = (v >>> 16) & 255;
  buf[off + 2] = (v >>> 8) & 255;
  buf[off + 3] = v & 255;
}

/** Parsed header, filled in place by parseRelayHeader (reuse one per loop). */
export interface RelayHeader {
  type: number;
  vip: number;
}

/** Fill `out` from the header at `off`; false when shorter than a header or not a relay frame type. */
export function parseRelayHeader(buf: Uint8Array, off: number, len: number, out: RelayHeader): boolean {
  if (len < RELAY_HEADER_LEN || off < 0 || off + len > buf.length) return false;
  const t = buf[off];
  if (!isRelayFrameType(t)) return false;
  out.type = t;
  out.vip = readU32(buf, off + RELAY_OFFSET_VIP);
  return true;
}

// ---- control frames: allocate once per frame (they are rare), decode into plain objects ----

export function encodeHello(version: number = RELAY_PROTOCOL_VERSION): Buffer {
  const b = Buffer.alloc(RELAY_HEADER_LEN + HELLO_PAYLOAD_LEN);
  writeRelayHeader(b, 0, FrameType.HELLO, 0);
  b[RELAY_OFFSET_PAYLOAD] = version;
  return b;
}

/** HELLO's version byte, or undefined when too short (short HELLOs are refused: amplification). */
export function decodeHello(buf: Uint8Array, off: number, len: number): number | undefined {
  if (len < RELAY_HEADER_LEN + HELLO_PAYLOAD_LEN || off + len > buf.length) return undefined;
  return buf[off + RELAY_OFFSET_PAYLOAD];
}

export interface Challenge {
  ephemeralPublic: Uint8Array;
  nonce: Uint8Array;
}

export function encodeChallenge(c: Challenge): Buffer {
  const b = Buffer.alloc(RELAY_HEADER_LEN + CHALLENGE_PAYLOAD_LEN);
  writeRelayHeader(b, 0, FrameType.CHALLENGE, 0);
  b.set(c.ephemeralPublic.subarray(0, RELAY_KEY_LEN), RELAY_OFFSET_PAYLOAD);
  b.set(c.nonce.subarray(0, CHALLENGE_NONCE_LEN), RELAY_OFFSET_PAYLOAD + RELAY_KEY_LEN);
  return b;
}

export function decodeChallenge(buf: Uint8Array, off: number, len: number): Challenge | undefined {
  if (len < RELAY_HEADER_LEN + CHALLENGE_PAYLOAD_LEN || off + len > buf.length) return undefined;
  const p = off + RELAY_OFFSET_PAYLOAD;
  return {
    ephemeralPublic: Uint8Array.prototype.slice.call(buf, p, p + RELAY_KEY_LEN),
    nonce: Uint8Array.prototype.slice.call(buf, p + RELAY_KEY_LEN, p + CHALLENGE_PAYLOAD_LEN),
  };
}

export interface Auth {
  version: number;
  /** the member's own overlay address, as it believes it to be */
  claimedVip: number;
  staticPublic: Uint8Array;
  ephemeralPublic: Uint8Array;
  nonce: Uint8Array;
  proof: Uint8Array;
}

export function encodeAuth(a: Auth): Buffer {
  const b = Buffer.alloc(RELAY_HEADER_LEN + AUTH_PAYLOAD_LEN);
  writeRelayHeader(b, 0, FrameType.AUTH, a.claimedVip);
  let p = RELAY_OFFSET_PAYLOAD;
  b[p] = a.version;
  p += 4;
  b.set(a.staticPublic.subarray(0, RELAY_KEY_LEN), p); p += RELAY_KEY_LEN;
  b.set(a.ephemeralPublic.subarray(0, RELAY_KEY_LEN), p); p += RELAY_KEY_LEN;
  b.set(a.nonce.subarray(0, CHALLENGE_NONCE_LEN), p); p += CHALLENGE_NONCE_LEN;
  b.set(a.proof.subarray(0, AUTH_PROOF_LEN), p);
  return b;
}

export function decodeAuth(buf: Uint8Array, off: number, len: number): Auth | undefined {
  if (len < RELAY_HEADER_LEN + AUTH_PAYLOAD_LEN || off + len > buf.length) return undefined;
  let p = off + RELAY_OFFSET_PAYLOAD;
  const version = buf[p];
  p += 4;
  const take = (n: number): Uint8Array => {
    const v = Uint8Array.prototype.slice.call(buf, p, p + n);
    p += n;
    return v;
  };
  const staticPublic = take(RELAY_KEY_LEN);
  const ephemeralPublic = take(RELAY_KEY_LEN);
  const nonce = take(CHALLENGE_NONCE_LEN);
  const proof = take(AUTH_PROOF_LEN);
  return { version, claimedVip: readU32(buf, off + RELAY_OFFSET_VIP), staticPublic, ephemeralPublic, nonce, proof };
}

export interface AuthOk {
  version: number;
  vip: number;
  keepaliveSeconds: number;
  relayId: string;
}

export function encodeAuthOk(a: AuthOk): Buffer {
  let id = Buffer.from(a.relayId, 'utf8');
  if (id.length > RELAY_ID_MAX_LEN) id = id.subarray(0, RELAY_ID_MAX_LEN);
  const b = Buffer.alloc(RELAY_HEADER_LEN + AUTH_OK_FIXED_LEN + id.length);
  writeRelayHeader(b, 0, FrameType.AUTH_OK, a.vip);
  const p = RELAY_OFFSET_PAYLOAD;
  b[p] = a.version;
  b.writeUInt16BE(Math.max(0, Math.min(0xffff, Math.round(a.keepaliveSeconds))), p + 2);
  b[p + 4] = id.length;
  b.set(id, p + AUTH_OK_FIXED_LEN);
  return b;
}

export function decodeAuthOk(buf: Uint8Array, off: number, len: number): AuthOk | undefined {
  if (len < RELAY_HEADER_LEN + AUTH_OK_FIXED_LEN || off + len > buf.length) return undefined;
  const p = off + RELAY_OFFSET_PAYLOAD;
  const idLen = buf[p + 4];
  if (idLen > RELAY_ID_MAX_LEN || len < RELAY_HEADER_LEN + AUTH_OK_FIXED_LEN + idLen) return undefined;
  return {
    version: buf[p],
    vip: readU32(buf, off + RELAY_OFFSET_VIP),
    keepaliveSeconds: (buf[p + 2] << 8) | buf[p + 3],
    relayId: Buffer.from(buf.buffer, buf.byteOffset + p + AUTH_OK_FIXED_LEN, idLen).toString('utf8'),
  };
}

export function encodeAuthFail(reason: number): Buffer {
  const b = Buffer.alloc(RELAY_HEADER_LEN + 1);
  writeRelayHeader(b, 0, FrameType.AUTH_FAIL, 0);
  b[RELAY_OFFSET_PAYLOAD] = reason;
  return b;
}

export function decodeAuthFail(buf: Uint8Array, off: number, len: number): number | undefined {
  if (len < RELAY_HEADER_LEN + 1 || off + len > buf.length) return undefined;
  return buf[off + RELAY_OFFSET_PAYLOAD];
}

/** PING or PONG with a sequence number. */
export function encodePing(type: typeof FrameType.PING | typeof FrameType.PONG, seq: number): Buffer {
  const b = Buffer.alloc(RELAY_HEADER_LEN + PING_PAYLOAD_LEN);
  writeRelayHeader(b, 0, type, 0);
  writeU32(b, RELAY_OFFSET_PAYLOAD, seq);
  return b;
}

export function decodePingSeq(buf: Uint8Array, off: number, len: number): number | undefined {
  if (len < RELAY_HEADER_LEN + PING_PAYLOAD_LEN || off + len > buf.length) return undefined;
  return readU32(buf, off + RELAY_OFFSET_PAYLOAD);
}

/** A header-only frame: REAUTH (vip 0) or UNREACHABLE (vip = the unknown destination). */
export function encodeHeaderOnly(type: number, vip: number): Buffer {
  const b = Buffer.alloc(RELAY_HEADER_LEN);
  writeRelayHeader(b, 0, type, vip);
  return b;
}
