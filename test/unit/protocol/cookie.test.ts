/** mac1/mac2 and cookie replies between a CookieGenerator (sender) and a CookieChecker (receiver). */
import test from 'ava';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { blake2s } from '@noble/hashes/blake2s';
import { ManualClock } from '../../../common/clock';
import { CookieChecker, CookieGenerator, deriveMacKeys } from '../../../protocol/cookie';
import { createInitiation, createLocalIdentity, createPeerCrypto } from '../../../protocol/handshake';

function seededRng(seed: string): (n: number) => Buffer {
  let i = 0;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let off = 0; off < n; off += 32) createHash('sha256').update(`${seed}/${i++}`).digest().copy(out, off);
    return out;
  };
}

function setup() {
  const rng = seededRng('cookie');
  const clock = new ManualClock();
  const alice = createLocalIdentity(rng(32));
  const bob = createLocalIdentity(rng(32));
  const bobAtAlice = createPeerCrypto(alice, bob.publicKey);
  const gen = new CookieGenerator(bobAtAlice.macKeys, clock);
  const checker = new CookieChecker(bob.publicKey, clock, rng);
  const initiation = (n: number) => createInitiation(alice, bobAtAlice, n, 1000 + n, rng).message;
  return { rng, clock, alice, bob, gen, checker, initiation };
}

const SRC = Buffer.from([10, 0, 0, 1, 0xca, 0x6c]);

test('mac1 is keyed BLAKE2s-128 of the message before it, under HASH("mac1----" || receiver key)', (t) => {
  const { gen, checker, initiation, bob } = setup();
  const m = initiation(1);
  t.true(gen.addMacs(m));
  const key = blake2s(Buffer.concat([Buffer.from('mac1----'), bob.publicKey]));
  t.deepEqual(m.subarray(116, 132), Buffer.from(blake2s(m.subarray(0, 116), { key, dkLen: 16 })));
  t.true(m.subarray(132).equals(Buffer.alloc(16)), 'no cookie yet: mac2 stays zero');
  t.true(checker.checkMac1(m));
  t.false(new CookieChecker(deriveMacKeys(Buffer.alloc(32, 3)), new ManualClock()).checkMac1(m), 'another receiver');
  t.false(checker.checkMac1(m.subarray(0, 147)));
  t.false(gen.addMacs(Buffer.alloc(100)), 'not a handshake message');
});

test('cookie reply round trip, then mac2 verifies for that source only', (t) => {
  const { gen, checker, initiation, clock } = setup();
  const m1 = initiation(7);
  gen.addMacs(m1);
  t.false(checker.checkMac2(m1, SRC), 'no cookie held');
  const reply = checker.createReply(m1, 7, SRC);
  t.is(reply.length, 64);
  t.is(reply.readUInt32LE(0), 3);
  t.is(reply.readUInt32LE(4), 7);
  clock.advance(10);
  t.true(gen.consumeReply(reply));
  t.true(gen.hasCookie());
  t.false(gen.consumeReply(reply), 'a reply is consumed once (bound to the last mac1)');
  const m2 = initiation(8);
  gen.addMacs(m2);
  t.false(m2.subarray(132).equals(Buffer.alloc(16)), 'mac2 now set');
  t.true(checker.checkMac1(m2));
  t.true(checker.checkMac2(m2, SRC));
  t.false(checker.checkMac2(m2, Buffer.from([10, 0, 0, 2, 0xca, 0x6c])), 'cookie is bound to the source address');
  const tampered = Buffer.from(m2);
  tampered[140] ^= 1;
  t.false(checker.checkMac2(tampered, SRC));
});

test('a reply to another message, or tampered, is refused', (t) => {
  const { gen, checker, initiation } = setup();
  const m1 = initiation(1);
  t.false(gen.consumeReply(checker.createReply((() => { const x = initiation(2); gen.addMacs(Buffer.from(x)); return x; })(), 1, SRC)), 'no mac1 in the reply message');
  const m2 = initiation(3);
  gen.addMacs(m1);
  gen.addMacs(m2); // the last message sent is m2
  t.false(gen.consumeReply(checker.createReply(m1, 1, SRC)), 'reply to an older message');
  const good = checker.createReply(m2, 3, SRC);
  for (const i of [8, 31, 32, 63]) {
    const bad = Buffer.from(good);
    bad[i] ^= 0x10;
    t.false(gen.consumeReply(bad), `byte ${i}`);
  }
  t.false(gen.consumeReply(good.subarray(0, 63)));
  t.true(gen.consumeReply(good));
  t.false(new CookieGenerator(Buffer.alloc(32, 4), new ManualClock()).consumeReply(good), 'nothing sent yet');
});

test('cookies expire after 2 minutes on both sides; the secret rotates', (t) => {
  const { gen, checker, initiation, clock } = setup();
  const m1 = initiation(1);
  gen.addMacs(m1);
  const reply1 = checker.createReply(m1, 1, SRC);
  t.true(gen.consumeReply(reply1));
  clock.advance(120_000);
  t.true(gen.hasCookie(), 'exactly 120 s is still fresh (wireguard-go: > CookieRefreshTime expires)');
  const m2 = initiation(2);
  gen.addMacs(m2);
  t.true(checker.checkMac2(m2, SRC));
  clock.advance(1);
  t.false(gen.hasCookie());
  t.false(checker.checkMac2(m2, SRC), 'checker secret expired');
  const m3 = initiation(3);
  gen.addMacs(m3);
  t.true(m3.subarray(132).equals(Buffer.alloc(16)), 'expired cookie: no mac2');
  // A new reply uses a new secret: the old cookie's mac2 no longer verifies.
  const reply2 = checker.createReply(m3, 3, SRC);
  t.true(gen.consumeReply(reply2));
  t.true(checker.checkMac2(m2, SRC) === false);
  const m4 = initiation(4);
  gen.addMacs(m4);
  t.true(checker.checkMac2(m4, SRC));
});

test('cookie reply for a response message', (t) => {
  const { checker, gen } = setup();
  const resp = Buffer.alloc(92);
  resp[0] = 2;
  gen.addMacs(resp);
  t.true(checker.checkMac1(resp));
  t.true(gen.consumeReply(checker.createReply(resp, 42, SRC)));
  const resp2 = Buffer.alloc(92);
  resp2[0] = 2;
  resp2[20] = 1;
  gen.addMacs(resp2);
  t.true(checker.checkMac2(resp2, SRC));
  t.throws(() => checker.createReply(Buffer.alloc(64), 1, SRC), { instanceOf: RangeError }, 'precondition: checked message');
});

test('property: random input never throws in checker or generator', (t) => {
  const { gen, checker, initiation } = setup();
  gen.addMacs(initiation(1));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 160 }), fc.uint8Array({ maxLength: 20 }), (u, src) => {
    const b = Buffer.from(u);
    if (b.length === 64) b[0] = 3;
    return !checker.checkMac1(b) && !checker.checkMac2(b, src) && !gen.consumeReply(b);
  }), { numRuns: 3000 });
  t.pass();
});
