import test from 'ava';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { ManualClock } from '../../../common/clock';
import { silentLogger } from '../../../common/logger';
import { createRelay } from '../../../relay/relay';
import { StaticMemberDirectory } from '../../../relay/member-directory';
import { FrameType, encodeAuth, encodeHello, decodeChallenge, encodeHeaderOnly, encodePing, writeRelayHeader } from '../../../protocol/relay-frame';
import { proveKey } from '../../../protocol/key-proof';
import { MemorySocket } from './memory-socket';

const A = { kp: nacl.box.keyPair(), vip: 0x64400001, addr: 0x0a000001, port: 1111 };
const B = { kp: nacl.box.keyPair(), vip: 0x64400002, addr: 0x0a000002, port: 2222 };

async function setup() {
  const clock = new ManualClock();
  const socket = new MemorySocket();
  const directory = new StaticMemberDirectory([A, B].map((m) => ({ publicKey: Buffer.from(m.kp.publicKey).toString('base64'), vip: m.vip })));
  const relay = createRelay({ id: 'unit', keepaliveSeconds: 1, tickMs: 1e9 })({ logger: silentLogger(), clock, socket, directory });
  relay.start();
  for (const m of [A, B]) {
    socket.inject([{ buf: encodeHello(), addr: m.addr, port: m.port }]);
    const ch = decodeChallenge(socket.sent.at(-1)!.buf, 0, socket.sent.at(-1)!.buf.length)!;
    const proof = proveKey(m.kp.secretKey, m.kp.publicKey, ch.ephemeralPublic, ch.nonce, 'relay');
    socket.inject([{ buf: encodeAuth({ version: 1, claimedVip: m.vip, staticPublic: m.kp.publicKey, ephemeralPublic: ch.ephemeralPublic, nonce: ch.nonce, proof }), addr: m.addr, port: m.port }]);
    await new Promise((r) => setImmediate(r));
    if (socket.sent.at(-1)!.buf[0] !== FrameType.AUTH_OK) throw new Error('no AUTH_OK');
  }
  socket.sent = [];
  return { clock, socket, relay };
}

function data(dst: number, len = 48): Buffer {
  const b = Buffer.alloc(len, 0xab);
  writeRelayHeader(b, 0, FrameType.DATA, dst);
  b[8] = 4; b[9] = 0; b[10] = 0; b[11] = 0;
  return b;
}

test('a batch is forwarded with source rewrite and one flush', async (t) => {
  const { socket, relay } = await setup();
  const flushes = socket.flushes;
  socket.inject([{ buf: data(B.vip), addr: A.addr, port: A.port }, { buf: data(A.vip, 60), addr: B.addr, port: B.port }]);
  t.is(socket.flushes, flushes + 1);
  t.is(socket.sent.length, 2);
  t.deepEqual([socket.sent[0].addr, socket.sent[0].port, socket.sent[0].buf.readUInt32BE(4)], [B.addr, B.port, A.vip]);
  t.deepEqual([socket.sent[1].addr, socket.sent[1].port, socket.sent[1].buf.readUInt32BE(4)], [A.addr, A.port, B.vip]);
  t.deepEqual(socket.sent[0].buf.subarray(8), data(B.vip).subarray(8), 'payload untouched');
  t.is(relay.stats().framesForwarded, 2);
  t.is(relay.stats().bytesForwarded, 108);
});

test('drops are counted by reason; REAUTH and UNREACHABLE are rate-limited', async (t) => {
  const { socket, relay, clock } = await setup();
  const X = { addr: 0x0b000001, port: 9 };
  socket.inject([
    { buf: data(B.vip), ...X }, { buf: data(B.vip), ...X },          // unbound twice: one REAUTH
    { buf: data(0x64400063), addr: A.addr, port: A.port },          // unknown destination
    { buf: data(0x64400063), addr: A.addr, port: A.port },          // ... UNREACHABLE once
    { buf: Buffer.from([1, 0, 0, 0, 1, 2, 3, 4]), addr: A.addr, port: A.port }, // bare WireGuard type: malformed
    { buf: Buffer.alloc(5, 0x10), addr: A.addr, port: A.port },      // too short
    { buf: encodeHeaderOnly(0x1e, 0), addr: A.addr, port: A.port },  // unknown type
    { buf: encodeHeaderOnly(FrameType.PONG, 0), addr: A.addr, port: A.port }, // relay→member type
  ]);
  const s = relay.stats();
  t.is(s.drops['unbound-source'], 2);
  t.is(s.drops['unknown-destination'], 2);
  t.is(s.drops.malformed, 1);
  t.is(s.drops['too-short'], 1);
  t.is(s.drops['unknown-type'], 1);
  t.is(s.drops['unexpected-type'], 1);
  t.deepEqual(socket.sent.map((x) => x.buf[0]), [FrameType.REAUTH, FrameType.UNREACHABLE]);
  t.is(socket.sent[1].buf.readUInt32BE(4), 0x64400063);
  clock.advance(1000);
  socket.inject([{ buf: encodePing(FrameType.PING, 7), ...X }]);
  t.is(socket.sent.at(-1)!.buf[0], FrameType.REAUTH, 'again after the interval');
});

