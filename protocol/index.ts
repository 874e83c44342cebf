/**
 * @packageDocumentation
 * WireGuard's protocol and our relay framing, as pure code: no sockets, files or timers of its
 * own (time comes in as an argument or an injected clock). Wire sizes and offsets live in
 * constants.ts; each format has its encoder and decoder side by side (messages, transport,
 * relay-frame); the Noise IKpsk2 handshake, cookies, the replay window and the timer state
 * machine are small modules with their own tests against the spec's vectors.
 */
export {
  AEAD_TAG_SIZE, MSG_COOKIE_REPLY, MSG_COOKIE_REPLY_SIZE, MSG_INITIATION, MSG_INITIATION_SIZE, MSG_RESPONSE,
  MSG_RESPONSE_SIZE, MSG_TRANSPORT, MSG_TRANSPORT_HEADER_SIZE, MSG_TRANSPORT_MIN_SIZE,
} from './constants';
export { AllowedIps } from './allowed-ips';
export { CookieChecker, CookieGenerator } from './cookie';
export {
  HandshakeKeyError, type InitiatorState, type LocalIdentity, type PeerCrypto,
  consumeInitiation, consumeResponse, createInitiation, createLocalIdentity, createPeerCrypto, createResponse,
} from './handshake';
export { ICMP_UNREACHABLE_MAX_SIZE, UnreachableCode, buildIcmpUnreachable } from './icmp';
export { IP_PROTO_ICMP, IP_PROTO_TCP, IP_PROTO_UDP } from './ip-packet';
export { type KeyChallenge, createKeyChallenge, keyChallengeFromPrivate, proveKey, verifyKeyProof } from './key-proof';
export { X25519_IMPLEMENTATION, tweetnaclX25519, scalarMult as x25519, scalarMultBase as x25519Base } from './x25519';
export { generatePrivateKey, isLowOrderPoint, keyFromBase64, keyToBase64, publicKeyFromPrivate, x25519Operations } from './keys';
export {
  AuthFailReason, CHALLENGE_NONCE_LEN, FrameType, RELAY_HEADER_LEN, RELAY_OFFSET_PAYLOAD, RELAY_OFFSET_VIP,
  RELAY_PROOF_CONTEXT, RELAY_PROTOCOL_VERSION, type Challenge,
  decodeAuth, decodeAuthFail, decodeAuthOk, decodeChallenge, decodeHello, decodePingSeq,
  encodeAuth, encodeAuthFail, encodeAuthOk, encodeChallenge, encodeHello, encodePing,
  isRelayFrameType, readU32, writeRelayHeader, writeU32,
} from './relay-frame';
export {
  PROBE_IP_PROTO, PROBE_KIND_REPLY, PROBE_KIND_REQUEST, PROBE_REQUEST_SIZE, type ProbeMessage, decodeProbe, encodeProbe, isProbePacket,
} from './probe';
export { RATE_LIMIT_BURST, RATE_LIMIT_PER_SECOND, RateLimiter, type RateLimiterOptions } from './ratelimiter';
export { REJECT_AFTER_MESSAGES_NUM } from './replay';
export { tai64nIsAfter } from './tai64n';
export { DEFAULT_TIMER_CONFIG, TimerStateMachine, type TimerConfig } from './timers';
export { Keypair, TransportDrop, paddedLength, parseTransportHeader, writeTransportHeader } from './transport';
