/**
 * Lazy peers (node-agent/peer.ts, peer-set.ts): a peer is a directory record until the first
 * packet to or from it; its crypto, cookies and timers come then and go again when it has been
 * idle long enough, without weakening anything (a known key's initiation is answered, replays
 * stay refused, the timers never wake a directory peer). Two session engines back to back in
 * memory, on a manual clock; no timing is asserted.
 */
import test from 'ava';
import { ManualClock } from '../../../common/clock';
import { silentLogger } from '../../../common/logger';
import { parseAddr, parsePrefix } from '../../../common/ipv4';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64, x25519Operations, isLowOrderPoint } from '../../../protocol/keys';
import { dh } from '../../../protocol/noise';
import { createLocalIdentity } from '../../../protocol/handshake';
import { DEFAULT_TIMER_CONFIG } from '../../../protocol/timers';
import { MSG_INITIATION } from '../../../protocol/constants';
import { Device, DEVICE_HEADROOM } from '../../../node-agent/device';
import { IDLE_TRIM_MS, PeerSet } from '../../../node-agent/peer-set';
import { Endpoint, EndpointKind } from '../../../node-agent/endpoint';
import { ipv4Packet } from '../../harness/packets';
import { slab } from './batches';

const MTU = 1420;
/** From a peer's last handshake until its keys are zeroed (REJECT_AFTER_TIME × 3), then the trim grace. */
const UNTIL_TRIMMED_MS = DEFAULT_TIMER_CONFIG.rejectAfterTimeMs * 3 + IDLE_TRIM_MS;

interface Wire { from: 'a' | 'b'; bytes: Buffer }

/** a and b know each other; b also holds `extra` directory peers that never talk. */
function pair(extra = 0) {
  const clock = new ManualClock();
  const timerConfig = DEFAULT_TIMER_CONFIG;
  const wire: Wire[] = [];
  const inbox: Record<'a' | 'b', Buffer[]> = { a: [], b: [] };
  const keys = { a: generatePrivateKey(), b: generatePrivateKey() };
  const make = (self: 'a' | 'b') => {
    const local = createLocalIdentity(keys[self]);
    let device: Device | undefined;
    const peers = new PeerSet(local, clock, timerConfig, (p) => device!.forgetPeer(p));
    const send = (buf: Uint8Array, off: number, len: number) => wire.push({ from: self, bytes: Buffer.from(buf.subarray(off, off + len)) });
    const write = (buf: Uint8Array, off: number, len: number) => inbox[self].push(Buffer.from(buf.subarray(off, off + len)));
    device = new Device({
      clock, logger: silentLogger(), peers, local, timerConfig, localAddresses: [parseAddr(self === 'a' ? '100.64.0.1' : '100.64.0.2')],
      outside: { send: (_ep, buf, off, len) => send(buf, off, len), sendInPlace: (_ep, buf, off, len) => send(buf, off, len) },
      inside: { write, writeInPlace: write },
    });
    return { device, peers };
  };
  const a = make('a');
  const b = make('b');
  const x25519Before = x25519Operations();
  for (let i = 0; i < extra; i++) {
    b.peers.upsert({ publicKey: keyToBase64(generatePrivateKey()), allowedIps: [{ addr: parseAddr('100.65.0.0') + i, bits: 32 }], endpoint: Endpoint.relay(parseAddr('100.65.0.0') + i) });
  }
  const upsertX25519 = x25519Operations() - x25519Before;
  const peerOfA = a.peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(keys.b)), allowedIps: [parsePrefix('100.64.0.2/32')], endpoint: Endpoint.direct(2, 2) });
  const peerOfB = b.peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(keys.a)), allowedIps: [parsePrefix('100.64.0.1/32')], endpoint: Endpoint.direct(1, 1) });
  const pump = (filter: (w: Wire) => boolean = () => true) => {
    while (wire.length) {
      const w = wire.shift()!;
      if (!filter(w)) continue;
      deliver(w);
    }
  };
  const deliver = (w: Wire) => {
    const to = w.from === 'a' ? b : a;
    const src = w.from === 'a' ? 1 : 2;
    to.device.readOutsidePackets(slab([w.bytes], 32, src, src), EndpointKind.Direct);
  };
  const send = (from: 'a' | 'b', packet: Buffer) => {
    (from === 'a' ? a : b).device.readInsidePackets(slab([packet], DEVICE_HEADROOM), MTU);
  };
  /** Advance the clock in tick-sized steps, running both engines' timers and delivering what they send. */
  const run = (ms: number, filter?: (w: Wire) => boolean, step = 1000) => {
    for (let left = ms; left > 0; left -= step) {
      clock.advance(Math.min(step, left));
      a.device.tick();
      b.device.tick();
      pump(filter);
    }
  };
  return { clock, wire, inbox, a, b, pump, deliver, send, run, peerOfA, peerOfB, upsertX25519 };
}

