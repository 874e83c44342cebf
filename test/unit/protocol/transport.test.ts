import test from 'ava';
import fc from 'fast-check';
import { createCipheriv, randomBytes } from 'node:crypto';
import {
  Keypair, TransportDrop, transportDropName, parseTransportHeader, sealedSize, paddedLength,
} from '../../../protocol/transport';
import { REJECT_AFTER_MESSAGES_NUM, WINDOW_SIZE } from '../../../protocol/replay';

function pair(): [Keypair, Keypair] {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const a = new Keypair({ sendKey: k1, recvKey: k2, localIndex: 0x11111111, remoteIndex: 0xdeadbeef, isInitiator: true, createdMs: 0 });
  const b = new Keypair({ sendKey: k2, recvKey: k1, localIndex: 0xdeadbeef, remoteIndex: 0x11111111, isInitiator: false, createdMs: 0 });
  return [a, b];
}

test('wire layout: header, padding, nonce = 0^4 || LE u64 counter, tag', (t) => {
  const [a] = pair();
  a.sendCounter = 0x0102030405;
  const pt = Buffer.from('hello, wireguard');
  const pt2 = pt.subarray(0, 5);
  const out = Buffer.alloc(100);
  const n = a.seal(pt2, 0, 5, out, 0);
  t.is(n, 16 + 16 + 16);
  t.is(n, sealedSize(5));
  t.deepEqual([...out.subarray(0, 4)], [4, 0, 0, 0]);
  t.is(out.readUInt32LE(4), 0xdeadbeef);
  t.is(out.readBigUInt64LE(8), 0x0102030405n);
  // Independent encryption of the zero-padded plaintext with the spec nonce.
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(0x0102030405n, 4);
  const c = createCipheriv('chacha20-poly1305', a.sendKey, nonce, { authTagLength: 16 });
  const padded = Buffer.concat([pt2, Buffer.alloc(11)]);
  const want = Buffer.concat([c.update(padded), c.final(), c.getAuthTag()]);
  t.deepEqual(out.subarray(16, n), want);
  t.is(a.sendCounter, 0x0102030406);
  const h = { receiver: 0, counter: 0 };
  t.true(parseTransportHeader(out, 0, n, h));
  t.is(h.receiver, 0xdeadbeef);
  t.is(h.counter, 0x0102030405);
  t.false(parseTransportHeader(out, 0, 31, h), 'shorter than a keepalive');
  t.false(parseTransportHeader(out, 1, n, h), 'past the end');
  const bad = Buffer.from(out); bad[3] = 1;
  t.false(parseTransportHeader(bad, 0, n, h), 'reserved byte set');
});

test('round trip for every length 0..100 and 1420, separate buffers', (t) => {
  const [a, b] = pair();
  for (const len of [...Array(101).keys(), 1420]) {
    const pt = randomBytes(len);
    const wire = Buffer.alloc(sealedSize(len) + 7);
    const n = a.seal(pt, 0, len, wire, 7);
    t.is(n, 32 + paddedLength(len));
    const out = Buffer.alloc(2000);
    const m = b.open(wire, 7, n, out, 3);
    t.is(m, paddedLength(len));
    t.deepEqual(out.subarray(3, 3 + len), pt);
    t.true(out.subarray(3 + len, 3 + m).every((x) => x === 0), 'padding is zeros');
  }
});

test('in place with headroom: seal over the plaintext, open over the ciphertext', (t) => {
  const [a, b] = pair();
  const slab = Buffer.alloc(2048);
  const pt = randomBytes(1420);
  pt.copy(slab, 16);
  const n = a.seal(slab, 16, 1420, slab, 0);
  t.is(n, sealedSize(1420));
  t.notDeepEqual(slab.subarray(16, 16 + 1420), pt);
  const m = b.open(slab, 0, n, slab, 16);
  t.is(m, 1424);
  t.deepEqual(slab.subarray(16, 16 + 1420), pt);
});

