/** Wire types of the coordinator API, shared by the server (api.ts) and client.ts. */

/** One member as the registry holds it (admin views, `P:node:<vip>`). */
export interface Member {
  vip: string;
  originalIp: string;
  /** base64 X25519 static public key. */
  publicKey: string;
  hostname: string;
  /** From its join token and admin changes only (never chosen by the member). */
  tags: string[];
}

/**
 * One entry of a member's peer map: another member it may exchange packets with under the
 * policy (in either direction), or itself (a map always holds its own member).
 */
export interface Peer extends Member {
  /**
   * What this peer may open towards the member receiving the map: port specs as the policy
   * file writes them (`tcp/22`, `tcp/8000-9000`, `udp/53`, `icmp`, `*`), merged and sorted;
   * `["*"]` with no policy; `[]` when the peer may open nothing towards the receiver and is in
   * the map only because the receiver may open flows to it (their replies come back). The
   * receiving agent's inbound filter lets new flows from the peer in on these only. Always
   * sent by this coordinator; absent from coordinators that predate policies, which the
   * agent reads as `["*"]`.
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
  /**
   * 'none': the answer carries no map (`peers: []`, `map: 'none'`), only the cursor `version`;
   * the member takes its map from the stream (GET /v1/peers/stream). @default 'full'
   */
  map?: 'full' | 'none';
}

export interface JoinResponse {
  vip: string;
  cidr: string;
  sessionToken: string;
  peers: Peer[];
  version: number;
  /** Present when the join asked for no map: `peers` is empty, not the member's map. */
  map?: 'none';
  /**
   * The member's signed membership record (coordinator/membership-record.ts), to keep and
   * re-assert if Redis loses its data (POST /v1/reassert). Absent from a coordinator without
   * a signing key.
   */
  record?: string;
  /** Unix ms the record expires (fetch a fresh one, GET /v1/record, before then). */
  recordExpiresAt?: number;
}

/** `POST /v1/reassert`: restore the identity a signed record names, with a fresh key proof ('reassert'). Answered like a join. */
export interface ReassertRequest {
  publicKey: string;
  challengeId: string;
  /** base64 of proveKey(..., 'reassert') */
  proof: string;
  record: string;
}

/** `GET /v1/record`: a fresh signed record of the calling member's identity as Redis holds it now. */
export interface RecordResponse {
  record: string;
  recordExpiresAt: number;
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

export interface ProxyUserCreateRequest {
  /** PROXY_USER_NAME: 1-64 of A-Z a-z 0-9 _ . @ - (no `:`), starting with a letter or digit */
  name: string;
  /** at least one; what the policy sees as the source of the user's connections */
  tags: string[];
}

export interface ProxyUserView {
  name: string;
  tags: string[];
  createdAt: number;
}

/** The answer to a create: the generated password, shown once. */
export interface ProxyUserCreated extends ProxyUserView {
  password: string;
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

export interface NodeView extends Member {
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

/** `PUT /v1/policy` answer. */
export interface PolicySetResponse {
  ok: true;
  /** False when the policy was already exactly this (no event, no version). */
  changed: boolean;
  version: number;
  rules: number;
  /** Tags the policy names that no current member or token carries (allowed, but likely a typo). */
  unknownTags: string[];
  warnings: string[];
}

/** `GET /v1/policy` answer. */
export interface PolicyView {
  /** The policy in the file format, or null when none is set. */
  policy: { rules: { from: string[]; to: string[]; ports: string[] }[] } | null;
  /** Its canonical text (`policy get` prints it), or null. */
  text: string | null;
  /** One line saying what is in force, e.g. "no policy: every member reaches every member". */
  note: string;
  unknownTags: string[];
}

/** `POST /v1/policy/check` request: each side a vip, original IP or hostname; port e.g. `tcp/80`, `udp/53`, `icmp`. */
export interface PolicyCheckRequest {
  from: string;
  to: string;
  port: string;
}

export interface PolicyCheckResponse {
  allowed: boolean;
  /** Index of the first rule that allows the flow (absent: denied, or no policy). */
  rule?: number;
  /** That rule in the file format. */
  ruleText?: string;
  /** True when allowed because no policy is set. */
  noPolicy: boolean;
  from: { vip: string; hostname: string; tags: string[] };
  to: { vip: string; hostname: string; tags: string[] };
  fromTags: string[];
  toTags: string[];
  /** One line for people. */
  reason: string;
}
