/** Kept for existing importers: the Redis connection lives in common/redis-connect.ts. */
export { connectRedis, redactUrl, type RedisSpec } from '../common';
