/**
 * X25519 through node:crypto (protocol/x25519.ts) agrees with tweetnacl, the implementation it
 * replaced, on random keys (unclamped ones too), reuses no stale private key, and reports a
 * low-order point as an all-zero result (noise.ts dh → undefined).
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { X25519_IMPLEMENTATION, scalarMult, scalarMultBase, tweetnaclX25519 } from '../../../protocol/x25519';
import { dh } from '../../../protocol/noise';

test('OpenSSL is in use on this Node', (t) => {
  t.is(X25519_IMPLEMENTATION, 'openssl');
});

test('scalarMult and scalarMultBase agree with tweetnacl on 200 random key pairs', (t) => {
  for (let i = 0; i < 200; i++) {
    const a = randomBytes(32);
    const bPub = tweetnaclX25519.scalarMultBase(randomBytes(32));
    t.deepEqual(scalarMult(a, bPub), tweetnaclX25519.scalarMult(a, bPub));
    t.deepEqual(scalarMultBase(a), tweetnaclX25519.scalarMultBase(a));
  }
});

test('a private key buffer changed in place is not served from the cache', (t) => {
  const a = randomBytes(32);
  const pub = tweetnaclX25519.scalarMultBase(randomBytes(32));
  t.deepEqual(scalarMult(a, pub), tweetnaclX25519.scalarMult(a, pub));
  randomBytes(32).copy(a);
  t.deepEqual(scalarMult(a, pub), tweetnaclX25519.scalarMult(a, pub), 'the new bytes are used');
  t.deepEqual(scalarMultBase(a), tweetnaclX25519.scalarMultBase(a));
});

test('a low-order public key gives zero (dh: undefined); an ordinary one does not', (t) => {
  const lowOrder = Buffer.from('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157', 'hex');
  t.deepEqual(scalarMult(randomBytes(32), lowOrder), Buffer.alloc(32));
  t.is(dh(randomBytes(32), lowOrder), undefined);
  t.truthy(dh(randomBytes(32), tweetnaclX25519.scalarMultBase(randomBytes(32))));
});
