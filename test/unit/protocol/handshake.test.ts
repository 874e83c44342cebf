/** Round trips of the WireGuard handshake between two identities, with deterministic randomness. */
import test from 'ava';
import { createHash } from 'node:crypto';
import {
  HandshakeKeyError, HandshakeStateError, consumeInitiation, consumeResponse, createInitiation, createLocalIdentity,
  createPeerCrypto, createResponse, isNewerTimestamp, type InitiatorState, type LocalIdentity, type PeerCrypto,
} from '../../../protocol/handshake';
import { aeadOpen, aeadSeal } from '../../../protocol/noise';
import { tai64nToMs } from '../../../protocol/tai64n';

/** Deterministic byte stream: SHA-256(seed || counter) blocks. */
export function seededRng(seed: string): (n: number) => Buffer {
  let i = 0;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let off = 0; off < n; off += 32) createHash('sha256').update(`${seed}/${i++}`).digest().copy(out, off);
    return out;
  };
}

function pair(psk?: Buffer) {
  const rng = seededRng('keys');
  const alice = createLocalIdentity(rng(32));
  const bob = createLocalIdentity(rng(32));
  const bobAtAlice = createPeerCrypto(alice, bob.publicKey, psk);
  const aliceAtBob = createPeerCrypto(bob, alice.publicKey, psk);
  return { alice, bob, bobAtAlice, aliceAtBob };
}

function handshake(alice: LocalIdentity, bob: LocalIdentity, bobAtAlice: PeerCrypto, aliceAtBob: PeerCrypto, seed = 's') {
  const rng = seededRng(seed);
  const init = createInitiation(alice, bobAtAlice, 0x11223344, 1_700_000_000_000, rng);
  const c = consumeInitiation(bob, init.message, (pub) => (pub.equals(alice.publicKey) ? aliceAtBob : undefined));
  if (!c.ok) throw new Error(`consumeInitiation failed: ${c.reason}`);
  const resp = createResponse(bob, c.state, 0x55667788, rng);
  const r = consumeResponse(alice, resp.message, (idx) => (idx === init.state.localIndex ? { peer: bobAtAlice, state: init.state } : undefined));
  return { init, c, resp, r };
}

for (const psk of [undefined, Buffer.alloc(32, 0xa5)]) {
  test(`round trip ${psk ? 'with' : 'without'} psk: both sides derive crossing keys`, (t) => {
    const { alice, bob, bobAtAlice, aliceAtBob } = pair(psk);
    const { init, c, resp, r } = handshake(alice, bob, bobAtAlice, aliceAtBob);
    t.is(init.message.length, 148);
    t.is(init.message.readUInt32LE(0), 1);
    t.is(init.message.readUInt32LE(4), 0x11223344);
    t.true(init.message.subarray(116).equals(Buffer.alloc(32)), 'macs left zero for CookieGenerator');
    t.is(resp.message.length, 92);
    t.is(resp.message.readUInt32LE(0), 2);
    t.is(resp.message.readUInt32LE(8), 0x11223344, 'response addressed to the initiator index');
    t.is(c.ok && c.remoteIndex, 0x11223344);
    t.is(c.ok && tai64nToMs(c.timestamp), 1_700_000_000_000);
    t.is(c.ok && c.peer, aliceAtBob);
    if (!r.ok) return t.fail(r.reason);
    t.is(r.peer, bobAtAlice);
    t.deepEqual(r.keys.sendKey, resp.keys.recvKey);
    t.deepEqual(r.keys.recvKey, resp.keys.sendKey);
    t.notDeepEqual(r.keys.sendKey, r.keys.recvKey);
    t.like(r.keys, { localIndex: 0x11223344, remoteIndex: 0x55667788, isInitiator: true });
    t.like(resp.keys, { localIndex: 0x55667788, remoteIndex: 0x11223344, isInitiator: false });
    const ct = aeadSeal(r.keys.sendKey, 0, Buffer.from('ping'));
    t.deepEqual(aeadOpen(resp.keys.recvKey, 0, ct), Buffer.from('ping'));
  });
}

test('deterministic: same rng and clock give the same bytes', (t) => {
  const a = pair();
  const b = pair();
  const x = handshake(a.alice, a.bob, a.bobAtAlice, a.aliceAtBob, 'same');
  const y = handshake(b.alice, b.bob, b.bobAtAlice, b.aliceAtBob, 'same');
  t.deepEqual(x.init.message, y.init.message);
  t.deepEqual(x.resp.message, y.resp.message);
  const z = handshake(b.alice, b.bob, b.bobAtAlice, b.aliceAtBob, 'other');
  t.notDeepEqual(x.init.message, z.init.message);
});

