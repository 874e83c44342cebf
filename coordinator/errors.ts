import type { RateLimitName } from './metrics';

/**
 * One class per condition (libp2p style). `code` is the machine-readable reason the HTTP API
 * puts in `{ error: code, message }`; `statusCode` is what fastify answers with.
 */
export class CoordinatorError extends Error {
  override name = 'CoordinatorError';
  constructor(readonly code: string, message: string, readonly statusCode: number) {
    super(message);
  }
}

/** Reasons the join script can refuse, mapped to HTTP status (see coordinator/README.md). */
export const JoinRefusal = {
  'challenge-unknown': 401,
  'token-required': 401,
  'token-unknown': 401,
  'token-expired': 401,
  'token-exhausted': 401,
  'key-removed': 403,
  'original-ip-not-allowed': 403,
  'original-ip-taken': 409,
  'hostname-taken': 409,
  'pool-exhausted': 503,
  'allocations-held': 503,
  // Re-assert of a membership record (POST /v1/reassert):
  'record-invalid': 401,
  'record-expired': 401,
  'record-other-deployment': 401,
  'member-removed': 403,
  'record-superseded': 409,
  'vip-taken': 409,
} as const;
export type JoinRefusalCode = keyof typeof JoinRefusal;

const messages: Record<JoinRefusalCode, string> = {
  'challenge-unknown': 'challenge unknown, expired or already used: fetch a new one from GET /v1/challenge',
  'token-required': 'this public key is not a member yet: a join token is required',
  'token-unknown': 'join token unknown or revoked',
  'token-expired': 'join token expired',
  'token-exhausted': 'join token has no uses left',
  'key-removed': 'this public key was removed by an admin and may not join again until an admin allows it (isthmus node allow-key)',
  'original-ip-not-allowed': 'original IP is neither the address this join comes from nor inside a prefix the join token allows (isthmus token create --original-cidr)',
  'original-ip-taken': 'original IP is held by another member; only an admin can free it (isthmus node remove)',
  'hostname-taken': 'hostname is held by another member; pick another --hostname, or an admin frees it (isthmus node remove)',
  'pool-exhausted': 'no free virtual IP left in the overlay CIDR',
  'allocations-held': 'Redis lost its data and the coordinators are rebuilding it: new virtual IPs are held while existing members '
    + 're-assert theirs (--reassert-grace); retry after the Retry-After seconds',
  'record-invalid': 'membership record refused',
  'record-expired': 'membership record expired: join again with a token',
  'record-other-deployment': 'membership record belongs to another deployment',
  'member-removed': 'this member was removed after the record was issued: join again with a token',
  'record-superseded': 'this key holds another virtual IP now: the record is stale',
  'vip-taken': 'the record\'s virtual IP is held by another member now; only an admin can free it (isthmus node remove), or join again with a token',
};

export class JoinRefusedError extends CoordinatorError {
  override name = 'JoinRefusedError';
  /** Set for `allocations-held`: seconds until new allocations are served again (Retry-After). */
  readonly retryAfterSec?: number;
  constructor(code: JoinRefusalCode, detail?: string) {
    const heldSec = code === 'allocations-held' ? Math.max(1, Math.ceil(Number(detail) / 1000) || 1) : undefined;
    if (heldSec !== undefined) detail = `${heldSec} s left`;
    super(code, detail ? `${messages[code]} (${detail})` : messages[code], JoinRefusal[code]);
    this.retryAfterSec = heldSec;
  }
}

export class UnauthorizedError extends CoordinatorError {
  override name = 'UnauthorizedError';
  constructor(message = 'missing or invalid bearer token') {
    super('unauthorized', message, 401);
  }
}

export class NotFoundError extends CoordinatorError {
  override name = 'NotFoundError';
  constructor(what: string) {
    super('not-found', `${what} not found`, 404);
  }
}

export class BadRequestError extends CoordinatorError {
  override name = 'BadRequestError';
  constructor(code: string, message: string) {
    super(code, message, 400);
  }
}

/** The Redis state was made for another overlay CIDR: refusing to allocate from a second one. */
export class CidrMismatchError extends CoordinatorError {
  override name = 'CidrMismatchError';
  constructor(stored: string, wanted: string) {
    super('cidr-mismatch', `Redis holds state for CIDR ${stored}, not ${wanted}: use the same --cidr or another --prefix`, 500);
  }
}

/** Too many requests from one source (per-source limits, api.ts); answered with `Retry-After`. */
export class RateLimitedError extends CoordinatorError {
  override name = 'RateLimitedError';
  constructor(readonly limit: RateLimitName, what: string, readonly retryAfterSec: number) {
    super('rate-limited', `too many ${what} from this address: retry in ${retryAfterSec} s`, 429);
  }
}
