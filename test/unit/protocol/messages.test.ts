/** Codec round trips and fuzzing of the three WireGuard handshake message layouts (transport: transport.test.ts). */
import test from 'ava';
import fc from 'fast-check';
import {
  decodeCookieReply, decodeInitiation, decodeResponse, encodeCookieReply, encodeInitiation, encodeResponse,
  peekMessageType,
} from '../../../protocol/messages';

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((u) => Buffer.from(u));

test('initiation round trip and byte layout', (t) => {
  fc.assert(fc.property(fc.nat({ max: 0xffffffff }), bytes(32), bytes(48), bytes(28), bytes(16), bytes(16), (sender, e, s, ts, m1, m2) => {
    const out = Buffer.alloc(148);
    encodeInitiation(out, { sender, ephemeral: e, encryptedStatic: s, encryptedTimestamp: ts, mac1: m1, mac2: m2 });
    const d = decodeInitiation(out);
    return d.ok && out.readUInt32LE(0) === 1 && out.readUInt32LE(4) === sender && d.msg.sender === sender
      && d.msg.ephemeral.equals(e) && out.subarray(8, 40).equals(e) && d.msg.encryptedStatic.equals(s)
      && d.msg.encryptedTimestamp.equals(ts) && d.msg.mac1.equals(m1) && out.subarray(116, 132).equals(m1)
      && d.msg.mac2.equals(m2) && out.subarray(132).equals(m2);
  }), { numRuns: 500 });
  t.pass();
});

test('response and cookie reply round trips', (t) => {
  fc.assert(fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), bytes(32), bytes(16), bytes(16), bytes(16), bytes(24), bytes(32),
    (sender, receiver, e, empty, m1, m2, nonce, cookie) => {
      const r = Buffer.alloc(92);
      encodeResponse(r, { sender, receiver, ephemeral: e, encryptedNothing: empty, mac1: m1, mac2: m2 });
      const d = decodeResponse(r);
      const c = Buffer.alloc(64);
      encodeCookieReply(c, { receiver, nonce, encryptedCookie: cookie });
      const dc = decodeCookieReply(c);
      return d.ok && d.msg.sender === sender && d.msg.receiver === receiver && d.msg.ephemeral.equals(e)
        && d.msg.encryptedNothing.equals(empty) && d.msg.mac1.equals(m1) && d.msg.mac2.equals(m2)
        && r.subarray(44, 60).equals(empty) && dc.ok && dc.msg.receiver === receiver && dc.msg.nonce.equals(nonce)
        && dc.msg.encryptedCookie.equals(cookie) && c.readUInt32LE(0) === 3 && c.subarray(32).equals(cookie);
    }), { numRuns: 500 });
  t.pass();
});

test('exact length, type and reserved bytes are enforced', (t) => {
  const init = Buffer.alloc(148);
  init[0] = 1;
  t.true(decodeInitiation(init).ok);
  t.deepEqual(decodeInitiation(init.subarray(0, 147)), { ok: false, reason: 'bad-length' });
  t.deepEqual(decodeInitiation(Buffer.concat([init, Buffer.alloc(1)])), { ok: false, reason: 'bad-length' });
  const wrongType = Buffer.from(init);
  wrongType[0] = 2;
  t.deepEqual(decodeInitiation(wrongType), { ok: false, reason: 'bad-type' });
  for (const i of [1, 2, 3]) {
    const r = Buffer.from(init);
    r[i] = 1;
    t.deepEqual(decodeInitiation(r), { ok: false, reason: 'bad-reserved' });
    t.is(peekMessageType(r), undefined);
  }
  t.is(peekMessageType(init), 1);
  t.is(peekMessageType(Buffer.from([5, 0, 0, 0])), undefined);
  t.is(peekMessageType(Buffer.from([4, 0, 0])), undefined);
  t.throws(() => encodeResponse(Buffer.alloc(91), { sender: 0, receiver: 0, ephemeral: Buffer.alloc(32), encryptedNothing: Buffer.alloc(16), mac1: Buffer.alloc(16), mac2: Buffer.alloc(16) }), { instanceOf: RangeError });
});

test('decoders never throw on arbitrary input and accept only exact shapes', (t) => {
  fc.assert(fc.property(fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    // well-formed headers with random bodies of the interesting lengths
    fc.tuple(fc.integer({ min: 0, max: 5 }), fc.constantFrom(0, 3, 31, 32, 63, 64, 91, 92, 147, 148, 149)).chain(([type, len]) =>
      fc.uint8Array({ minLength: len, maxLength: len }).map((u) => { if (len > 0) u[0] = type; if (len > 3) u.fill(0, 1, 4); return u; })),
  ), (u) => {
    const i = decodeInitiation(u);
    const r = decodeResponse(u);
    const c = decodeCookieReply(u);
    const wellFormed = u.length >= 4 && u[1] === 0 && u[2] === 0 && u[3] === 0;
    return i.ok === (wellFormed && u[0] === 1 && u.length === 148)
      && r.ok === (wellFormed && u[0] === 2 && u.length === 92)
      && c.ok === (wellFormed && u[0] === 3 && u.length === 64)
      && peekMessageType(u) === (wellFormed && u[0] >= 1 && u[0] <= 4 ? u[0] : undefined);
  }), { numRuns: 5000 });
  t.pass();
});
