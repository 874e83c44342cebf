import test from 'ava';
import fc from 'fast-check';
import {
  AUTH_PAYLOAD_LEN, FrameType, HELLO_PAYLOAD_LEN, RELAY_HEADER_LEN, RELAY_PROTOCOL_VERSION, decodeAuth, decodeAuthFail,
  decodeAuthOk, decodeChallenge, decodeHello, decodePingSeq, encodeAuth, encodeAuthFail, encodeAuthOk, encodeChallenge,
  encodeHeaderOnly, encodeHello, encodePing, isRelayFrameType, parseRelayHeader, writeRelayHeader, type RelayHeader,
} from '../../../protocol/relay-frame';

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const u32 = fc.integer({ min: 0, max: 0xffffffff });

test('frame types never collide with WireGuard message types 1..4', (t) => {
  for (const v of Object.values(FrameType)) {
    t.true(isRelayFrameType(v));
    t.false(v >= 1 && v <= 4);
  }
  for (let b = 1; b <= 4; b++) t.false(isRelayFrameType(b));
  t.is(new Set(Object.values(FrameType)).size, Object.values(FrameType).length);
});

test('DATA header layout: type, zero reserved, big-endian vip', (t) => {
  const b = Buffer.alloc(12, 0xff);
  writeRelayHeader(b, 2, FrameType.DATA, 0x64400102);
  t.deepEqual([...b.subarray(2, 10)], [0x10, 0, 0, 0, 0x64, 0x40, 0x01, 0x02]);
  t.is(b[0], 0xff);
  t.is(b[10], 0xff);
  const h: RelayHeader = { type: 0, vip: 0 };
  t.true(parseRelayHeader(b, 2, 8, h));
  t.deepEqual(h, { type: FrameType.DATA, vip: 0x64400102 });
  t.false(parseRelayHeader(b, 2, 7, h));
  t.false(parseRelayHeader(b, 8, 8, h), 'past the end of the buffer');
});

test('header round-trip (property)', (t) => {
  fc.assert(fc.property(fc.integer({ min: 0x10, max: 0x1f }), u32, fc.nat(16), (type, vip, off) => {
    const b = Buffer.alloc(off + 8);
    writeRelayHeader(b, off, type, vip);
    const h: RelayHeader = { type: 0, vip: 0 };
    return parseRelayHeader(b, off, 8, h) && h.type === type && h.vip === vip;
  }), { numRuns: 2000 });
  t.pass();
});

test('HELLO is padded so the CHALLENGE answer is no larger', (t) => {
  const h = encodeHello();
  t.is(h.length, RELAY_HEADER_LEN + HELLO_PAYLOAD_LEN);
  t.true(h.length >= encodeChallenge({ ephemeralPublic: new Uint8Array(32), nonce: new Uint8Array(16) }).length);
  t.is(decodeHello(h, 0, h.length), RELAY_PROTOCOL_VERSION);
  t.is(decodeHello(h, 0, 9), undefined);
});

test('control frame round-trips (property)', (t) => {
  fc.assert(fc.property(bytes(32), bytes(16), (e, n) => {
    const f = encodeChallenge({ ephemeralPublic: e, nonce: n });
    const d = decodeChallenge(f, 0, f.length)!;
    return f[0] === FrameType.CHALLENGE && Buffer.from(d.ephemeralPublic).equals(Buffer.from(e)) && Buffer.from(d.nonce).equals(Buffer.from(n));
  }), { numRuns: 500 });
  fc.assert(fc.property(fc.nat(255), u32, bytes(32), bytes(32), bytes(16), bytes(32), (version, claimedVip, s, e, n, p) => {
    const f = encodeAuth({ version, claimedVip, staticPublic: s, ephemeralPublic: e, nonce: n, proof: p });
    if (f.length !== RELAY_HEADER_LEN + AUTH_PAYLOAD_LEN) return false;
    const d = decodeAuth(f, 0, f.length)!;
    return d.version === version && d.claimedVip === claimedVip && Buffer.from(d.staticPublic).equals(Buffer.from(s))
      && Buffer.from(d.ephemeralPublic).equals(Buffer.from(e)) && Buffer.from(d.nonce).equals(Buffer.from(n))
      && Buffer.from(d.proof).equals(Buffer.from(p));
  }), { numRuns: 500 });
  fc.assert(fc.property(u32, fc.nat(0xffff), fc.string({ maxLength: 64 }).filter((s) => Buffer.byteLength(s) <= 64), (vip, ka, id) => {
    const f = encodeAuthOk({ version: 1, vip, keepaliveSeconds: ka, relayId: id });
    const d = decodeAuthOk(f, 0, f.length)!;
    return d.vip === vip && d.keepaliveSeconds === ka && d.relayId === id && d.version === 1;
  }), { numRuns: 500 });
  fc.assert(fc.property(u32, fc.nat(255), (seq, reason) => {
    const p = encodePing(FrameType.PING, seq);
    const q = encodePing(FrameType.PONG, seq);
    const f = encodeAuthFail(reason);
    return decodePingSeq(p, 0, p.length) === seq && q[0] === FrameType.PONG && decodePingSeq(q, 0, q.length) === seq
      && decodeAuthFail(f, 0, f.length) === reason;
  }), { numRuns: 500 });
  t.pass();
});

test('decoders refuse truncated frames', (t) => {
  const a = encodeAuth({ version: 1, claimedVip: 1, staticPublic: new Uint8Array(32), ephemeralPublic: new Uint8Array(32), nonce: new Uint8Array(16), proof: new Uint8Array(32) });
  t.is(decodeAuth(a, 0, a.length - 1), undefined);
  const ok = encodeAuthOk({ version: 1, vip: 1, keepaliveSeconds: 10, relayId: 'relay-one' });
  t.is(decodeAuthOk(ok, 0, ok.length - 1), undefined, 'id length runs past the frame');
  t.is(decodePingSeq(encodeHeaderOnly(FrameType.PING, 0), 0, 8), undefined);
  t.is(decodeChallenge(Buffer.alloc(55), 0, 55), undefined);
});

test('random and mutated frames never make a decoder throw', (t) => {
  const valid = [
    encodeHello(), encodeChallenge({ ephemeralPublic: new Uint8Array(32).fill(7), nonce: new Uint8Array(16).fill(9) }),
    encodeAuth({ version: 1, claimedVip: 5, staticPublic: new Uint8Array(32), ephemeralPublic: new Uint8Array(32), nonce: new Uint8Array(16), proof: new Uint8Array(32) }),
    encodeAuthOk({ version: 1, vip: 9, keepaliveSeconds: 10, relayId: 'r' }), encodeAuthFail(3), encodePing(FrameType.PING, 1),
    encodeHeaderOnly(FrameType.REAUTH, 0),
  ];
  const decoders = [decodeHello, decodeChallenge, decodeAuth, decodeAuthOk, decodeAuthFail, decodePingSeq];
  const frame = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(300), fc.nat(255))), fc.nat(300)).map(([v, muts, cut]) => {
      const b = Uint8Array.from(v);
      for (const [i, x] of muts) b[i % b.length] = x;
      return b.subarray(0, Math.min(b.length, cut));
    }),
  );
  fc.assert(fc.property(frame, fc.nat(8), fc.integer({ min: -4, max: 300 }), (b, off, len) => {
    const h: RelayHeader = { type: 0, vip: 0 };
    for (const [o, l] of [[0, b.length], [off, len]] as const) {
      parseRelayHeader(b, o, l, h);
      for (const d of decoders) d(b, o, l);
    }
    return true;
  }), { numRuns: 5000 });
  t.pass();
});
