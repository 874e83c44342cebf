/**
 * The engine's rekey and retry decisions are protocol/timers.ts's (wireguard-go
 * keepKeyFreshSending / keepKeyFreshReceiving / SendHandshakeInitiation / timers.go): two
 * real `Device`s back to back in memory on a manual clock, with node:crypto and (with the
 * native addon) the native batched AEAD. The message counter is set on the keypair, since REKEY_AFTER_MESSAGES
 * cannot be reached by sending.
 */
import test from 'ava';
import { ManualClock } from '../../../common/clock';
import { silentLogger } from '../../../common/logger';
import { type PacketBatch } from '../../../common/packet-io';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64 } from '../../../protocol/keys';
import { createLocalIdentity } from '../../../protocol/handshake';
import { MSG_INITIATION, MSG_TRANSPORT } from '../../../protocol/constants';
import { REJECT_AFTER_MESSAGES_NUM } from '../../../protocol/replay';
import { DEFAULT_TIMER_CONFIG, type TimerConfig } from '../../../protocol/timers';
import { Device, DEVICE_HEADROOM, DEVICE_TAILROOM } from '../../../node-agent/device';
import { PeerSet } from '../../../node-agent/peer-set';
import { Endpoint, EndpointKind } from '../../../node-agent/endpoint';
import { parseNetwork, parseAddr } from '../../../common/ipv4';
import type { BatchAead } from '../../../node-agent/batch-crypto';
import { aead as nativeAead, nativeAvailable } from '../../../native-bindings';
import { ipv4Packet } from '../../harness/packets';

type Side = 'a' | 'b';
interface Wire { from: Side; bytes: Buffer }

const MTU = 1420;
const native = nativeAvailable() ? nativeAead : undefined;

/** Both engines on node:crypto, and both on the native AEAD when the addon is built. */
const MODES: Array<[string, BatchAead | undefined]> = [['node:crypto', undefined]];
if (native) MODES.push(['native AEAD', native]);

