/** Defaults of the coordinator, one place (ioredis `DEFAULT_REDIS_OPTIONS` style). */

/** Overlay CIDR the virtual IPs are taken from. @default '100.64.0.0/10' */
export const DEFAULT_CIDR = '100.64.0.0/10';
/** Redis key prefix: the schema's `DEFAULT_PREFIX` (common/redis-schema.ts). */
export { DEFAULT_PREFIX } from '../common';
/** A removed member's vip is reused only after this long. @default 1 h */
export const DEFAULT_QUARANTINE_MS = 60 * 60 * 1000;
/** A join challenge id is valid this long (stateless: challenge-token.ts; single use through a
 *  marker written by the join that uses it). @default 60 s */
export const CHALLENGE_TTL_SEC = 60;
/** Bearer session tokens handed out on join expire after this long (re-join to renew). @default 24 h */
export const DEFAULT_SESSION_TTL_MS = 24 * 60 * 60 * 1000;
/** An ephemeral member with no relay session for this long is removed. @default 5 min */
export const DEFAULT_EPHEMERAL_TIMEOUT_MS = 5 * 60 * 1000;
/** How often each coordinator runs the (idempotent) ephemeral sweep. @default 10 s */
export const DEFAULT_SWEEP_INTERVAL_MS = 10_000;
/** Longest time a `GET /v1/peers` long-poll is held open. @default 25 s */
export const DEFAULT_LONG_POLL_MS = 25_000;
/**
 * A peer-map stream (`GET /v1/peers/stream`) gets a frame at least this often: under the 30–60 s
 * idle timeouts of common load balancers and proxies. @default 25 s
 */
export const DEFAULT_STREAM_HEARTBEAT_MS = 25_000;
/** Unsent bytes a peer-map stream may hold before its next frame; past it the stream is dropped. @default 4 MiB */
export const DEFAULT_STREAM_MAX_BUFFER_BYTES = 4 * 1024 * 1024;
/** A peer-map stream ends after about this long (±10 %); the member reconnects and its token is checked again. @default 1 h */
export const DEFAULT_STREAM_MAX_LIFETIME_MS = 60 * 60 * 1000;
/** Change-feed entries kept in the Redis stream (approximate); older `since` gets a full map. */
export const CHANGE_FEED_MAXLEN = 10_000;
/** Largest accepted request body. @default 16 KiB */
export const DEFAULT_BODY_LIMIT = 16 * 1024;
/** Most tags on one token or member, and their longest length. */
export const MAX_TAGS = 32;
export const MAX_TAG_LEN = 64;
/** Largest accepted policy file (`PUT /v1/policy`). @default 256 KiB */
export const MAX_POLICY_BYTES = 256 * 1024;
/** What `policy get` and the coordinator's start say when no policy is set. */
export const NO_POLICY_NOTE = 'no policy: every member reaches every member';

/**
 * Per-source request limits: requests per window (1 min) from one address, `req.ip` (the TCP
 * peer, or a trusted proxy's X-Forwarded-For); 0 turns one off. Counted in memory by each
 * coordinator, so N coordinators behind a VIP let one source through up to N times the limit.
 *  - challenge/join: generous, because a NAT'd site (many members behind one address) re-joins
 *    all at once after an outage; each join is one challenge + one join, and agents retry.
 *    600/min lets 600 members behind one address in per minute per coordinator.
 *  - admin: the admin API as a whole (scripts tagging many members still fit).
 *  - adminFailures: failed admin bearer checks; past it, the source's admin requests are all
 *    refused (429), right token or wrong, until its window is over.
 */
export const DEFAULT_RATE_LIMITS = { challenge: 600, join: 600, admin: 600, adminFailures: 10, windowMs: 60_000 } as const;
export type RateLimits = { -readonly [K in keyof typeof DEFAULT_RATE_LIMITS]: number };
/** Sources each limiter remembers (least recently seen forgotten first): bounds its memory. */
export const RATE_LIMIT_SOURCES = 50_000;

/** Retry-After (seconds) of a 503 `redis-unavailable` answer: the coordinator cannot reach Redis. */
export const REDIS_DOWN_RETRY_AFTER_SEC = 5;

/** Membership records (membership-record.ts) are valid this long; members fetch a fresh one
 *  when less than half is left. @default 24 h */
export const DEFAULT_RECORD_TTL_MS = 24 * 60 * 60 * 1000;
/** The longest `--record-ttl`; a removal's `P:departed:<pub>` tombstone lives this long, so it
 *  outlives every record issued before it. */
export const MAX_RECORD_TTL_MS = 30 * 24 * 60 * 60 * 1000;
/** After Redis lost its data, new vip allocations are held this long so members re-assert
 *  first (`--reassert-grace`). @default 60 s */
export const DEFAULT_REASSERT_GRACE_MS = 60_000;
/** How often each coordinator checks that Redis still holds its state (`P:deployment`). @default 2 s */
export const DEFAULT_STATE_CHECK_MS = 2_000;
