/**
 * Tampered, truncated and random handshake messages: every failure is a clean reason, never
 * a throw. Note the sender index (bytes 4..7) is not covered by the Noise transcript, as in
 * WireGuard; mac1 covers it (and everything else before mac1). mac2 (the last 16 bytes) is
 * checked only under load (cookie.test.ts), so a changed mac2 alone is still accepted here.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { CookieChecker } from '../../../protocol/cookie';
import {
  HandshakeFailure, consumeInitiation, consumeResponse, createInitiation, createLocalIdentity, createPeerCrypto,
  createResponse, type InitiatorState, type PeerCrypto,
} from '../../../protocol/handshake';
import { CookieGenerator } from '../../../protocol/cookie';

function seededRng(seed: string): (n: number) => Buffer {
  let i = 0;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let off = 0; off < n; off += 32) createHash('sha256').update(`${seed}/${i++}`).digest().copy(out, off);
    return out;
  };
}

const clock = { now: () => 0 };
const rng = seededRng('fuzz');
const alice = createLocalIdentity(rng(32));
const bob = createLocalIdentity(rng(32));
const bobAtAlice = createPeerCrypto(alice, bob.publicKey);
const aliceAtBob = createPeerCrypto(bob, alice.publicKey);
const toBob = new CookieGenerator(bob.publicKey, clock);
const toAlice = new CookieGenerator(alice.publicKey, clock);
const bobChecker = new CookieChecker(bob.publicKey, clock);
const aliceChecker = new CookieChecker(alice.macKeys, clock);

const init = createInitiation(alice, bobAtAlice, 1234, 5000, rng);
toBob.addMacs(init.message);
const consumed = consumeInitiation(bob, init.message, () => aliceAtBob);
if (!consumed.ok) throw new Error('setup failed');
const resp = createResponse(bob, consumed.state, 5678, rng);
toAlice.addMacs(resp.message);

const REASONS = new Set<string>([...Object.values(HandshakeFailure), 'bad-length', 'bad-type', 'bad-reserved']);
const lookupPeer = (pub: Buffer): PeerCrypto | undefined => (pub.equals(alice.publicKey) ? aliceAtBob : undefined);
/** A fresh copy of the pending state each time, so a success does not wipe the shared one. */
const lookupInit = (idx: number) => (idx === 1234 ? { peer: bobAtAlice, state: { ...init.state, ck: Buffer.from(init.state.ck), ephemeralPrivate: Buffer.from(init.state.ephemeralPrivate), used: false } as InitiatorState } : undefined);

function acceptInitiation(msg: Buffer): { accepted: boolean; reason?: string } {
  const r = consumeInitiation(bob, msg, lookupPeer);
  if (!r.ok && !REASONS.has(r.reason)) throw new Error(`unknown reason ${r.reason}`);
  return { accepted: bobChecker.checkMac1(msg) && r.ok, reason: r.ok ? undefined : r.reason };
}
function acceptResponse(msg: Buffer): { accepted: boolean; reason?: string } {
  const r = consumeResponse(alice, msg, lookupInit);
  if (!r.ok && !REASONS.has(r.reason)) throw new Error(`unknown reason ${r.reason}`);
  return { accepted: aliceChecker.checkMac1(msg) && r.ok, reason: r.ok ? undefined : r.reason };
}

test('the untouched messages are accepted (the fuzz below can fail)', (t) => {
  t.true(acceptInitiation(init.message).accepted);
  t.true(acceptResponse(resp.message).accepted);
});

test('flipping any byte of an initiation before mac2 is rejected', (t) => {
  for (let i = 0; i < init.message.length; i++) {
    const m = Buffer.from(init.message);
    m[i] ^= 0x01 << (i % 8);
    const r = acceptInitiation(m);
    t.is(r.accepted, i >= 132, `byte ${i}`);
    // Below mac1 and outside the (unauthenticated) sender index, the handshake itself fails.
    if (i < 116 && (i < 4 || i >= 8)) t.truthy(r.reason, `byte ${i} fails in the handshake`);
  }
});

test('flipping any byte of a response before mac2 is rejected', (t) => {
  for (let i = 0; i < resp.message.length; i++) {
    const m = Buffer.from(resp.message);
    m[i] ^= 0x80 >> (i % 8);
    const r = acceptResponse(m);
    t.is(r.accepted, i >= 76, `byte ${i}`);
    if (i < 60 && (i < 4 || i >= 8)) t.truthy(r.reason, `byte ${i} fails in the handshake`);
  }
});

/** Edits anywhere before mac2, plus truncation or extension. */
const mutate = (base: Buffer) => fc.record({
  edits: fc.array(fc.tuple(fc.nat({ max: base.length - 17 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
  cut: fc.oneof(fc.constant(base.length), fc.nat({ max: base.length + 8 })),
}).map(({ edits, cut }) => {
  const m = Buffer.alloc(cut);
  base.copy(m, 0, 0, Math.min(cut, base.length));
  for (const [i, x] of edits) if (i < cut) m[i] ^= x;
  return m;
}).filter((m) => !m.equals(base));

test('property: mutated/truncated/extended initiations never throw and are never accepted', (t) => {
  fc.assert(fc.property(mutate(init.message), (m) => !acceptInitiation(m).accepted), { numRuns: 600 });
  t.pass();
});

test('property: mutated/truncated/extended responses never throw and are never accepted', (t) => {
  fc.assert(fc.property(mutate(resp.message), (m) => !acceptResponse(m).accepted), { numRuns: 400 });
  t.pass();
});

test('property: random bytes of handshake shape never throw', (t) => {
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 160 }), fc.uint8Array({ minLength: 148, maxLength: 148 }).map((u) => { u[0] = 1; u[1] = u[2] = u[3] = 0; return u; }),
    fc.uint8Array({ minLength: 92, maxLength: 92 }).map((u) => { u[0] = 2; u[1] = u[2] = u[3] = 0; return u; })), (u) => {
    const b = Buffer.from(u);
    if (b.length === 92) b.writeUInt32LE(1234, 8);
    return !acceptInitiation(b).accepted && !acceptResponse(b).accepted;
  }), { numRuns: 1500 });
  t.pass();
});
