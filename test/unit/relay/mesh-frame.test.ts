import test from 'ava';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import {
  MESH_DATA_HEADER_LEN, MESH_REAUTH_MIN_LEN, MESH_REPLAY_WINDOW, MeshFrameType, ReplayWindow, decodeMeshHello, decodeMeshReauth, deriveMeshDataKey,
  deriveMeshKey, encodeMeshHello, encodeMeshReauth, expandMeshCounter, openMeshData, readMeshCounter, sealMeshData, writeMeshDataHeader,
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
  t.truthy(decodeMeshHello(f, 0, f.length, key), 'positive control: the frame as sent decodes');
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

test('MESH_DATA header: 16 bytes; bytes 8.. become a member DATA frame with the source vip', (t) => {
  // The largest WireGuard message of a 1420-byte tunnel: 16 header + 1424 padded + 16 tag.
  t.is(MESH_DATA_HEADER_LEN + 1456 + 28, 1500, 'a full-size WireGuard message still fits a 1500-byte link');
  const b = Buffer.alloc(MESH_DATA_HEADER_LEN + 4, 0xee);
  writeMeshDataHeader(b, 0, 0x64400002, 0x64400001);
  t.is(b[0], 0x20);
  t.deepEqual([...b.subarray(1, 8)], new Array(7).fill(0), 'counter and tag zero until sealed');
  t.deepEqual([...b.subarray(8, 16)], [100, 64, 0, 2, 100, 64, 0, 1]);
  sealMeshData(b, 0, b.length, deriveMeshDataKey(key, randomBytes(16), randomBytes(16), 'a', 'b'), 0x50102);
  t.is(readMeshCounter(b, 0), 0x0102, 'the low 16 bits go on the wire');
});

function sealed(k: ReturnType<typeof deriveMeshDataKey>, counter: number, pad = 0): Buffer {
  const b = Buffer.alloc(pad + MESH_DATA_HEADER_LEN + 100);
  writeMeshDataHeader(b, pad, 0x64400002, 0x64400001);
  randomBytes(100).copy(b, pad + MESH_DATA_HEADER_LEN);
  sealMeshData(b, pad, b.length - pad, k, counter);
  return b;
}

test('MESH_DATA tags: sealed frames open under the same direction key and counter only; any flipped header bit is refused', (t) => {
  const n1 = randomBytes(16);
  const n2 = randomBytes(16);
  const k = deriveMeshDataKey(key, n1, n2, 'r1', 'r2');
  t.is(k.length, 16, 'a raw 16-byte SipHash key');
  const f = sealed(k, 70_007, 3);
  const len = f.length - 3;
  t.true(openMeshData(f, 3, len, k, 70_007), 'positive control');
  t.true(openMeshData(f, 3, len, deriveMeshDataKey(key, n1, n2, 'r1', 'r2'), 70_007), 'both ends derive the same key');
  t.false(openMeshData(f, 3, len, k, 70_007 - 65_536), 'same low bits, other counter');
  t.false(openMeshData(f, 3, len, k, 70_007 + 2 ** 32), 'same low 32 bits, other counter');
  t.false(openMeshData(f, 3, len, deriveMeshDataKey(key, n1, n2, 'r2', 'r1'), 70_007), 'the other direction');
  t.false(openMeshData(f, 3, len, deriveMeshDataKey(key, n2, n1, 'r1', 'r2'), 70_007), 'another handshake');
  t.false(openMeshData(f, 3, len, deriveMeshDataKey(deriveMeshKey(Buffer.from('another secret, also long enough')), n1, n2, 'r1', 'r2'), 70_007), 'another mesh key');
  // Every bit of type, tag, dst vip and src vip (bytes 0 and 3..15; bytes 1-2 are the counter's
  // low bits, which the receiver expands and the tag covers through the full counter).
  for (let bit = 0; bit < MESH_DATA_HEADER_LEN * 8; bit++) {
    if (bit >= 8 && bit < 24) continue;
    const g = Buffer.from(f);
    g[3 + (bit >> 3)] ^= 1 << (bit & 7);
    t.false(openMeshData(g, 3, len, k, 70_007), `header bit ${bit}`);
  }
  // Every bit of the full counter the receiver restores.
  for (let bit = 0; bit < 48; bit++) {
    const other = bit < 31 ? 70_007 ^ (1 << bit) : 70_007 + 2 ** bit; // 70,007 < 2^17: higher bits are clear
    t.false(openMeshData(f, 3, len, k, other), `counter bit ${bit}`);
  }
  t.false(openMeshData(f, 3, MESH_DATA_HEADER_LEN - 1, k, 70_007), 'shorter than a header');
  t.false(openMeshData(f, 3, len + 1, k, 70_007), 'past the end of the buffer');
});

test('MESH_DATA tags cover the header only: a flipped or truncated payload passes the mesh layer, since the members\' WireGuard authenticates the payload end to end and drops it', (t) => {
  const k = deriveMeshDataKey(key, randomBytes(16), randomBytes(16), 'r1', 'r2');
  const f = sealed(k, 70_007, 3);
  const len = f.length - 3;
  fc.assert(fc.property(fc.nat({ max: (len - MESH_DATA_HEADER_LEN) * 8 - 1 }), (bit) => {
    const g = Buffer.from(f);
    g[3 + MESH_DATA_HEADER_LEN + (bit >> 3)] ^= 1 << (bit & 7);
    t.true(openMeshData(g, 3, len, k, 70_007));
  }), { numRuns: 500 });
  t.true(openMeshData(f, 3, len - 1, k, 70_007), 'truncated payload');
  t.true(openMeshData(f, 3, MESH_DATA_HEADER_LEN, k, 70_007), 'header only');
});

test('counter expansion: the full counter nearest the highest accepted', (t) => {
  t.is(expandMeshCounter(0, -1), 0);
  t.is(expandMeshCounter(5, -1), 5);
  t.is(expandMeshCounter(0xffff, -1), 0xffff, 'never negative');
  t.is(expandMeshCounter(0x0002, 0xfffe), 0x10002, 'across the wrap');
  t.is(expandMeshCounter(0xfffe, 0x10002), 0xfffe, 'a late frame from before the wrap');
  fc.assert(fc.property(fc.nat({ max: 2 ** 40 }), fc.integer({ min: -30_000, max: 30_000 }), (top, d) => {
    const n = top + 1 + d;
    if (n < 0) return;
    t.is(expandMeshCounter(n % 65_536, top), n);
  }), { numRuns: 2000 });
});

test('replay window: each counter once, reordering within the window, too old refused', (t) => {
  const w = new ReplayWindow();
  t.true(w.accept(0));
  t.false(w.accept(0));
  t.true(w.accept(5));
  t.true(w.accept(3), 'late but new');
  t.false(w.accept(3));
  t.true(w.accept(5000));
  t.false(w.accept(5000 - MESH_REPLAY_WINDOW), 'too old');
  t.true(w.accept(5001 - MESH_REPLAY_WINDOW), 'oldest still inside');
  t.false(w.accept(-1));
  // Against a model: a set of seen counters, window enforced.
  fc.assert(fc.property(fc.array(fc.nat({ max: 3000 }), { maxLength: 400 }), (ns) => {
    const win = new ReplayWindow();
    const seen = new Set<number>();
    let top = -1;
    for (const n of ns) {
      const expect = !seen.has(n) && n + MESH_REPLAY_WINDOW > top;
      t.is(win.accept(n), expect);
      if (expect) { seen.add(n); top = Math.max(top, n); }
    }
  }), { numRuns: 300 });
});

test('MESH_REAUTH: round-trips under the mesh key; any flipped bit, another key, a truncation or the old 4-byte form is refused', (t) => {
  const r = { timestampMs: 1_700_000_000_123, nonce: randomBytes(16), relayId: 'relay-b' };
  const f = encodeMeshReauth(r, key);
  t.is(f[0], MeshFrameType.REAUTH);
  t.is(f.length, MESH_REAUTH_MIN_LEN - 1 + Buffer.byteLength(r.relayId));
  const padded = Buffer.concat([Buffer.alloc(5, 9), f, Buffer.alloc(3)]);
  t.deepEqual(decodeMeshReauth(padded, 5, f.length, key), { timestampMs: r.timestampMs, nonce: Uint8Array.from(r.nonce), relayId: r.relayId }, 'positive control');
  for (let bit = 0; bit < f.length * 8; bit++) {
    const g = Buffer.from(f);
    g[bit >> 3] ^= 1 << (bit & 7);
    t.is(decodeMeshReauth(g, 0, g.length, key), undefined, `bit ${bit}`);
  }
  t.is(decodeMeshReauth(f, 0, f.length, deriveMeshKey(Buffer.from('another mesh secret, 32+ bytes long'))), undefined, 'another mesh key');
  t.is(decodeMeshReauth(f, 0, f.length - 1, key), undefined, 'truncated');
  t.is(decodeMeshReauth(Buffer.from([MeshFrameType.REAUTH, 0, 0, 0]), 0, 4, key), undefined, 'the old unauthenticated form');
  // A HELLO's MAC does not make a REAUTH (own label), whatever the bytes.
  const h = encodeMeshHello(hello(), key);
  h[0] = MeshFrameType.REAUTH;
  t.is(decodeMeshReauth(h, 0, h.length, key), undefined);
  t.notThrows(() => fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat({ max: 130 }), (b, len) => {
    if (b.length > 0) b[0] = MeshFrameType.REAUTH;
    return decodeMeshReauth(b, 0, Math.min(len, b.length), key) === undefined;
  }), { numRuns: 3000 }));
  t.throws(() => encodeMeshReauth({ ...r, relayId: '' }, key), { instanceOf: RangeError });
  t.throws(() => encodeMeshReauth({ ...r, nonce: new Uint8Array(15) }, key), { instanceOf: RangeError });
});
