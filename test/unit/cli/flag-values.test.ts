import test from 'ava';
import { busyPollFlag, durationFlag, parseHostPort } from '../../../cli/flag-values';
import { formatDuration, parseDuration, parseDurationMicros } from '../../../common';

test('one HOST:PORT parser: hosts, [v6], defaults, ranges; errors name the flag', (t) => {
  t.deepEqual(parseHostPort('0.0.0.0:8080', '--listen'), { host: '0.0.0.0', port: 8080 });
  t.deepEqual(parseHostPort('[::1]:9100', '--metrics'), { host: '::1', port: 9100 });
  t.deepEqual(parseHostPort('localhost:0', '--metrics'), { host: 'localhost', port: 0 });
  t.deepEqual(parseHostPort('1080', '--socks', { defaultHost: '127.0.0.1' }), { host: '127.0.0.1', port: 1080 });
  t.deepEqual(parseHostPort(':1080', '--socks', { defaultHost: '0.0.0.0' }), { host: '0.0.0.0', port: 1080 });
  for (const bad of ['1080', ':1080', 'a:b', '1.2.3.4:', '1.2.3.4:70000', '']) t.throws(() => parseHostPort(bad, '--listen'), { message: /^--listen/ }, bad);
  t.throws(() => parseHostPort(['a:1', 'b:2'], '--metrics'), { message: /--metrics takes one HOST:PORT/ });
  t.throws(() => parseHostPort('relay.example:7000', '--listen', { ipv4: true }), { message: /--listen: host must be an IPv4 address/ });
  t.notThrows(() => parseHostPort('10.0.0.1:7000', '--listen', { ipv4: true }));
});

test('durations: units, the bare-number legacy unit, ranges; errors name the flag', (t) => {
  t.is(durationFlag('250ms', '--x', { bare: 's' }), 250);
  t.is(durationFlag('1.5s', '--x', { bare: 's' }), 1500);
  t.is(durationFlag('24h', '--x', { bare: 's' }), 86_400_000);
  t.is(durationFlag('10', '--relay-keepalive', { bare: 'ms' }), 10, 'bare: the old unit of the flag');
  t.is(durationFlag(10, '--keepalive', { bare: 's' }), 10_000);
  t.throws(() => durationFlag('soon', '--keepalive', { bare: 's' }), { message: /^--keepalive must be a duration/ });
  t.throws(() => durationFlag('10w', '--keepalive', { bare: 's' }), { message: /^--keepalive must be a duration/ });
  t.throws(() => durationFlag('2h', '--keepalive', { bare: 's', min: 1000, max: 3_600_000 }), { message: /--keepalive must be between 1s and 3600s/ });
  t.throws(() => durationFlag('10ms', '--relay-keepalive', { bare: 'ms', min: 50 }), { message: /between 50ms/ });
  t.is(parseDuration('30'), 30_000, 'the API default: bare seconds');
  for (const ms of [250, 1000, 10_000, 90_000, 3_600_000, 86_400_000, 1500]) t.is(parseDuration(formatDuration(ms)), ms);
  t.is(formatDuration(10_000), '10s');
  t.is(formatDuration(1500), '1500ms');
});

test('--busy-poll: microseconds (us, µs, ms), 0 is off, at most 1ms; errors name the flag', (t) => {
  t.is(busyPollFlag('50us'), 50);
  t.is(busyPollFlag('50µs'), 50);
  t.is(busyPollFlag('0.1ms'), 100);
  t.is(busyPollFlag('1ms'), 1000);
  t.is(busyPollFlag('0'), 0);
  t.is(busyPollFlag(0), 0);
  t.is(parseDurationMicros('0.5us'), 1, 'rounded to whole microseconds');
  for (const bad of ['50', 'fast', '-5us', '10w', '', '50 ns']) t.throws(() => busyPollFlag(bad), { message: /^--busy-poll must be a duration like 50us/ }, bad);
  t.throws(() => busyPollFlag(['50us', '0']), { message: /^--busy-poll must be a duration/ }, 'given twice');
  t.throws(() => busyPollFlag('2ms'), { message: /^--busy-poll must be at most 1ms/ });
  t.throws(() => busyPollFlag('1s', '--x'), { message: /^--x must be at most 1ms/ });
});
