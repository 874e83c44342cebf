import test from 'ava';
import { parseSwitchMaster } from '../../../common/sentinel-switch';
import { connectRedis, isRedisUnavailableError, redisRetryStrategy, redisSpecFrom, REDIS_RETRY_BASE_MS as BASE, REDIS_RETRY_CAP_MS as CAP, REDIS_SENTINEL_RETRY_CAP_MS } from '../../../common';

test('redisRetryStrategy: never gives up, jittered within [base, min(cap, base·2^(n-1))], capped', (t) => {
  const hi = redisRetryStrategy(() => 0.999999);
  const lo = redisRetryStrategy(() => 0);
  for (let n = 1; n <= 40; n++) {
    const ceiling = Math.min(CAP, BASE * 2 ** (n - 1));
    t.is(lo(n), BASE);
    const w = hi(n);
    t.true(typeof w === 'number' && w <= ceiling && w >= Math.max(BASE, ceiling - 1), `attempt ${n}: ${w}`);
  }
  const r = redisRetryStrategy();
  const draws = Array.from({ length: 100 }, () => r(30));
  t.true(draws.every((w) => w >= BASE && w <= CAP));
  t.true(new Set(draws).size > 20, 'jittered');
});

test('isRedisUnavailableError: connection trouble yes, command errors no', (t) => {
  t.true(isRedisUnavailableError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })));
  t.true(isRedisUnavailableError(new Error('Connection is closed.')));
  t.true(isRedisUnavailableError(Object.assign(new Error('Reached the max retries per request limit (which is 3).'), { name: 'MaxRetriesPerRequestError' })));
  t.true(isRedisUnavailableError(new Error('LOADING Redis is loading the dataset in memory')));
  // positive controls the other way: errors that retrying the connection cannot fix
  t.false(isRedisUnavailableError(new Error('WRONGTYPE Operation against a key holding the wrong kind of value')));
  t.false(isRedisUnavailableError(new Error('NOPERM this user has no permissions')));
  t.false(isRedisUnavailableError(new Error('overlay CIDR mismatch')));
  t.false(isRedisUnavailableError(undefined));
});

test('connectRedis behind Sentinel: READONLY reconnects and resends, a 1 s reconnect cap; a plain URL keeps the defaults', (t) => {
  const sentinel = connectRedis(redisSpecFrom({ sentinels: ['127.0.0.1:1'], sentinelName: 'm' }), { lazyConnect: true });
  const plain = connectRedis('redis://127.0.0.1:1', { lazyConnect: true });
  const dup = sentinel.duplicate({ lazyConnect: true });
  try {
    const s = sentinel.options;
    t.is(s.reconnectOnError!(new Error("READONLY You can't write against a read only replica.")), 2);
    t.false(s.reconnectOnError!(new Error('WRONGTYPE Operation against a key holding the wrong kind of value')));
    const waits = Array.from({ length: 200 }, () => s.retryStrategy!(30) as number);
    t.true(waits.every((w) => w >= BASE && w <= REDIS_SENTINEL_RETRY_CAP_MS), `max ${Math.max(...waits)}`);
    // Its duplicates (subscribers) inherit them, and follow switches too (same class).
    t.is(dup.options.reconnectOnError, s.reconnectOnError);
    t.is(dup.constructor, sentinel.constructor);
    // Positive control: without Sentinel, none of it, and the usual cap.
    const p = plain.options;
    t.falsy(p.reconnectOnError);
    const plainWaits = Array.from({ length: 200 }, () => p.retryStrategy!(30) as number);
    t.true(plainWaits.some((w) => w > REDIS_SENTINEL_RETRY_CAP_MS) && plainWaits.every((w) => w <= CAP));
  } finally {
    for (const c of [sentinel, dup, plain]) c.disconnect();
  }
});

test('parseSwitchMaster: the new master of our name only', (t) => {
  t.deepEqual(parseSwitchMaster('isthmus 10.0.0.5 6379 10.0.0.6 6380', 'isthmus'), { host: '10.0.0.6', port: 6380 });
  t.is(parseSwitchMaster('other 10.0.0.5 6379 10.0.0.6 6380', 'isthmus'), undefined);
  t.is(parseSwitchMaster('isthmus 10.0.0.5 6379', 'isthmus'), undefined);
  t.is(parseSwitchMaster('isthmus 10.0.0.5 6379 10.0.0.6 x', 'isthmus'), undefined);
});
