/** Wire types of the coordinator API, shared by the server (api.ts) and client.ts. */

/** One member as other members see it. */
export interface Peer {
  vip: string;
  originalIp: string;
  /** base64 X25519 static public key. */
  publicKey: string;
  hostname: string;
  tags: string[];
  /**
   * What this peer may open towards the member receiving the map: port specs as the policy
   * file writes them (`tcp/22`, `tcp/8000-9000`, `udp/53`, `icmp`, `*`); `["*"]` with no
   * policy; `[]` when it may open nothing (it is in the map because the receiver may open
   * flows to it). Absent from older coordinators: the agent reads that as `["*"]`.
   */
  inbound?: string[];
}

export interface PeerChanges {
  version: number;
  upserts: Peer[];
  removals: string[];
}

/** `GET /v1/peers` answer: the full map, or the changes after `since`. */
export type PeersResponse =
  | { full: true; version: number; peers: Peer[] }
  | ({ full: false } & PeerChanges);

export interface ChallengeResponse {
  id: string;
  /** base64, 32 bytes */
  ephemeralPublic: string;
  /** base64, 16 bytes */
  nonce: string;
}

export interface JoinRequest {
  publicKey: string;
  challengeId: string;
  /** base64 of proveKey(..., 'join') */
  proof: string;
  token?: string;
  originalIp: string;
  hostname: string;
  /** Refused unless empty (400 tags-not-allowed): tags come from the token and the admin. */
  tags?: string[];
}

export interface JoinResponse {
  vip: string;
  cidr: string;
  sessionToken: string;
  peers: Peer[];
  version: number;
}

export interface TokenCreateRequest {
  uses?: number;
  /** seconds, or a duration string like "1h" */
  ttl?: number | string;
  tags?: string[];
  /** Prefixes a member joining with the token may claim its original IP in, e.g. ['10.1.0.0/16']. */
  originalCidrs?: string[];
  ephemeral?: boolean;
}

export interface TokenView {
  id: string;
  usesLeft: number;
  expiresAt: number;
  tags: string[];
  originalCidrs: string[];
  ephemeral: boolean;
  createdAt: number;
  state: 'valid' | 'expired' | 'exhausted';
}

export interface NodeView extends Peer {
  created: number;
  lastSeen: number;
  ephemeral: boolean;
  originalCidrs: string[];
  session?: Record<string, string>;
}

/** `POST /v1/nodes/:member/tags`: admin tag change; additions first, then removals. */
export interface NodeTagsRequest {
  add?: string[];
  remove?: string[];
}

export interface NodeTagsResponse {
  vip: string;
  tags: string[];
  version: number;
}

/** A key an admin removed; its joins are refused (403 key-removed) until allowed again. */
export interface RemovedKeyView {
  publicKey: string;
  vip: string;
  hostname: string;
  removedAt: number;
}

export interface ErrorBody {
  error: string;
  message: string;
}