const ab = () => ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('a to b'));
const ba = () => ipv4Packet('100.64.0.2', '100.64.0.1', Buffer.from('b to a'));

test('a directory peer costs no X25519 and no session state, and the timers never wake it', (t) => {
  const n = pair(200);
  t.is(n.upsertX25519, 0, 'adding 200 peers made no DH');
  t.is(n.b.peers.size, 201);
  t.is(n.b.peers.liveCount, 0, 'no peer holds session state');
  t.false(n.peerOfB.live);
  n.run(30_000);
  t.is(n.b.peers.liveCount, 0, 'ticking for 30 s made none');
  t.is(n.b.peers.materialised, 0);
  t.is(n.wire.length, 0);
  // Positive control, same setup: traffic makes exactly the peers it touches live.
  n.send('a', ab());
  n.pump();
  t.deepEqual(n.inbox.b, [ab()], 'delivered after the handshake');
  t.is(n.b.peers.liveCount, 1, 'only the peer that talked is live on b');
  t.true(n.peerOfB.live);
  t.is(n.a.peers.liveCount, 1);
});

test('an initiation from a never-used peer is answered: found by its static key, made live, the session completes', (t) => {
  const n = pair(50);
  t.false(n.peerOfB.live, 'b never used its peer a');
  n.send('a', ab());
  t.is(n.wire[0].bytes[0], MSG_INITIATION);
  n.pump();
  t.true(n.peerOfB.live);
  t.is(n.peerOfB.stats.handshakes, 1, 'b answered');
  t.deepEqual(n.inbox.b, [ab()]);
  n.send('b', ba());
  n.pump();
  t.deepEqual(n.inbox.a, [ba()], 'and the reply flows back under the session');
});

test('an idle peer is trimmed (no crypto, no timers, no index) and a new packet brings it back', (t) => {
  const n = pair();
  n.send('a', ab());
  n.pump();
  n.send('b', ba());
  n.pump();
  t.true(n.peerOfA.live && n.peerOfB.live);
  t.truthy(n.peerOfA.current);

  // Still live with a session: a minute later nothing is trimmed.
  n.run(60_000);
  t.true(n.peerOfA.live, 'a peer with a session is kept');
  t.truthy(n.peerOfA.current);

  n.run(UNTIL_TRIMMED_MS);
  for (const [who, p, side] of [['a', n.peerOfA, n.a], ['b', n.peerOfB, n.b]] as const) {
    t.false(p.live, `${who}: session state dropped`);
    t.is(p.current ?? p.previous ?? p.next, undefined, `${who}: no keypair`);
    t.is(side.peers.liveCount, 0);
    t.is(side.device.indices.size, 0, `${who}: no index left`);
  }
  const made = n.a.peers.materialised;

  // A new packet: made again, handshake, delivered.
  n.inbox.b.length = 0;
  n.send('a', ab());
  t.true(n.peerOfA.live);
  t.is(n.a.peers.materialised, made + 1);
  n.pump();
  t.deepEqual(n.inbox.b, [ab()], 'delivered after a new handshake');
  t.is(n.peerOfA.stats.handshakes, 2);
  // And the other way round, from the side that answered last time.
  n.inbox.a.length = 0;
  n.send('b', ba());
  n.pump();
  t.deepEqual(n.inbox.a, [ba()]);
});

