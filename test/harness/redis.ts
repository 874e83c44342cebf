/** A private redis-server for tests (the implementation is the testbed's: the compiled bench
 *  and demo start one too, and they may not import from test/). */
export { startRedis, redisServerPath, makeTestCertificates, type RedisHandle, type StartRedisOptions } from '../../testbed';
