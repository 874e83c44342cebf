/**
 * Encoders and decoders of the three WireGuard handshake messages (wireguard-go
 * device/noise-protocol.go). Transport data messages (type 4) have one codec, in transport.ts,
 * which works in place on the data path's buffers.
 * All integers are little-endian. The first 4 bytes are the type as a LE u32, i.e. one type
 * byte and 3 reserved zero bytes; a message with non-zero reserved bytes is rejected, as
 * wireguard-go does when it reads the type as a u32.
 *
 * Decoders take network input: they never throw, they return `{ ok: false, reason }`, and on
 * success the fields are views (subarray) into the caller's buffer, not copies. Encoders
 * write into a caller buffer of exactly the message size (a wrong size is a programming
 * error and throws).
 */
import {
  COOKIE_NONCE_SIZE, MAC_SIZE, MSG_COOKIE_REPLY, MSG_COOKIE_REPLY_SIZE, MSG_INITIATION, MSG_INITIATION_SIZE,
  MSG_RESPONSE, MSG_RESPONSE_SIZE, MSG_TRANSPORT,
} from './constants';

export const MessageDecodeReason = {
  BAD_LENGTH: 'bad-length',
  BAD_TYPE: 'bad-type',
  BAD_RESERVED: 'bad-reserved',
} as const;
export type MessageDecodeReason = (typeof MessageDecodeReason)[keyof typeof MessageDecodeReason];

export type Decoded<T> = { ok: true; msg: T } | { ok: false; reason: MessageDecodeReason };

/** Offsets of the two MACs: they cover everything before them. */
export const INITIATION_OFFSET_MAC1 = MSG_INITIATION_SIZE - 2 * MAC_SIZE; // 116
export const INITIATION_OFFSET_MAC2 = MSG_INITIATION_SIZE - MAC_SIZE; // 132
export const RESPONSE_OFFSET_MAC1 = MSG_RESPONSE_SIZE - 2 * MAC_SIZE; // 60
export const RESPONSE_OFFSET_MAC2 = MSG_RESPONSE_SIZE - MAC_SIZE; // 76

/** The type of a message if its 4-byte header is well formed (type 1..4, reserved zero). */
export function peekMessageType(buf: Uint8Array): number | undefined {
  if (buf.length < 4 || buf[1] !== 0 || buf[2] !== 0 || buf[3] !== 0) return undefined;
  const t = buf[0];
  return t >= MSG_INITIATION && t <= MSG_TRANSPORT ? t : undefined;
}

function checkHeader(buf: Uint8Array, type: number, size: number): MessageDecodeReason | undefined {
  if (buf.length !== size) return MessageDecodeReason.BAD_LENGTH;
  if (buf[0] !== type) return MessageDecodeReason.BAD_TYPE;
  if (buf[1] !== 0 || buf[2] !== 0 || buf[3] !== 0) return MessageDecodeReason.BAD_RESERVED;
  return undefined;
}

