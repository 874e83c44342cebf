/**
 * Why the relay dropped a datagram. Each reason is also a metric label
 * (`isthmus_relay_drops_total{reason}`), after derp's dropReason* constants. Dropping is
 * counted, never thrown.
 */
export const DROP_REASONS = [
  /** shorter than the 8-byte header (or than its type's fixed payload) */
  'too-short',
  /** first byte outside 0x10..0x1f, or a DATA frame whose payload is not a WireGuard message */
  'malformed',
  /** DATA/PING from a 4-tuple with no authenticated session (answered with REAUTH, rate-limited) */
  'unbound-source',
  /** DATA for an overlay address with no session here (answered with UNREACHABLE, rate-limited) */
  'unknown-destination',
  /** a type in the relay range this relay does not know, from a bound member */
  'unknown-type',
  /** a relay→member type (CHALLENGE, PONG, ...) sent to the relay */
  'unexpected-type',
  /** HELLO/AUTH with a version this relay does not speak */
  'bad-version',
  /** AUTH with a wrong key proof */
  'auth-failed',
  /** AUTH echoing a challenge that is expired, foreign, forged or issued to another 4-tuple
   *  (checked before any work budget is spent: a garbage-AUTH flood lands here) */
  'auth-bad-challenge',
  /** AUTH reusing a challenge whose key proof was already checked */
  'auth-replayed',
  /** AUTH from a key the directory does not know */
  'auth-unknown-key',
  /** AUTH claiming an overlay address that is not the key's */
  'auth-vip-mismatch',
  /** AUTH while the directory lookup failed */
  'auth-unavailable',
  /** too many AUTHs waiting for the directory, or over the proof-check budget (per source IP / global) */
  'auth-overload',
  /** MESH_DATA from an address that has not proved the mesh key (answered with MESH_REAUTH) */
  'mesh-untrusted',
  /** MESH_DATA from a trusted address whose tag does not verify (forged, altered, or sealed with a key we no longer hold) */
  'mesh-bad-mac',
  /** MESH_DATA whose tag verified but whose counter was seen before or is older than the replay window */
  'mesh-replayed',
  /** MESH_DATA for a vip with no session on this (home) relay: the member moved or left */
  'mesh-unknown-destination',
  /** DATA for a remote member while its home relay is being looked up or handshaken */
  'mesh-route-pending',
  /** DATA for a vip with no cached route while the sender (or the relay) is over its route
   *  lookup budget: a member sending to random vips cannot buy unbounded Redis lookups */
  'mesh-lookup-limited',
  /** MESH_HELLO/ACK with a bad MAC, stale timestamp, reused nonce or unknown echo */
  'mesh-bad-hello',
  /** MESH_REAUTH with a bad MAC (forged, or a 4-byte one from an older relay), stale timestamp,
   *  reused nonce, or naming a relay that is not our peer at the address it came from */
  'mesh-bad-reauth',
  /** DATA or MESH_DATA between two members the access policy does not connect (policy/) */
  'policy',
  /** DATA or MESH_DATA while the policy or the other member's tags are still being loaded
   *  (past the hold queue's bounds or its 2 s wait, or the lookup failed) */
  'policy-pending',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

export type DropCounters = Record<DropReason, number>;

export function emptyDropCounters(): DropCounters {
  const c = {} as DropCounters;
  for (const r of DROP_REASONS) c[r] = 0;
  return c;
}
