/**
 * WireGuard wire constants (spec, "Protocol & Cryptography" section of the WireGuard paper
 * and wireguard-go device/noise-protocol.go). Implementation choices live elsewhere.
 */

/** Message types: first byte of every WireGuard message, followed by 3 reserved zero bytes. */
export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

/** type(4) sender(4) ephemeral(32) static(32+16) timestamp(12+16) mac1(16) mac2(16) */
export const MSG_INITIATION_SIZE = 148;
/** type(4) sender(4) receiver(4) ephemeral(32) empty(0+16) mac1(16) mac2(16) */
export const MSG_RESPONSE_SIZE = 92;
/** type(4) receiver(4) nonce(24) cookie(16+16) */
export const MSG_COOKIE_REPLY_SIZE = 64;
/** type(4) receiver(4) counter(8), then the AEAD ciphertext */
export const MSG_TRANSPORT_HEADER_SIZE = 16;
/** Poly1305 tag */
export const AEAD_TAG_SIZE = 16;
/** The smallest transport message: a keepalive (empty plaintext) */
export const MSG_TRANSPORT_MIN_SIZE = MSG_TRANSPORT_HEADER_SIZE + AEAD_TAG_SIZE;

/** Offsets inside a transport message. */
export const TRANSPORT_OFFSET_RECEIVER = 4;
export const TRANSPORT_OFFSET_COUNTER = 8;
export const TRANSPORT_OFFSET_CONTENT = 16;

/** Offsets of mac1/mac2 from the end of initiation/response messages. */
export const MAC_SIZE = 16;

export const KEY_SIZE = 32;
export const TIMESTAMP_SIZE = 12;
export const COOKIE_SIZE = 16;
export const COOKIE_NONCE_SIZE = 24;

/** Transport plaintext is zero-padded to a multiple of this. */
export const PADDING_MULTIPLE = 16;

/** Noise protocol construction and WireGuard identifier, hashed into the initial state. */
export const NOISE_CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const WG_IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const WG_LABEL_MAC1 = 'mac1----';
export const WG_LABEL_COOKIE = 'cookie--';

/** Message counting limits (spec). */
export const REKEY_AFTER_MESSAGES = 2n ** 60n;
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;

/** Timer constants (spec), in milliseconds. */
export const REKEY_AFTER_TIME_MS = 120_000;
export const REJECT_AFTER_TIME_MS = 180_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
export const REKEY_TIMEOUT_MS = 5_000;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
export const COOKIE_REFRESH_TIME_MS = 120_000;