function view(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function checkOut(out: Uint8Array, size: number, what: string): Buffer {
  if (out.length !== size) throw new RangeError(`${what} buffer must be ${size} bytes, got ${out.length}`);
  return view(out);
}

/*
 * Handshake initiation, 148 bytes:
 *   0       1       4           8                40                  88                 116    132    148
 *   +-------+-------+-----------+----------------+-------------------+------------------+------+------+
 *   | 1     | 0 0 0 | sender LE | ephemeral (32) | static (32 + 16)  | timestamp(12+16) | mac1 | mac2 |
 *   +-------+-------+-----------+----------------+-------------------+------------------+------+------+
 */
export interface Initiation {
  sender: number;
  ephemeral: Buffer;
  encryptedStatic: Buffer;
  encryptedTimestamp: Buffer;
  mac1: Buffer;
  mac2: Buffer;
}

export function encodeInitiation(out: Uint8Array, m: Initiation): void {
  const b = checkOut(out, MSG_INITIATION_SIZE, 'initiation');
  b.writeUInt32LE(MSG_INITIATION, 0);
  b.writeUInt32LE(m.sender >>> 0, 4);
  b.set(m.ephemeral, 8);
  b.set(m.encryptedStatic, 40);
  b.set(m.encryptedTimestamp, 88);
  b.set(m.mac1, 116);
  b.set(m.mac2, 132);
}

export function decodeInitiation(buf: Uint8Array): Decoded<Initiation> {
  const reason = checkHeader(buf, MSG_INITIATION, MSG_INITIATION_SIZE);
  if (reason) return { ok: false, reason };
  const b = view(buf);
  return {
    ok: true,
    msg: {
      sender: b.readUInt32LE(4),
      ephemeral: b.subarray(8, 40),
      encryptedStatic: b.subarray(40, 88),
      encryptedTimestamp: b.subarray(88, 116),
      mac1: b.subarray(116, 132),
      mac2: b.subarray(132, 148),
    },
  };
}

/*
 * Handshake response, 92 bytes:
 *   0       1       4           8             12               44             60     76     92
 *   +-------+-------+-----------+-------------+----------------+--------------+------+------+
 *   | 2     | 0 0 0 | sender LE | receiver LE | ephemeral (32) | empty (0+16) | mac1 | mac2 |
 *   +-------+-------+-----------+-------------+----------------+--------------+------+------+
 */
export interface Response {
  sender: number;
  receiver: number;
  ephemeral: Buffer;
  encryptedNothing: Buffer;
  mac1: Buffer;
  mac2: Buffer;
}

export function encodeResponse(out: Uint8Array, m: Response): void {
  const b = checkOut(out, MSG_RESPONSE_SIZE, 'response');
  b.writeUInt32LE(MSG_RESPONSE, 0);
  b.writeUInt32LE(m.sender >>> 0, 4);
  b.writeUInt32LE(m.receiver >>> 0, 8);
  b.set(m.ephemeral, 12);
  b.set(m.encryptedNothing, 44);
  b.set(m.mac1, 60);
  b.set(m.mac2, 76);
}

export function decodeResponse(buf: Uint8Array): Decoded<Response> {
  const reason = checkHeader(buf, MSG_RESPONSE, MSG_RESPONSE_SIZE);
  if (reason) return { ok: false, reason };
  const b = view(buf);
  return {
    ok: true,
    msg: {
      sender: b.readUInt32LE(4),
      receiver: b.readUInt32LE(8),
      ephemeral: b.subarray(12, 44),
      encryptedNothing: b.subarray(44, 60),
      mac1: b.subarray(60, 76),
      mac2: b.subarray(76, 92),
    },
  };
}

/*
 * Cookie reply, 64 bytes:
 *   0       1       4             8            32                   64
 *   +-------+-------+-------------+------------+--------------------+
 *   | 3     | 0 0 0 | receiver LE | nonce (24) | cookie (16 + 16)   |
 *   +-------+-------+-------------+------------+--------------------+
 */
export interface CookieReply {
  receiver: number;
  nonce: Buffer;
  encryptedCookie: Buffer;
}

export function encodeCookieReply(out: Uint8Array, m: CookieReply): void {
  const b = checkOut(out, MSG_COOKIE_REPLY_SIZE, 'cookie reply');
  b.writeUInt32LE(MSG_COOKIE_REPLY, 0);
  b.writeUInt32LE(m.receiver >>> 0, 4);
  b.set(m.nonce, 8);
  b.set(m.encryptedCookie, 8 + COOKIE_NONCE_SIZE);
}

export function decodeCookieReply(buf: Uint8Array): Decoded<CookieReply> {
  const reason = checkHeader(buf, MSG_COOKIE_REPLY, MSG_COOKIE_REPLY_SIZE);
  if (reason) return { ok: false, reason };
  const b = view(buf);
  return {
    ok: true,
    msg: { receiver: b.readUInt32LE(4), nonce: b.subarray(8, 32), encryptedCookie: b.subarray(32, 64) },
  };
}
