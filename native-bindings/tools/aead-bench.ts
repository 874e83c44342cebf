/**
 * Micro-benchmark: native batched in-place ChaCha20-Poly1305 vs node:crypto
 * createCipheriv per packet, 1420-byte packets, batches of 128.
 *
 *   node --import=tsx native-bindings/tools/aead-bench.ts [seconds-per-case]
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { aead } from '../index';

const PKT = 1420;
const BATCH = 128;
const SLOT = 1536;
const HEAD = 64;
const SECONDS = Number(process.argv[2] ?? 1);

const key = randomBytes(32);
const data = Buffer.alloc(BATCH * SLOT);
const offsets = Uint32Array.from({ length: BATCH }, (_, i) => i * SLOT + HEAD);
const lengths = new Uint32Array(BATCH).fill(PKT);
const counters = new BigUint64Array(BATCH);
const ctr32 = new Uint32Array(counters.buffer); // (lo, hi) pairs: no BigInt per packet
const ok = new Uint8Array(BATCH);
const batch = { data, offsets, lengths, count: BATCH };
const nonce = Buffer.alloc(12);
randomBytes(BATCH * SLOT).copy(data);

function run(name: string, batchFn: (base: number) => void): void {
  let packets = 0;
  const end = process.hrtime.bigint() + BigInt(Math.round(SECONDS * 1e9));
  const start = process.hrtime.bigint();
  while (process.hrtime.bigint() < end) {
    batchFn(packets);
    packets += BATCH;
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const pps = packets / secs;
  console.log(`${name.padEnd(34)} ${Math.round(pps).toString().padStart(9)} packets/s  ${(pps * PKT * 8 / 1e9).toFixed(2)} Gbit/s`);
}

function setCounters(base: number): void {
  for (let i = 0; i < BATCH; i++) {
    ctr32[2 * i] = (base + i) >>> 0;
    ctr32[2 * i + 1] = 0;
  }
}

run('native sealBatch (in place)', (base) => {
  setCounters(base);
  lengths.fill(PKT);
  aead.sealBatch(batch, key, null, counters, ok);
});

run('node:crypto createCipheriv', (base) => {
  for (let i = 0; i < BATCH; i++) {
    nonce.writeUInt32LE((base + i) >>> 0, 4);
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    const off = offsets[i]!;
    const out = c.update(data.subarray(off, off + PKT));
    c.final();
    const tag = c.getAuthTag();
    out.copy(data, off);
    tag.copy(data, off + PKT);
  }
});

// Open: seal one batch with known counters, then open it repeatedly (bytes restored each round).
setCounters(0);
lengths.fill(PKT);
aead.sealBatch(batch, key, null, counters, ok);
const sealed = Buffer.from(data);
lengths.fill(PKT + 16);

run('native openBatch (in place)', () => {
  sealed.copy(data);
  if (aead.openBatch(batch, key, null, counters, ok) !== BATCH) throw new Error('open failed');
});

run('node:crypto createDecipheriv', () => {
  sealed.copy(data);
  for (let i = 0; i < BATCH; i++) {
    nonce.writeUInt32LE(i, 4);
    const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    const off = offsets[i]!;
    d.setAuthTag(data.subarray(off + PKT, off + PKT + 16));
    const out = d.update(data.subarray(off, off + PKT));
    d.final();
    out.copy(data, off);
  }
});
console.log('(open cases include a 196 KB memcpy per batch to restore the ciphertext)');
