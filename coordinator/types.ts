/** Wire types of the coordinator API, shared by the server (api.ts) and client.ts. */

/** One member as other members see it. */
export interface Peer {
  vip: string;
  originalIp: string;
  /** base64 X25519 static public key. */
  publicKey: string;
  hostname: string;
  tags: string[];
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
  ephemeral?: boolean;
}

export interface TokenView {
  id: string;
  usesLeft: number;
  expiresAt: number;
  tags: string[];
  ephemeral: boolean;
  createdAt: number;
  state: 'valid' | 'expired' | 'exhausted';
}

export interface NodeView extends Peer {
  created: number;
  lastSeen: number;
  ephemeral: boolean;
  session?: Record<string, string>;
}

export interface ErrorBody {
  error: string;
  message: string;
}