function pair(timers: Partial<TimerConfig>, aead: BatchAead | undefined) {
  const clock = new ManualClock();
  const timerConfig = { ...DEFAULT_TIMER_CONFIG, ...timers };
  const wire: Wire[] = [];
  const inbox: Record<Side, Buffer[]> = { a: [], b: [] };
  const keys = { a: generatePrivateKey(), b: generatePrivateKey() };
  const make = (self: Side) => {
    // Copying at once is allowed for the in-place variants too (never later than the flush).
    const toWire = (_ep: Endpoint, buf: Uint8Array, off: number, len: number) => wire.push({ from: self, bytes: Buffer.from(buf.subarray(off, off + len)) });
    const toInbox = (buf: Uint8Array, off: number, len: number) => inbox[self].push(Buffer.from(buf.subarray(off, off + len)));
    const local = createLocalIdentity(keys[self]);
    const peers = new PeerSet(local, clock, timerConfig);
    const device = new Device({
      clock, logger: silentLogger(), peers, local, timerConfig, localAddresses: [parseAddr(self === 'a' ? '100.64.0.1' : '100.64.0.2')], aead,
      outside: { send: toWire, sendInPlace: toWire },
      inside: { write: toInbox, writeInPlace: toInbox },
    });
    return { device, peers };
  };
  const a = make('a');
  const b = make('b');
  a.peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(keys.b)), allowedIps: [parseNetwork('100.64.0.2/32')], endpoint: Endpoint.direct(2, 2) });
  b.peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(keys.a)), allowedIps: [parseNetwork('100.64.0.1/32')], endpoint: Endpoint.direct(1, 1) });
  const side = (s: Side) => (s === 'a' ? a : b);
  /** A's peer (B) and B's peer (A). */
  const peerOf = (s: Side) => [...side(s).peers.all()][0];
  /** One datagram into the other side's engine, as a receive batch of one. */
  const deliver = (w: Wire) => {
    const to = side(w.from === 'a' ? 'b' : 'a').device;
    const buf = Buffer.alloc(w.bytes.length + 64);
    w.bytes.copy(buf, 32);
    const n = w.from === 'a' ? 1 : 2;
    to.readOutsidePackets({ count: 1, data: buf, offsets: Uint32Array.of(32), lengths: Uint32Array.of(w.bytes.length),
      addrs: Uint32Array.of(n), ports: Uint32Array.of(n) }, EndpointKind.Direct);
  };
  /** Deliver everything on the wire until quiet. */
  const pump = () => {
    while (wire.length) deliver(wire.shift()!);
  };
  /** Deliver only what is on the wire now; what that provokes stays on the wire. */
  const deliverQueued = () => {
    for (const w of wire.splice(0)) deliver(w);
  };
  let seq = 0;
  /** One inner packet from `from` to the other side, through the mode's inside path. Returns it. */
  const send = (from: Side): Buffer => {
    const p = ipv4Packet(from === 'a' ? '100.64.0.1' : '100.64.0.2', from === 'a' ? '100.64.0.2' : '100.64.0.1', Buffer.from(`packet ${seq++}`));
    const buf = Buffer.alloc(DEVICE_HEADROOM + p.length + DEVICE_TAILROOM);
    p.copy(buf, DEVICE_HEADROOM);
    const d = side(from).device;
    const batch: PacketBatch = { count: 1, data: buf, offsets: Uint32Array.of(DEVICE_HEADROOM), lengths: Uint32Array.of(p.length) };
    d.readInsidePackets(batch, MTU);
    return p;
  };
  /** Messages of `type` on the wire (not yet delivered) sent by `from`. */
  const onWire = (from: Side, type: number) => wire.filter((w) => w.from === from && w.bytes[0] === type);
  /** A first packet a → b: A initiates, B answers, the packet follows; both sides then hold the session. */
  const establish = () => {
    const p = send('a');
    pump();
    if (!inbox.b.at(-1)?.equals(p)) throw new Error('first packet not delivered');
  };
  return { clock, wire, inbox, a, b, pump, deliverQueued, send, onWire, peerOf, establish };
}

