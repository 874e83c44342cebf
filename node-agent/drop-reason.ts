/** Why the agent dropped a packet. Each reason is also a metric label; drops are counted, never thrown. */
export const AGENT_DROP_REASONS = [
  'inside-malformed', // TUN gave us something that is not an IPv4 packet we can route
  'inside-ipv6', // IPv6 on the TUN: the overlay is IPv4
  'no-route', // no peer owns the destination
  'no-endpoint', // the peer has no known endpoint yet
  'staged-overflow', // too many packets waiting for a handshake
  'outside-malformed', // a datagram that is no WireGuard message
  'bad-mac1', // handshake message not addressed to our key
  'cookie-required', // under load and the sender has no valid cookie: answered with a cookie reply
  'handshake-ratelimited', // handshake messages from one source (relayed: its overlay address; direct: its IPv4) above 20/s: dropped before any X25519
  'handshake-failed', // initiation/response did not decrypt/verify, or unknown peer key
  'handshake-replay', // initiation timestamp not newer than the last one
  'handshake-flood', // initiations from one peer faster than the spec allows
  'unknown-index', // transport/response/cookie for an index we do not have
  'transport-auth', // transport message failed authentication
  'transport-replay', // transport counter already seen or too old
  'keypair-expired', // transport under a keypair older than REJECT_AFTER_TIME
  'inner-malformed', // decrypted packet is not a valid IPv4 packet (also: a transport header cut short, a tiny or overlapping fragment)
  'source-not-allowed', // inner source address not owned by the sending peer (cryptokey routing)
  'not-our-address', // inner destination is not this member's own (its virtual IP, its original IP): a peer may not use us as a router
  'policy', // the peer may not open this flow (its `inbound` ports), and it answers no flow we opened
] as const;

export type AgentDropReason = (typeof AGENT_DROP_REASONS)[number];

export type DropCounters = Record<AgentDropReason, number>;

export function newDropCounters(): DropCounters {
  return Object.fromEntries(AGENT_DROP_REASONS.map((r) => [r, 0])) as DropCounters;
}
