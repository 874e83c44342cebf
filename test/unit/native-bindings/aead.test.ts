/**
 * Native batched ChaCha20-Poly1305 against node:crypto as the reference (differential,
 * randomized), plus tamper, bounds and key-index behaviour.
 */
import test from 'ava';
import fc from 'fast-check';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { aead, nativeAvailable } from '../../../native-bindings';

const available = nativeAvailable();
const t = available ? test : test.skip;
if (!available) console.log('native addon not built (npm run install): skipping native AEAD tests');

/** WireGuard nonce: 4 zero bytes || counter little-endian. */
function nonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

function refSeal(key: Uint8Array, counter: bigint, plain: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce(counter), { authTagLength: 16 });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function refOpen(key: Uint8Array, counter: bigint, sealed: Buffer): Buffer | undefined {
  const d = createDecipheriv('chacha20-poly1305', key, nonce(counter), { authTagLength: 16 });
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  try {
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}

const SLOT = 1600;
const HEAD = 32;

/** Lays packets out one per slot at slot*SLOT + HEAD, like a TUN slab. */
function layout(packets: Uint8Array[]): { data: Buffer; offsets: Uint32Array; lengths: Uint32Array; count: number } {
  const data = Buffer.alloc(packets.length * SLOT);
  const offsets = new Uint32Array(packets.length);
  const lengths = new Uint32Array(packets.length);
  packets.forEach((p, i) => {
    offsets[i] = i * SLOT + HEAD;
    lengths[i] = p.length;
    data.set(p, offsets[i]);
  });
  return { data, offsets, lengths, count: packets.length };
}

const arbBatch = fc.record({
  keys: fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 1, maxLength: 3 }),
  packets: fc.array(
    fc.record({
      plain: fc.uint8Array({ minLength: 0, maxLength: SLOT - HEAD - 16 }),
      counter: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      key: fc.nat(),
    }),
    { minLength: 1, maxLength: 12 },
  ),
});

t('sealBatch matches node:crypto byte for byte; openBatch inverts it', (tt) => {
  fc.assert(
    fc.property(arbBatch, ({ keys, packets }) => {
      const keyBuf = Buffer.concat(keys);
      const keyIndex = Uint32Array.from(packets.map((p) => p.key % keys.length));
      const counters = BigUint64Array.from(packets.map((p) => p.counter));
      const batch = layout(packets.map((p) => p.plain));
      const ok = new Uint8Array(packets.length);
      if (aead.sealBatch(batch, keyBuf, keyIndex, counters, ok) !== packets.length) return false;
      for (let i = 0; i < packets.length; i++) {
        const p = packets[i]!;
        const got = batch.data.subarray(batch.offsets[i]!, batch.offsets[i]! + p.plain.length + 16);
        if (!got.equals(refSeal(keys[keyIndex[i]!]!, p.counter, p.plain))) return false;
        if (ok[i] !== 1) return false;
      }
      // Open in place (lengths now include the tag).
      for (let i = 0; i < packets.length; i++) batch.lengths[i] = batch.lengths[i]! + 16;
      if (aead.openBatch(batch, keyBuf, keyIndex, counters, ok) !== packets.length) return false;
      return packets.every((p, i) =>
        Buffer.from(p.plain).equals(batch.data.subarray(batch.offsets[i]!, batch.offsets[i]! + p.plain.length)));
    }),
    { numRuns: 400 },
  );
  tt.pass();
});

t('openBatch accepts what node:crypto sealed and rejects every single-bit flip', (tt) => {
  const key = randomBytes(32);
  const plains = [Buffer.alloc(0), randomBytes(1), randomBytes(100), randomBytes(1420)];
  const sealed = plains.map((p, i) => refSeal(key, BigInt(i) * 1000n, p));
  const counters = BigUint64Array.from(plains.map((_, i) => BigInt(i) * 1000n));
  const good = layout(sealed);
  const ok = new Uint8Array(plains.length);
  tt.is(aead.openBatch(good, key, null, counters, ok), plains.length);
  plains.forEach((p, i) => tt.true(good.data.subarray(good.offsets[i]!, good.offsets[i]! + p.length).equals(p)));

  fc.assert(
    fc.property(fc.nat({ max: plains.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 7 }), (which, pos, bit) => {
      const bad = layout(sealed);
      const off = bad.offsets[which]! + (pos % bad.lengths[which]!);
      bad.data[off]! ^= 1 << bit;
      const n = aead.openBatch(bad, key, null, counters, ok);
      return n === plains.length - 1 && ok[which] === 0 && ok.every((v, i) => i === which || v === 1);
    }),
    { numRuns: 2000 },
  );
  // Wrong counter (nonce) and wrong key fail too.
  tt.is(aead.openBatch(layout(sealed), key, null, BigUint64Array.from(plains.map(() => 7n)), ok), 0);
  tt.is(aead.openBatch(layout(sealed), randomBytes(32), null, counters, ok), 0);
  tt.is(refOpen(key, 0n, sealed[0]!)?.length, 0);
});

t('out-of-bounds packets and bad key indexes fail per packet, never throw', (tt) => {
  const key = randomBytes(32);
  const data = Buffer.alloc(100);
  const offsets = Uint32Array.from([0, 90, 10, 0]);
  const lengths = Uint32Array.from([10, 10 /* 90+10+16 > 100 */, 70, 5]);
  const keyIndex = Uint32Array.from([0, 0, 0, 1 /* only one key */]);
  const ok = new Uint8Array(4);
  const counters = new BigUint64Array(4);
  tt.is(aead.sealBatch({ data, offsets, lengths, count: 4 }, key, keyIndex, counters, ok), 2);
  tt.deepEqual([...ok], [1, 0, 1, 0]);
  // open: shorter than a tag
  tt.is(aead.openBatch({ data, offsets: Uint32Array.from([0]), lengths: Uint32Array.from([15]), count: 1 }, key, null, counters, ok), 0);
});

t('malformed arguments throw EINVAL', (tt) => {
  const b = { data: Buffer.alloc(64), offsets: new Uint32Array(2), lengths: new Uint32Array(2), count: 2 };
  tt.throws(() => aead.sealBatch(b, Buffer.alloc(31), null, new BigUint64Array(2)), { code: 'EINVAL' });
  tt.throws(() => aead.sealBatch(b, Buffer.alloc(32), null, new BigUint64Array(1)), { code: 'EINVAL' });
  tt.throws(() => aead.sealBatch({ ...b, count: 3 }, Buffer.alloc(32), null, new BigUint64Array(3)), { code: 'EINVAL' });
});