for (const [mode, aead] of MODES) {
  test(`${mode}: the sender rekeys after REKEY_AFTER_MESSAGES (strictly more) on its current keypair; data keeps flowing`, (t) => {
    // 2^60 lies beyond the counters a JS number keeps exact (2^53): a large count in range.
    const R = 2 ** 50;
    const n = pair({ rekeyAfterMessages: R }, aead);
    n.establish();
    n.clock.advance(6_000); // past REKEY_TIMEOUT since the first initiation: a new one may go out
    const peerB = n.peerOf('a');
    const first = peerB.current!;
    first.sendCounter = R - 1;

    const p1 = n.send('a');
    t.is(first.sendCounter, R, 'counter R - 1 used');
    t.is(n.onWire('a', MSG_INITIATION).length, 0, 'R messages sent: not more than REKEY_AFTER_MESSAGES yet');
    t.is(n.onWire('a', MSG_TRANSPORT).length, 1);
    n.pump();
    t.deepEqual(n.inbox.b.at(-1), p1);

    const p2 = n.send('a');
    t.is(n.onWire('a', MSG_TRANSPORT).length, 1, 'the packet itself still goes out on the old keypair');
    t.is(n.onWire('a', MSG_INITIATION).length, 1, 'R + 1 messages sent: a new handshake starts');
    n.pump();
    t.deepEqual(n.inbox.b.at(-1), p2);
    t.not(peerB.current, first, 'the initiator moved to the new keypair');
    t.is(peerB.previous, first);
    t.is(peerB.stats.handshakes, 2);
    t.is(peerB.timers.handshakeAttempts, 0);

    // Data keeps flowing both ways on the new session, and B confirmed it.
    const p3 = n.send('a');
    t.is(n.wire[0].bytes.readUInt32LE(4), peerB.current!.remoteIndex, 'sealed under the new keypair');
    n.pump();
    t.deepEqual(n.inbox.b.at(-1), p3);
    const peerA = n.peerOf('b');
    t.is(peerA.next, undefined);
    t.is(peerA.current!.localIndex, peerB.current!.remoteIndex);
    const back = n.send('b');
    n.pump();
    t.deepEqual(n.inbox.a.at(-1), back);
    t.is(n.onWire('a', MSG_INITIATION).length + n.onWire('b', MSG_INITIATION).length, 0, 'no further handshakes');
  });

  test(`${mode}: the responder rekeys on the message count too, never on time`, (t) => {
    const R = 2 ** 40;
    const n = pair({ rekeyAfterMessages: R, rekeyAfterTimeMs: 10_000 }, aead);
    n.establish();
    n.clock.advance(60_000); // well past REKEY_AFTER_TIME
    const peerA = n.peerOf('b');
    const first = peerA.current!;
    t.false(first.isInitiator);
    n.send('b');
    t.is(n.onWire('b', MSG_INITIATION).length, 0, 'the responder leaves time-based rekeying to the initiator');
    n.pump();
    first.sendCounter = R;
    n.send('b');
    t.is(n.onWire('b', MSG_INITIATION).length, 1);
    n.pump();
    t.not(peerA.current, first);
    t.true(peerA.current!.isInitiator, 'B initiated the new session');
    const p = n.send('b');
    n.pump();
    t.deepEqual(n.inbox.a.at(-1), p);
  });

  test(`${mode}: time-based rekey on send only when the keypair is strictly older than REKEY_AFTER_TIME`, (t) => {
    const n = pair({ rekeyAfterTimeMs: 10_000 }, aead);
    n.establish();
    const peerB = n.peerOf('a');
    const first = peerB.current!;
    n.clock.advance(first.createdMs + 10_000 - n.clock.now());
    n.send('a');
    t.is(n.onWire('a', MSG_INITIATION).length, 0, 'age == REKEY_AFTER_TIME: no rekey');
    n.pump();
    n.clock.advance(1);
    n.send('a');
    t.is(n.onWire('a', MSG_INITIATION).length, 1, 'age > REKEY_AFTER_TIME: rekey');
    n.pump();
    t.not(peerB.current, first);
  });

  test(`${mode}: receive-side rekey strictly after REJECT_AFTER_TIME - KEEPALIVE - REKEY_TIMEOUT`, (t) => {
    const n = pair({}, aead);
    n.establish();
    const peerB = n.peerOf('a');
    const first = peerB.current!;
    const c = DEFAULT_TIMER_CONFIG;
    const limit = c.rejectAfterTimeMs - c.keepaliveTimeoutMs - c.rekeyTimeoutMs;
    // B (the responder) sends; A, the initiator, decides on receive.
    n.clock.advance(first.createdMs + limit - n.clock.now());
    const p1 = n.send('b');
    n.deliverQueued();
    t.deepEqual(n.inbox.a.at(-1), p1);
    t.is(n.onWire('a', MSG_INITIATION).length, 0, 'age == limit: no rekey');
    n.clock.advance(1);
    n.send('b');
    n.deliverQueued();
    t.is(n.onWire('a', MSG_INITIATION).length, 1, 'age > limit: the initiator rekeys on receive');
    n.pump();
    t.not(peerB.current, first);
    t.is(peerB.stats.handshakes, 2);
  });

  test(`${mode}: the last-minute receive rekey is sent once until a handshake completes`, (t) => {
    const n = pair({}, aead);
    n.establish();
    const peerB = n.peerOf('a');
    const first = peerB.current!;
    const c = DEFAULT_TIMER_CONFIG;
    const limit = c.rejectAfterTimeMs - c.keepaliveTimeoutMs - c.rekeyTimeoutMs;
    n.clock.advance(first.createdMs + limit + 1 - n.clock.now());
    n.send('b');
    n.deliverQueued();
    t.is(n.onWire('a', MSG_INITIATION).length, 1, 'A initiates on receive');
    n.wire.length = 0; // lost
    n.clock.advance(6_000); // past REKEY_TIMEOUT, still before REJECT_AFTER_TIME
    const p = n.send('b');
    n.deliverQueued();
    t.deepEqual(n.inbox.a.at(-1), p);
    t.is(n.onWire('a', MSG_INITIATION).length, 0, 'not again on receive: retries are the retransmit timer\'s');
    t.is(peerB.current, first);
  });

  test(`${mode}: a keypair at the message limit is not used: the packet waits for a new session`, (t) => {
    const n = pair({}, aead);
    n.establish();
    n.clock.advance(6_000);
    const peerB = n.peerOf('a');
    const first = peerB.current!;
    first.sendCounter = REJECT_AFTER_MESSAGES_NUM;
    const p = n.send('a');
    t.is(n.onWire('a', MSG_TRANSPORT).length, 0, 'nothing sealed under the exhausted keypair');
    t.is(n.onWire('a', MSG_INITIATION).length, 1);
    t.is(peerB.staged.length, 1);
    n.pump();
    t.not(peerB.current, first);
    t.deepEqual(n.inbox.b.at(-1), p);
  });
}

