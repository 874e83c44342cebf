import test from 'ava';
import fc from 'fast-check';
import Ajv from 'ajv';
import { parseDuration, InvalidDurationError } from '../../../common';
import { hashSecret, memberTags, newSecret, secretsEqual, tokenState, JOIN_TOKEN_PREFIX } from '../../../coordinator/token-rules';
import { joinBody, tokenCreateBody } from '../../../coordinator/schemas';
import { isAddr } from '../../../common/ipv4';
import { backoffDelay } from '../../../coordinator/client';

test('parseDuration', (t) => {
  t.is(parseDuration('500ms'), 500);
  t.is(parseDuration('30s'), 30_000);
  t.is(parseDuration('30'), 30_000);
  t.is(parseDuration('1.5m'), 90_000);
  t.is(parseDuration('1h'), 3_600_000);
  t.is(parseDuration('7d'), 604_800_000);
  t.is(parseDuration(2), 2000);
  for (const bad of ['', '-1s', '1w', 'h', '1 h x', 'NaN']) t.throws(() => parseDuration(bad), { instanceOf: InvalidDurationError }, bad);
  t.throws(() => parseDuration(-1));
});

test('secrets: prefixed, random, hashed, compared in constant time', (t) => {
  const a = newSecret(JOIN_TOKEN_PREFIX);
  const b = newSecret(JOIN_TOKEN_PREFIX);
  t.true(a.startsWith('isj_'));
  t.not(a, b);
  t.regex(hashSecret(a), /^[0-9a-f]{64}$/);
  t.true(secretsEqual(a, a));
  t.false(secretsEqual(a, b));
  t.false(secretsEqual(a, a + 'x'));
});

test('tokenState and memberTags', (t) => {
  t.is(tokenState({ usesLeft: 1, expiresAt: 0 }, 10), 'valid');
  t.is(tokenState({ usesLeft: -1, expiresAt: 0 }, 10), 'valid');
  t.is(tokenState({ usesLeft: 0, expiresAt: 0 }, 10), 'exhausted');
  t.is(tokenState({ usesLeft: 5, expiresAt: 10 }, 10), 'expired');
  t.is(tokenState({ usesLeft: 5, expiresAt: 11 }, 10), 'valid');
  t.deepEqual(memberTags(['b', 'a', 'b']), ['a', 'b']);
});

test('backoffDelay stays within [50, cap] and grows', (t) => {
  for (let i = 0; i < 30; i++) {
    t.true(backoffDelay(i, {}, () => 0) >= 50);
    t.true(backoffDelay(i, {}, () => 0.999999) <= 30_000);
  }
  t.is(backoffDelay(0, { minMs: 500 }, () => 0.5), 250);
  t.is(backoffDelay(3, { minMs: 500 }, () => 0.5), 2000);
});

// The same ajv settings api.ts gives fastify.
const ajv = new Ajv({ removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false });
const validJoin = ajv.compile(joinBody);
const validToken = ajv.compile(tokenCreateBody);
const good = {
  publicKey: Buffer.alloc(32, 1).toString('base64'), challengeId: 'abcdefghijklmnopqrstuv', proof: Buffer.alloc(32, 2).toString('base64'),
  originalIp: '10.0.0.1', hostname: 'host-1', tags: ['a'],
};

test('join schema accepts a good body and refuses every mutation of it', (t) => {
  t.true(validJoin(good));
  t.false(validJoin({ ...good, extra: 1 }));
  t.false(validJoin({ ...good, originalIp: '10.0.0.256' }));
  t.false(validJoin({ ...good, originalIp: '010.0.0.1' }));
  t.false(validJoin({ ...good, publicKey: Buffer.alloc(31).toString('base64') }));
  t.false(validJoin({ ...good, hostname: '-x' }));
  t.false(validJoin({ ...good, tags: ['a', 'a'] }));
  t.false(validJoin({ ...good, tags: 'a' }));
  t.false(validJoin({ ...good, token: 123 }));
  const { proof: _p, ...noProof } = good;
  t.false(validJoin(noProof));
});

test('schemas never throw on arbitrary JSON, and what they accept has the right shape', (t) => {
  fc.assert(fc.property(fc.oneof(fc.jsonValue(), fc.record({
    publicKey: fc.oneof(fc.string(), fc.constant(good.publicKey)), challengeId: fc.string(), proof: fc.oneof(fc.string(), fc.constant(good.proof)),
    originalIp: fc.oneof(fc.ipV4(), fc.string()), hostname: fc.oneof(fc.domain(), fc.string()), tags: fc.array(fc.string()),
  }, { requiredKeys: [] })), (v) => {
    if (validJoin(v)) {
      const b = v as typeof good;
      if (Buffer.from(b.publicKey, 'base64').length !== 32) return false;
      if (!isAddr(b.originalIp)) return false; // the schema accepts exactly the strict grammar
    }
    validToken(v);
    return true;
  }), { numRuns: 5000 });
  t.true(validToken({ uses: 3, ttl: '1h', tags: ['x'], ephemeral: true, originalCidrs: ['10.1.0.0/16'] }));
  // The prefix itself is parsed by the one strict parser (claim-rules.ts): 400 invalid-original-cidr.
  t.false(validToken({ originalCidrs: '10.1.0.0/16' }));
  t.false(validToken({ uses: 1.5 }));
  t.false(validToken({ uses: 0 }));
  t.false(validToken({ uses: -2 }));
  t.true(validToken({ uses: -1 }));
  t.false(validToken({ ttl: '1 hour' }));
  t.false(validToken({ foo: 1 }));
});
