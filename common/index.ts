/**
 * @packageDocumentation
 * What every part shares and nothing else owns: the clock and the logger (injected, as in
 * wireguard-go and Tailscale), the batch-shaped packet I/O contracts between the data path and
 * the operating system, IPv4 addresses and prefixes (one strict parser), the Redis schema
 * (every key, channel and event between our own processes) and the one way to connect to Redis. The leaf of the import graph: it
 * imports no other part.
 */
export { ManualClock, type Clock, systemClock } from './clock';
export {
  ADDR_PATTERN, MAX_ADDR_LEN, SPECIAL_PURPOSE, type Prefix,
  contains, formatAddr, formatPrefix, isAddr, isSpecialPurpose, masked, parseAddr, parseNetwork, parsePrefix,
  prefixMask, prefixSize, readAddr, tryParseAddr, tryParsePrefix, writeAddr,
} from './ipv4';
export { type Logger, LOG_LEVELS, type LogLevel, forComponent, logLevel, redactKey, setLogLevel, silentLogger } from './logger';
export { DURATION_UNITS, type DurationUnit, InvalidDurationError, formatDuration, isBareDuration, parseDuration, parseDurationMicros } from './duration';
export { IDEAL_BATCH_SIZE, type DatagramBatch, type DatagramSocket, type PacketBatch, type TunDevice } from './packet-io';
export {
  CASE_INSENSITIVE_KEYS, DEFAULT_PREFIX, EventType, KEY_PATTERNS, decodeEvent, encodeEvent, isNodeEvent, keyHead, redisKeys,
  type ClusterEvent, type KeyName, type NodeEventType, type ProxyUserEvent, type RedisKeys, type SessionEvent, type SessionEventType,
} from './redis-schema';
export {
  DEFAULT_CHECK_TIMEOUT_MS, redisReadiness, runReadinessChecks, serveMetrics, serveReadinessPort,
  type MetricsServer, type MetricsServerOptions, type MetricsSource, type ReadinessCheck, type ReadinessPort, type ReadinessPortOptions, type ReadinessReport,
} from './metrics-server';
export {
  RedisConfigError, connectRedis, describeRedis, isRedisUnavailableError, parseRedisUrl, redactUrl, redisRetryStrategy, redisSecrets, redisSpecFrom, scrubSecrets, watchRedis,
  REDIS_RETRY_BASE_MS, REDIS_RETRY_CAP_MS, REDIS_SENTINEL_RETRY_CAP_MS, SENTINEL_FAILOVER_OPTIONS, type RedisStateLogger,
  type RedisConnectFlags, type RedisSpec,
} from './redis-connect';
export { byLabel, counterFrom, gaugeFrom, labelledFrom } from './prom';
