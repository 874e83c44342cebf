/** The coordinator's import surface for other parts (agent, relay, mapper, cli). */
export { createCoordinator, type Coordinator, type CoordinatorOptions } from './server';
export { CoordinatorClient, CoordinatorHttpError, SessionExpiredError, AnswerVerificationError, CoordinatorTlsError, backoffDelay, REPOLL_JITTER_MS,
  type CoordinatorClientOptions, type AnswerVerification,
  type JoinOptions, type PeerMapUpdate, type BackoffOptions, type WatchOptions } from './client';
export type * from './types';
export { connectRedis, redactUrl, type RedisSpec } from './redis-connect';
export { parseVipPool, vipAt, offsetOf, type VipPool } from './ipam';
export { parseDuration } from './duration';
export * as defaults from './constants';
export { RedisRegistry, peerFromHash, type NodeRecord } from './redis-store';
export { TokenStore } from './token-store';
export { parseOriginalCidrs } from './claim-rules';
export { JOIN_RESULTS, RATE_LIMITS, registerCoordinatorMetrics, type JoinCounters, type JoinResult, type RateLimitCounters,
  type RateLimitName } from './metrics';
export { generateSigningKey, loadSigningKey, parseSigningPublicKey, signingPublicKey, signAnswer, verifyAnswer, newNonce,
  signBatch, verifySignedAnswer, BatchSigner, PROOF_HEADER, type AnswerContext, type AnswerSignature } from './answer-signing';