test('a new (non-retry) handshake resets the attempt count; retries do not', (t) => {
  const n = pair({}, undefined);
  const peerB = n.peerOf('a');
  n.send('a');
  let initiations = n.onWire('a', MSG_INITIATION).length;
  n.wire.length = 0; // every initiation is lost
  // Three retransmissions by the timers.
  while (peerB.timers.handshakeAttempts < 3) {
    n.clock.advance(100);
    n.a.device.tick();
    initiations += n.onWire('a', MSG_INITIATION).length;
    n.wire.length = 0;
  }
  t.is(initiations, 4);
  t.is(peerB.timers.handshakeAttempts, 3);
  // New data while the handshake is pending: a new handshake in wireguard-go's sense.
  n.send('a');
  t.is(peerB.timers.handshakeAttempts, 0, 'attempts reset by a new (non-retry) handshake');
  n.wire.length = 0;
  // From here the timers retry MaxTimerHandshakes + 1 = 17 times before giving up.
  let retries = 0;
  while (peerB.staged.length > 0 && retries < 100) {
    n.clock.advance(100);
    n.a.device.tick();
    retries += n.onWire('a', MSG_INITIATION).length;
    n.wire.length = 0;
  }
  t.is(retries, 17);
  t.is(peerB.staged.length, 0, 'gave up: staged packets dropped');
});

test('gives up after REKEY_ATTEMPT_TIME; the next packet starts over', (t) => {
  const n = pair({}, undefined);
  const peerB = n.peerOf('a');
  n.send('a');
  let initiations = 0;
  let last = 0;
  for (let i = 0; i < 2_000; i++) {
    const k = n.onWire('a', MSG_INITIATION).length;
    if (k > 0) last = n.clock.now();
    initiations += k;
    n.wire.length = 0;
    n.clock.advance(100);
    n.a.device.tick();
  }
  t.is(initiations, 18, 'MaxTimerHandshakes + 2 initiations, as wireguard-go');
  // 17 retries, each REKEY_TIMEOUT + jitter (< 334 ms) after the previous, seen at the next 100 ms tick.
  t.true(last >= 17 * 5_000 && last < 17 * 5_434, `last initiation at ${last} ms`);
  t.is(peerB.staged.length, 0, 'staged packets dropped on giving up');
  const p = n.send('a');
  t.is(n.onWire('a', MSG_INITIATION).length, 1, 'new data: a new handshake');
  t.is(peerB.timers.handshakeAttempts, 0);
  n.pump();
  t.deepEqual(n.inbox.b.at(-1), p);
});
