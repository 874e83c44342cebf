/** The coordinator's import surface for other parts (agent, relay, mapper, cli). */
export { createCoordinator, type Coordinator, type CoordinatorOptions } from './server';
export { CoordinatorClient, CoordinatorHttpError, SessionExpiredError, AnswerVerificationError, CoordinatorTlsError, InsecureCoordinatorError, backoffDelay, RECONNECT_JITTER_MS,
  type CoordinatorClientOptions, type AnswerVerification,
  type JoinOptions, type PeerMapUpdate, type BackoffOptions, type WatchOptions } from './client';
export type * from './types';
export { connectRedis, redactUrl, type RedisSpec } from './redis-connect';
export { parseVipPool, vipAt, offsetOf, type VipPool } from './ipam';
export * as defaults from './constants';
export { RedisRegistry, peerFromHash, type NodeRecord } from './redis-store';
export { TokenStore } from './token-store';
export { ProxyUserStore, ProxyUserExistsError, PROXY_USER_NAME, DEFAULT_SCRYPT, proxyUserFromHash, verifyProxyPassword,
  type ProxyUserRecord, type ScryptParams } from './proxy-users';
export { parseOriginalCidrs } from './claim-rules';
export { JOIN_RESULTS, RATE_LIMITS, registerCoordinatorMetrics, type JoinCounters, type JoinResult, type RateLimitCounters,
  type RateLimitName } from './metrics';
export { generateSigningKey, loadSigningKey, parseSigningPublicKey, signingPublicKey, signAnswer, verifyAnswer, newNonce,
  signBatch, verifySignedAnswer, BatchSigner, PROOF_HEADER, type AnswerContext, type AnswerSignature } from './answer-signing';
export { nodeFilterQuery, nodeMatches, parseNodeFilter, type NodeFilter, type NodeFilterInput, type NodeFilterQuery } from './node-filter';
export { issueMembershipRecord, verifyMembershipRecord, readMembershipRecordUnverified, type MembershipRecord,
  type RecordCheck } from './membership-record';