test('seal with any overlap of out and plaintext (no headroom, shifted)', (t) => {
  const [a, b] = pair();
  for (const shift of [-20, -16, -3, 0, 5, 16, 40]) {
    const slab = Buffer.alloc(3000);
    const pt = randomBytes(300);
    const pOff = 100;
    pt.copy(slab, pOff);
    const n = a.seal(slab, pOff, 300, slab, pOff + shift);
    const out = Buffer.alloc(400);
    t.is(b.open(slab, pOff + shift, n, out, 0), 304, `shift ${shift}`);
    t.deepEqual(out.subarray(0, 300), pt);
  }
});

test('drops: short, bad type, auth (tampered, wrong key), replay; nothing written on failure', (t) => {
  const [a, b] = pair();
  const pt = randomBytes(64);
  const wire = Buffer.alloc(sealedSize(64));
  const n = a.seal(pt, 0, 64, wire, 0);
  const out = Buffer.alloc(100, 0xaa);
  t.is(b.open(wire, 0, 31, out, 0), TransportDrop.short);
  const badType = Buffer.from(wire); badType[1] = 1;
  t.is(b.open(badType, 0, n, out, 0), TransportDrop.short);
  // The receiver index (4..7) is not authenticated (no AAD): the caller routes by it.
  for (const pos of [8, 15, 16, 40, n - 1]) {
    const bad = Buffer.from(wire);
    bad[pos] ^= 0x01;
    t.is(b.open(bad, 0, n, out, 0), TransportDrop.auth, `flip at ${pos}`);
  }
  t.true(out.every((x) => x === 0xaa), 'unauthenticated data never reaches out');
  t.is(a.open(wire, 0, n, out, 0), TransportDrop.auth, 'own send key is not the receive key');
  t.is(b.open(wire, 0, n, out, 0), 64);
  t.is(b.open(wire, 0, n, out, 0), TransportDrop.replay);
  t.is(b.open(wire, 0, n, Buffer.alloc(10), 0), TransportDrop['no-room']);
  t.is(transportDropName(TransportDrop.auth), 'auth');
  t.is(transportDropName(TransportDrop.replay), 'replay');
  t.is(transportDropName(TransportDrop.short), 'short');
  t.is(transportDropName(TransportDrop['counter-exhausted']), 'counter-exhausted');
});

test('a forged (failed-auth) message does not move the replay window', (t) => {
  const [a, b] = pair();
  const w1 = Buffer.alloc(48);
  a.seal(Buffer.alloc(8), 0, 8, w1, 0);
  const forged = Buffer.from(w1);
  forged.writeBigUInt64LE(10_000_000n, 8);
  t.is(b.open(forged, 0, 48, Buffer.alloc(64), 0), TransportDrop.auth);
  t.is(b.replay.highest, 0);
  t.is(b.open(w1, 0, 48, Buffer.alloc(64), 0), 16);
});

test('out of order within the window accepted, too old rejected', (t) => {
  const [a, b] = pair();
  const msgs: Buffer[] = [];
  for (let i = 0; i < 5; i++) { const w = Buffer.alloc(32); a.seal(Buffer.alloc(0), 0, 0, w, 0); msgs.push(w); }
  a.sendCounter = WINDOW_SIZE + 10;
  const late = Buffer.alloc(32); a.seal(Buffer.alloc(0), 0, 0, late, 0);
  const out = Buffer.alloc(0);
  t.is(b.open(msgs[3], 0, 32, out, 0), 0);
  t.is(b.open(msgs[1], 0, 32, out, 0), 0);
  t.is(b.open(late, 0, 32, out, 0), 0);
  t.is(b.open(msgs[2], 0, 32, out, 0), TransportDrop.replay, 'now outside the window');
});

