/** Known answers for the primitives: wireguard-go kdf_test.go, draft-irtf-cfrg-xchacha-03. */
import test from 'ava';
import { createCipheriv } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  aeadNonce, aeadOpen, aeadSeal, dh, hash, hchacha20, kdf1, kdf2, kdf3, mac, xaeadOpen, xaeadSeal,
} from '../../../protocol/noise';

const hex = (s: string) => Buffer.from(s, 'hex');

// wireguard-go device/kdf_test.go (BLAKE2s)
const KDF_VECTORS = [
  {
    key: '746573742d6b6579', input: '746573742d696e707574',
    t: ['6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633',
      'df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a',
      'fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24'],
  },
  {
    key: '776972656775617264', input: '776972656775617264',
    t: ['491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8',
      '1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f',
      '31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160'],
  },
  {
    key: '', input: '',
    t: ['8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0',
      '58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e',
      '0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e'],
  },
];

test('KDF1/2/3 match wireguard-go kdf_test.go', (t) => {
  for (const v of KDF_VECTORS) {
    const [a, b, c] = kdf3(hex(v.key), hex(v.input));
    t.deepEqual([a, b, c].map((x) => x.toString('hex')), v.t);
    t.deepEqual(kdf2(hex(v.key), hex(v.input)).map((x) => x.toString('hex')), v.t.slice(0, 2));
    t.is(kdf1(hex(v.key), hex(v.input)).toString('hex'), v.t[0]);
  }
});

test('multi-part HASH equals HASH of the concatenation; MAC is 16 bytes', (t) => {
  const ck = hash(Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'));
  t.is(ck.length, 32);
  t.deepEqual(hash(Buffer.from('Noise_IKpsk2_'), Buffer.from('25519_ChaChaPoly_BLAKE2s')), ck, 'multi-part hash');
  t.is(mac(Buffer.alloc(32, 1), Buffer.from('x')).length, 16);
});

test('HChaCha20 matches draft-irtf-cfrg-xchacha-03 §2.2.1', (t) => {
  const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  t.is(hchacha20(key, hex('000000090000004a0000000031415927')).toString('hex'),
    '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
});

test('XChaCha20-Poly1305 matches draft-irtf-cfrg-xchacha-03 §A.3.1', (t) => {
  const key = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x80 + i));
  const nonce = Buffer.from(Array.from({ length: 24 }, (_, i) => 0x40 + i));
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const pt = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
  const sealed = xaeadSeal(key, nonce, pt, aad);
  t.is(sealed.length, pt.length + 16);
  t.is(sealed.subarray(0, 32).toString('hex'), 'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb');
  t.is(sealed.subarray(-16).toString('hex'), 'c0875924c1c7987947deafd8780acf49');
  t.deepEqual(xaeadOpen(key, nonce, sealed, aad), pt);
  const bad = Buffer.from(sealed);
  bad[5] ^= 1;
  t.is(xaeadOpen(key, nonce, bad, aad), undefined);
  t.is(xaeadOpen(key, nonce, sealed, Buffer.from('other')), undefined);
  t.is(xaeadOpen(key, nonce.subarray(1), sealed, aad), undefined, 'short nonce is a failure, not a throw');
});

test('AEAD nonce is 4 zero bytes then the LE u64 counter', (t) => {
  t.is(aeadNonce(0x0102030405060708n).toString('hex'), '000000000807060504030201');
  const key = Buffer.alloc(32, 7);
  const pt = Buffer.from('hello');
  const c = createCipheriv('chacha20-poly1305', key, hex('000000000500000000000000'), { authTagLength: 16 });
  c.setAAD(Buffer.from('ad'), { plaintextLength: pt.length });
  const expected = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
  t.deepEqual(aeadSeal(key, 5, pt, Buffer.from('ad')), expected);
  t.deepEqual(aeadOpen(key, 5n, expected, Buffer.from('ad')), pt);
  t.is(aeadOpen(key, 6, expected, Buffer.from('ad')), undefined, 'wrong counter');
  t.is(aeadOpen(key, 5, expected.subarray(0, 15), Buffer.from('ad')), undefined, 'shorter than a tag');
  t.deepEqual(aeadOpen(key, 0, aeadSeal(key, 0, Buffer.alloc(0), Buffer.alloc(0)), Buffer.alloc(0)), Buffer.alloc(0));
});

test('dh rejects all-zero results (low-order points) and agrees both ways', (t) => {
  const a = nacl.box.keyPair();
  const b = nacl.box.keyPair();
  t.deepEqual(dh(a.secretKey, b.publicKey), dh(b.secretKey, a.publicKey));
  t.is(dh(a.secretKey, Buffer.alloc(32)), undefined, 'zero point');
  const one = Buffer.alloc(32);
  one[0] = 1;
  t.is(dh(a.secretKey, one), undefined, 'point of order 1');
  t.is(dh(a.secretKey, Buffer.alloc(31)), undefined, 'bad length');
});