test('a trimmed peer still refuses a replay of an initiation it accepted before the trim', (t) => {
  const n = pair();
  n.send('a', ab());
  const first = n.wire[0];
  t.is(first.bytes[0], MSG_INITIATION);
  n.pump();
  t.is(n.peerOfB.stats.handshakes, 1);
  n.run(UNTIL_TRIMMED_MS);
  t.false(n.peerOfB.live, 'b trimmed its peer a');

  // The captured initiation, replayed to b: refused, no answer, no session.
  const replays = n.b.device.drops['handshake-replay'];
  n.deliver(first);
  t.is(n.b.device.drops['handshake-replay'], replays + 1, 'the replay is refused');
  t.is(n.wire.length, 0, 'and not answered');
  t.is(n.peerOfB.next, undefined);

  // Positive control in the same setup: a fresh initiation from a is answered.
  n.send('a', ab());
  n.pump();
  t.is(n.peerOfB.stats.handshakes, 2);
  t.deepEqual(n.inbox.b, [ab(), ab()]);
});

test('a handshake whose answers are lost: both sides give up, zero their keys and are trimmed', (t) => {
  const n = pair();
  const fromA = (w: Wire) => w.from === 'a';
  n.send('a', ab());
  n.pump(fromA);
  t.true(n.peerOfA.live && n.peerOfB.live, 'b answered (its answer is lost)');
  t.truthy(n.peerOfB.next);
  // a retries until REKEY_ATTEMPT_TIME, gives up; each side zeroes its keys 540 s later, then the grace.
  n.run(DEFAULT_TIMER_CONFIG.rekeyAttemptTimeMs + 10_000 + UNTIL_TRIMMED_MS + 10_000, fromA); // + retries' jitter, + slack
  t.true(n.peerOfB.stats.handshakes > 1, 'b answered the retries too');
  t.false(n.peerOfA.live, 'a dropped its state');
  t.false(n.peerOfB.live, 'b dropped the answered, never confirmed session');
  t.is(n.a.device.indices.size + n.b.device.indices.size, 0);
  // Positive control: with the answers delivered, the next packet gets through.
  n.send('a', ab());
  n.pump();
  t.deepEqual(n.inbox.b, [ab()]);
});

test('removing a peer releases only its own indices', (t) => {
  const n = pair();
  n.send('a', ab());
  n.pump();
  const other = n.a.peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(generatePrivateKey())), allowedIps: [parsePrefix('100.64.0.9/32')], endpoint: Endpoint.direct(9, 9) });
  n.a.device.readInsidePackets(slab([ipv4Packet('100.64.0.1', '100.64.0.9')], DEVICE_HEADROOM), MTU); // an initiation to it: one index
  n.wire.length = 0;
  t.is(n.a.device.indices.countOf(other), 1);
  const total = n.a.device.indices.size;
  t.true(n.a.peers.remove(other.publicKeyBase64));
  t.is(n.a.device.indices.size, total - 1, 'its index went');
  t.is(n.a.device.indices.countOf(n.peerOfA), total - 1, 'b\'s stayed');
  n.send('a', ab());
  n.pump();
  t.is(n.inbox.b.length, 2, 'b still reachable');
});