test('counter exhaustion on both sides', (t) => {
  const [a, b] = pair();
  a.sendCounter = REJECT_AFTER_MESSAGES_NUM;
  t.is(a.seal(Buffer.alloc(1), 0, 1, Buffer.alloc(64), 0), TransportDrop['counter-exhausted']);
  t.is(a.sendCounter, REJECT_AFTER_MESSAGES_NUM);
  // An authentic message with counter 2^60 (beyond what we represent): authenticated, then dropped.
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(2n ** 60n, 4);
  const c = createCipheriv('chacha20-poly1305', a.sendKey, nonce, { authTagLength: 16 });
  c.final();
  const wire = Buffer.alloc(32);
  wire[0] = 4; wire.writeUInt32LE(b.localIndex, 4); wire.writeBigUInt64LE(2n ** 60n, 8);
  c.getAuthTag().copy(wire, 16);
  const h = { receiver: 0, counter: 0 };
  t.true(parseTransportHeader(wire, 0, 32, h));
  t.is(h.counter, 2 ** 60);
  t.is(b.open(wire, 0, 32, Buffer.alloc(0), 0), TransportDrop['counter-exhausted']);
});

test('parseTransportHeader accepts exactly type 4 with zero reserved bytes and at least 32 bytes', (t) => {
  const h = { receiver: 0, counter: 0 };
  fc.assert(fc.property(fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.tuple(fc.integer({ min: 0, max: 5 }), fc.constantFrom(0, 3, 16, 31, 32, 33, 64)).chain(([type, len]) =>
      fc.uint8Array({ minLength: len, maxLength: len }).map((u) => { if (len > 0) u[0] = type; if (len > 3) u.fill(0, 1, 4); return u; })),
  ), (u) => {
    const ok = parseTransportHeader(u, 0, u.length, h);
    const want = u.length >= 32 && u[0] === 4 && u[1] === 0 && u[2] === 0 && u[3] === 0;
    return ok === want && (!ok || (h.receiver === Buffer.from(u).readUInt32LE(4) && h.counter === Number(Buffer.from(u).readBigUInt64LE(8))));
  }), { numRuns: 3000 });
  t.pass();
});

test('open never throws on random input', (t) => {
  const [, b] = pair();
  const out = Buffer.alloc(2048);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200, size: 'max' }), fc.nat(40), fc.boolean(), (bytes, extra, fixType) => {
    const m = Buffer.from(bytes);
    if (fixType && m.length >= 4) m.writeUInt32LE(4, 0);
    const r = b.open(m, 0, Math.min(m.length, m.length + extra), out, 0);
    return r < 0;
  }), { numRuns: 3000 });
  t.pass();
});

test('throughput of 1420-byte seal and open (printed)', (t) => {
  const [a, b] = pair();
  const slab = Buffer.alloc(2048);
  randomBytes(1420).copy(slab, 16);
  const N = 20_000;
  const RING = 256; // reuse a small ring: a fresh 29 MB buffer would measure page faults
  const wires = Buffer.alloc(RING * 1460);
  const lens = new Int32Array(N);
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < RING; i++) a.seal(slab, 16, 1420, wires, i * 1460); // warm-up
  t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) lens[i] = a.seal(slab, 16, 1420, wires, (i % RING) * 1460);
  const sealS = Number(process.hrtime.bigint() - t0) / 1e9;
  t0 = process.hrtime.bigint();
  let ok = 0;
  // Each ring slot holds the last message sealed into it: open those (RING distinct counters),
  // then time opens of fresh in-order messages sealed right before (open cost = total - seal).
  for (let i = 0; i < RING; i++) if (b.open(wires, i * 1460, 1456, slab, 16) === 1424) ok++;
  t.is(ok, RING);
  t0 = process.hrtime.bigint();
  ok = 0;
  for (let i = 0; i < N; i++) {
    const n = a.seal(slab, 16, 1420, slab, 0);
    if (b.open(slab, 0, n, slab, 16) === 1424) ok++;
  }
  const roundS = Number(process.hrtime.bigint() - t0) / 1e9;
  t.is(ok, N);
  t.true(lens.every((x) => x === 1456));
  t.log(`seal ${Math.round(N / sealS)}/s, in-place seal+open round trip ${Math.round(N / roundS)}/s (one core)`);
});
