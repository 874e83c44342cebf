import test from 'ava';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import {
  MESH_DATA_HEADER_LEN, MeshFrameType, decodeMeshHello, deriveMeshKey, encodeMeshHello, writeMeshDataHeader,
} from '../../../relay/mesh-frame';

const key = deriveMeshKey(Buffer.from('a shared mesh secret, 32+ bytes long'));
const hello = (over: Partial<Parameters<typeof encodeMeshHello>[0]> = {}) => ({
  type: MeshFrameType.HELLO as typeof MeshFrameType.HELLO, timestampMs: 1_700_000_000_000, nonce: randomBytes(16),
  echo: new Uint8Array(16), relayId: 'r1', ...over,
});

test('HELLO and ACK round-trip at any offset', (t) => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 }),
    fc.string({ minLength: 1, maxLength: 20 }).filter((s) => Buffer.byteLength(s) <= 64), fc.nat({ max: 2 ** 50 }),
    fc.boolean(), fc.nat({ max: 7 }), (nonce, echo, relayId, ts, ack, pad) => {
      const h = { type: ack ? MeshFrameType.HELLO_ACK : MeshFrameType.HELLO, timestampMs: ts, nonce, echo, relayId } as const;
      const f = encodeMeshHello(h, key);
      const buf = Buffer.concat([Buffer.alloc(pad), f, Buffer.alloc(3)]);
      const d = decodeMeshHello(buf, pad, f.length, key);
      t.truthy(d);
      t.deepEqual(d, { ...h, nonce: Uint8Array.from(nonce), echo: Uint8Array.from(echo) });
    }), { numRuns: 2000 });
});

test('any flipped bit, a wrong key or a truncation is rejected', (t) => {
  const f = encodeMeshHello(hello(), key);
  fc.assert(fc.property(fc.nat({ max: f.length * 8 - 1 }), (bit) => {
    const g = Buffer.from(f);
    g[bit >> 3] ^= 1 << (bit & 7);
    t.is(decodeMeshHello(g, 0, g.length, key), undefined);
  }), { numRuns: 2000 });
  t.is(decodeMeshHello(f, 0, f.length, deriveMeshKey(Buffer.from('another secret, also long enough'))), undefined);
  for (let n = 0; n < f.length; n++) t.is(decodeMeshHello(f, 0, n, key), undefined);
});

test('decoding arbitrary bytes never throws and never accepts', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 10 }), fc.nat({ max: 210 }), fc.constantFrom(0x21, 0x22, -1), (bytes, off, len, type) => {
    const b = Buffer.from(bytes);
    // Mostly plausible types, so the fuzzing reaches the length and MAC checks.
    if (b.length > off && type >= 0) b[off] = type;
    t.is(decodeMeshHello(b, off, len, key), undefined);
  }), { numRuns: 3000 });
});

test('encode refuses bad ids and nonces', (t) => {
  t.throws(() => encodeMeshHello(hello({ relayId: '' }), key), { instanceOf: RangeError });
  t.throws(() => encodeMeshHello(hello({ relayId: 'x'.repeat(65) }), key), { instanceOf: RangeError });
  t.throws(() => encodeMeshHello(hello({ nonce: new Uint8Array(15) }), key), { instanceOf: RangeError });
});

test('MESH_DATA header: bytes 4.. become a member DATA frame with the source vip', (t) => {
  const b = Buffer.alloc(MESH_DATA_HEADER_LEN + 4);
  writeMeshDataHeader(b, 0, 0x64400002, 0x64400001);
  t.deepEqual([...b.subarray(0, 12)], [0x20, 0, 0, 0, 100, 64, 0, 2, 100, 64, 0, 1]);
});