test('low-order public keys are refused when added (their DH, made later, would be zero)', (t) => {
  const n = pair();
  const lowOrder = Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex');
  t.true(isLowOrderPoint(lowOrder));
  t.is(dh(generatePrivateKey(), lowOrder), undefined, 'its DH is zero');
  t.throws(() => n.a.peers.upsert({ publicKey: lowOrder.toString('base64'), allowedIps: [parsePrefix('100.64.0.7/32')] }), { message: /low-order/ });
  const highBit = Buffer.from(lowOrder);
  highBit[31] |= 0x80;
  t.throws(() => n.a.peers.upsert({ publicKey: highBit.toString('base64'), allowedIps: [parsePrefix('100.64.0.7/32')] }), { message: /low-order/ });
  // Positive control: an ordinary key is accepted, and its DH is not zero.
  const ok = publicKeyFromPrivate(generatePrivateKey());
  t.false(isLowOrderPoint(ok));
  t.truthy(dh(generatePrivateKey(), ok));
  t.notThrows(() => n.a.peers.upsert({ publicKey: keyToBase64(ok), allowedIps: [parsePrefix('100.64.0.7/32')] }));
});

test('every key isLowOrderPoint names gives a zero DH', (t) => {
  const p = (1n << 255n) - 19n;
  const enc = (v: bigint) => {
    const b = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) b[i] = Number((v >> BigInt(8 * i)) & 0xffn);
    return b;
  };
  for (const v of [0n, 1n, p - 1n, p, p + 1n]) {
    t.true(isLowOrderPoint(enc(v)), `${v}`);
    t.is(dh(generatePrivateKey(), enc(v)), undefined, `DH with ${v} is zero`);
  }
  t.false(isLowOrderPoint(enc(9n)), 'the base point is not');
});

test('a preshared key changed on a live peer is used by its next handshake', (t) => {
  const n = pair();
  n.send('a', ab());
  n.pump();
  t.is(n.inbox.b.length, 1);
  const psk = keyToBase64(generatePrivateKey());
  const respec = (side: typeof n.a, peer: typeof n.peerOfA) => side.peers.upsert({
    publicKey: peer.publicKeyBase64, allowedIps: peer.allowedIps, endpoint: peer.endpoint, presharedKey: psk,
  });
  const restart = () => {
    n.a.device.handshakes.zeroKeys(n.peerOfA);
    n.b.device.handshakes.zeroKeys(n.peerOfB);
    n.run(6_000); // past REKEY_TIMEOUT: a new initiation is allowed
  };
  // Only a has the new key: the handshake fails, nothing is delivered.
  respec(n.a, n.peerOfA);
  restart();
  const failed = n.a.device.drops['handshake-failed'] + n.b.device.drops['handshake-failed'];
  n.send('a', ab());
  n.pump();
  t.is(n.inbox.b.length, 1, 'PSKs differ: not delivered');
  t.true(n.a.device.drops['handshake-failed'] + n.b.device.drops['handshake-failed'] > failed);
  // Both have it: the next handshake succeeds and the staged packet arrives.
  respec(n.b, n.peerOfB);
  restart();
  n.send('a', ab());
  n.pump();
  t.true(n.inbox.b.length >= 2, 'same PSK on both sides: delivered');
});

test('a directory peer keeps its key only as base64 and gives the same 32 bytes when asked (a copy)', (t) => {
  const clock = new ManualClock();
  const peers = new PeerSet(createLocalIdentity(generatePrivateKey()), clock, DEFAULT_TIMER_CONFIG);
  const pub = publicKeyFromPrivate(generatePrivateKey());
  const p = peers.upsert({ publicKey: keyToBase64(pub), allowedIps: [parsePrefix('100.64.0.9/32')] });
  t.deepEqual(p.publicKey, pub);
  p.publicKey.fill(0);
  t.deepEqual(p.publicKey, pub, 'callers get a copy: the peer key cannot be changed through it');
  t.is(peers.getByKey(pub), p);
  const other = peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(generatePrivateKey())), allowedIps: [parsePrefix('100.64.0.10/32')] });
  t.notDeepEqual(other.publicKey, pub);
});