test('idle sessions expire after idleIntervals keepalives; PING keeps them', async (t) => {
  const { socket, relay, clock } = await setup();
  clock.advance(2500);
  socket.inject([{ buf: encodePing(FrameType.PING, 1), addr: A.addr, port: A.port }]);
  t.is(socket.sent.at(-1)!.buf[0], FrameType.PONG);
  clock.advance(600);
  relay.tick();
  t.deepEqual(relay.sessions().map((s) => s.vip), ['100.64.0.1']);
});

test('random batches never throw and every frame is accounted for', async (t) => {
  const { socket, relay } = await setup();
  const frame = fc.record({
    buf: fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.tuple(fc.integer({ min: 0x10, max: 0x1f }), fc.uint8Array({ maxLength: 140 })).map(([ty, rest]) => Uint8Array.from([ty, ...rest]))),
    who: fc.constantFrom(A, B, { addr: 0x0c000001, port: 3 }),
  });
  let frames = relay.stats().framesReceived;
  fc.assert(fc.property(fc.array(frame, { maxLength: 16 }), (batch) => {
    frames += batch.length;
    socket.inject(batch.map((f) => ({ buf: f.buf, addr: f.who.addr, port: f.who.port })));
    return true;
  }), { numRuns: 3000 });
  await new Promise((r) => setImmediate(r));
  const s = relay.stats();
  t.is(s.framesReceived, frames);
  t.true(s.dropped > 0);
});

test('garbage AUTHs are dropped on the challenge MAC before any work budget is spent', async (t) => {
  const { socket, relay } = await setup();
  const auth = encodeAuth({ version: 1, claimedVip: 1, staticPublic: new Uint8Array(32).fill(1), ephemeralPublic: new Uint8Array(32), nonce: new Uint8Array(16), proof: new Uint8Array(32) });
  socket.inject(Array.from({ length: 1000 }, (_, i) => ({ buf: auth, addr: 0x0d000001, port: 1000 + i })));
  const s = relay.stats();
  t.is(s.drops['auth-bad-challenge'], 1000);
  t.is(s.drops['auth-overload'], 0, 'no garbage took budget');
  // Positive control in the same relay, same moment: a genuine AUTH from the flooder's IP binds.
  const M = { kp: nacl.box.keyPair(), addr: 0x0d000001, port: 4444 };
  socket.inject([{ buf: encodeHello(), addr: M.addr, port: M.port }]);
  socket.flush();
  const hello = socket.sent.at(-1)!;
  const ch = decodeChallenge(hello.buf, 0, hello.buf.length)!;
  const proof = proveKey(B.kp.secretKey, B.kp.publicKey, ch.ephemeralPublic, ch.nonce, 'relay');
  socket.inject([{ buf: encodeAuth({ version: 1, claimedVip: B.vip, staticPublic: B.kp.publicKey, ephemeralPublic: ch.ephemeralPublic, nonce: ch.nonce, proof }), addr: M.addr, port: M.port }]);
  await new Promise((r) => setImmediate(r));
  t.is(socket.sent.at(-1)!.buf[0], FrameType.AUTH_OK);
});

test('AUTH proof checks are budgeted per source IP; one challenge buys one proof check', async (t) => {
  const { socket, relay } = await setup();
  // Valid challenges (HELLO first), wrong proofs: each costs an X25519, so each takes budget.
  const authFor = (addr: number, port: number): Buffer => {
    socket.inject([{ buf: encodeHello(), addr, port }]);
    socket.flush();
    const f = socket.sent.at(-1)!;
    const ch = decodeChallenge(f.buf, 0, f.buf.length)!;
    return encodeAuth({ version: 1, claimedVip: 1, staticPublic: new Uint8Array(32).fill(1), ephemeralPublic: ch.ephemeralPublic, nonce: ch.nonce, proof: new Uint8Array(32).fill(7) });
  };
  const frames = Array.from({ length: 150 }, (_, i) => ({ buf: authFor(0x0d000001, 1000 + i), addr: 0x0d000001, port: 1000 + i }));
  socket.inject(frames);
  const other = authFor(0x0d000002, 1);
  socket.inject([{ buf: other, addr: 0x0d000002, port: 1 }]);
  let s = relay.stats();
  t.is(s.drops['auth-failed'], 101, 'burst of 100 for one IP, then another IP still gets through');
  t.is(s.drops['auth-overload'], 50);
  // Replaying a checked challenge (same 4-tuple, valid MAC) costs no second proof check.
  socket.inject(Array.from({ length: 20 }, () => ({ buf: other, addr: 0x0d000002, port: 1 })));
  s = relay.stats();
  t.is(s.drops['auth-replayed'], 20);
  t.is(s.drops['auth-failed'], 101);
});