test('psk mismatch fails at decrypt-empty; pending initiation survives a forged response', (t) => {
  const { alice, bob, bobAtAlice } = pair(Buffer.alloc(32, 1));
  const aliceAtBobWrongPsk = createPeerCrypto(bob, alice.publicKey, Buffer.alloc(32, 2));
  const rng = seededRng('psk');
  const init = createInitiation(alice, bobAtAlice, 7, 1000, rng);
  const c = consumeInitiation(bob, init.message, () => aliceAtBobWrongPsk);
  if (!c.ok) return t.fail(c.reason);
  const bad = createResponse(bob, c.state, 9, rng);
  const lookup = () => ({ peer: bobAtAlice, state: init.state });
  t.deepEqual(consumeResponse(alice, bad.message, lookup), { ok: false, reason: 'decrypt-empty' });
  t.false(init.state.used);
  // The genuine responder still completes with the same pending state.
  const aliceAtBob = createPeerCrypto(bob, alice.publicKey, Buffer.alloc(32, 1));
  const c2 = consumeInitiation(bob, init.message, () => aliceAtBob);
  if (!c2.ok) return t.fail(c2.reason);
  const good = createResponse(bob, c2.state, 10, rng);
  t.true(consumeResponse(alice, good.message, lookup).ok);
  t.true(init.state.used);
  t.deepEqual(consumeResponse(alice, good.message, lookup), { ok: false, reason: 'state-used' }, 'replayed response');
});

test('unknown peer, wrong responder, unknown index', (t) => {
  const { alice, bob, bobAtAlice, aliceAtBob } = pair();
  const rng = seededRng('u');
  const init = createInitiation(alice, bobAtAlice, 1, 1000, rng);
  t.deepEqual(consumeInitiation(bob, init.message, () => undefined), { ok: false, reason: 'unknown-peer' });
  const carol = createLocalIdentity(rng(32));
  t.deepEqual(consumeInitiation(carol, init.message, () => aliceAtBob), { ok: false, reason: 'decrypt-static' });
  const c = consumeInitiation(bob, init.message, () => aliceAtBob);
  if (!c.ok) return t.fail(c.reason);
  const resp = createResponse(bob, c.state, 2, rng);
  t.deepEqual(consumeResponse(alice, resp.message, () => undefined), { ok: false, reason: 'unknown-index' });
  const other: InitiatorState = createInitiation(alice, bobAtAlice, 99, 1000, rng).state;
  t.deepEqual(consumeResponse(alice, resp.message, () => ({ peer: bobAtAlice, state: other })), { ok: false, reason: 'unknown-index' }, 'state for another index');
  t.throws(() => createResponse(bob, c.state, 3, rng), { instanceOf: HandshakeStateError }, 'responder state is single-use');
});

test('replayed initiation is detected by the timestamp helper', (t) => {
  const { alice, bob, bobAtAlice, aliceAtBob } = pair();
  const rng = seededRng('r');
  let last: Buffer | undefined;
  const accept = (msg: Buffer): boolean => {
    const c = consumeInitiation(bob, msg, () => aliceAtBob);
    if (!c.ok || !isNewerTimestamp(c.timestamp, last)) return false;
    last = c.timestamp;
    return true;
  };
  const first = createInitiation(alice, bobAtAlice, 1, 10_000, rng).message;
  t.true(accept(first));
  t.false(accept(first), 'exact replay');
  t.false(accept(createInitiation(alice, bobAtAlice, 2, 10_000, rng).message), 'same timestamp');
  t.false(accept(createInitiation(alice, bobAtAlice, 3, 9_999, rng).message), 'older timestamp');
  t.true(accept(createInitiation(alice, bobAtAlice, 4, 10_001, rng).message), 'newer timestamp');
});

test('configuration errors throw HandshakeKeyError', (t) => {
  const { alice } = pair();
  t.throws(() => createPeerCrypto(alice, Buffer.alloc(32)), { instanceOf: HandshakeKeyError });
  t.throws(() => createPeerCrypto(alice, Buffer.alloc(31, 1)), { instanceOf: HandshakeKeyError });
  t.throws(() => createPeerCrypto(alice, Buffer.alloc(32, 9), Buffer.alloc(16)), { instanceOf: HandshakeKeyError });
  t.throws(() => createLocalIdentity(Buffer.alloc(33)), { instanceOf: HandshakeKeyError });
});
