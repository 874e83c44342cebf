import test from 'ava';
import { describeRedis, parseRedisUrl, redactUrl, redisSecrets, redisSpecFrom, scrubSecrets } from '../../../common';

test('URLs become ioredis options: host, port, db, user, password, TLS for rediss', (t) => {
  t.like(parseRedisUrl('redis://10.0.0.5:6380/2'), { host: '10.0.0.5', port: 6380, db: 2 });
  t.like(parseRedisUrl('redis://10.0.0.5'), { host: '10.0.0.5', port: 6379 });
  t.like(parseRedisUrl('rediss://alice:p%40ss@redis.internal:6380'), { host: 'redis.internal', username: 'alice', password: 'p@ss', tls: { servername: 'redis.internal' } });
  t.like(parseRedisUrl('redis://:pw@h:1'), { password: 'pw' });
  t.is(parseRedisUrl('redis://h:1').tls, undefined);
  for (const bad of ['http://h:1', 'h:6379', 'redis://', 'redis://h:1/x']) t.throws(() => parseRedisUrl(bad), { name: 'RedisConfigError' }, bad);
  const e = t.throws(() => parseRedisUrl('http://u:hunter2secret@h:1'));
  t.false(e!.message.includes('hunter2secret'), 'the password is not in the message');
});

test('flags: the user, password and CA override the URL; Sentinel instead of a URL, with a name', (t) => {
  const o = redisSpecFrom({ url: 'redis://u:old@h:1', user: 'isthmus-relay', password: 'new', ca: 'PEM' });
  t.like(o, { username: 'isthmus-relay', password: 'new', tls: { ca: 'PEM' } });
  const s = redisSpecFrom({ sentinels: ['s1:26379', '10.0.0.2:26380'], sentinelName: 'm', password: 'p', sentinelPassword: 'sp', ca: 'PEM' });
  t.deepEqual(s.sentinels, [{ host: 's1', port: 26379 }, { host: '10.0.0.2', port: 26380 }]);
  t.like(s, { name: 'm', password: 'p', sentinelPassword: 'sp', enableTLSForSentinelMode: true, sentinelTLS: { ca: 'PEM' } });
  t.throws(() => redisSpecFrom({}), { message: /Missing --redis/ });
  t.throws(() => redisSpecFrom({ url: 'redis://h:1', sentinels: ['s:1'], sentinelName: 'm' }), { message: /either --redis URL or --redis-sentinel/ });
  t.throws(() => redisSpecFrom({ sentinels: ['s:1'] }), { message: /--redis-sentinel-name/ });
  t.throws(() => redisSpecFrom({ sentinels: ['nope'], sentinelName: 'm' }), { message: /--redis-sentinel must be HOST:PORT/ });
  t.throws(() => redisSpecFrom({ url: 'redis://h:1', sentinelName: 'm' }), { message: /need --redis-sentinel/ });
});

test('what goes into logs never holds the password', (t) => {
  t.is(redactUrl('redis://alice:s3cret@h:1/0'), 'redis://alice:***@h:1/0');
  t.is(redactUrl('redis://:s3cret@h:1'), 'redis://:***@h:1');
  t.is(describeRedis(redisSpecFrom({ url: 'rediss://h:6380/1', user: 'u', password: 's3cret' })), 'rediss://u@h:6380/1');
  t.is(describeRedis(redisSpecFrom({ sentinels: ['s:1'], sentinelName: 'm', password: 's3cret' })), 'sentinel m via s:1');
  t.is(describeRedis('redis://:s3cret@h:1'), 'redis://:***@h:1');
  const spec = redisSpecFrom({ url: 'redis://h:1', password: 's3cret', sentinelPassword: undefined });
  t.deepEqual(redisSecrets(spec), ['s3cret']);
  t.is(scrubSecrets('AUTH s3cret failed: s3cret', redisSecrets(spec)), 'AUTH *** failed: ***');
  t.deepEqual(redisSecrets('redis://:p%40ss@h:1'), ['p%40ss', 'p@ss']);
});
