/**
 * Two session engines wired back to back in memory (no sockets, no TUN), on a manual clock:
 * handshake, data both ways, cryptokey routing, replay, rekey, keypair rotation. Every
 * packet and message goes in as a batch of one, with the default node:crypto AEAD.
 */
import test from 'ava';
import { ManualClock } from '../../../common/clock';
import { silentLogger } from '../../../common/logger';
import { parseAddr, parsePrefix } from '../../../common/ipv4';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64 } from '../../../protocol/keys';
import { createLocalIdentity } from '../../../protocol/handshake';
import { DEFAULT_TIMER_CONFIG, type TimerConfig } from '../../../protocol/timers';
import { Device, DEVICE_HEADROOM } from '../../../node-agent/device';
import { PeerSet } from '../../../node-agent/peer-set';
import { Endpoint, EndpointKind } from '../../../node-agent/endpoint';
import { ipv4Packet } from '../../harness/packets';
import { slab } from './batches';

const MTU = 1420;

interface Wire { from: 'a' | 'b'; bytes: Buffer }

function pair(timers: Partial<TimerConfig> = {}) {
  const clock = new ManualClock();
  const timerConfig = { ...DEFAULT_TIMER_CONFIG, ...timers };
  const wire: Wire[] = [];
  const inbox: Record<'a' | 'b', Buffer[]> = { a: [], b: [] };
  const keys = { a: generatePrivateKey(), b: generatePrivateKey() };
  const make = (self: 'a' | 'b') => {
    const local = createLocalIdentity(keys[self]);
    const peers = new PeerSet(local, clock, timerConfig);
    const send = (buf: Uint8Array, off: number, len: number) => wire.push({ from: self, bytes: Buffer.from(buf.subarray(off, off + len)) });
    const write = (buf: Uint8Array, off: number, len: number) => inbox[self].push(Buffer.from(buf.subarray(off, off + len)));
    const device = new Device({
      clock, logger: silentLogger(), peers, local, timerConfig, localAddresses: [parseAddr(self === 'a' ? '100.64.0.1' : '100.64.0.2')],
      outside: { send: (_ep, buf, off, len) => send(buf, off, len), sendInPlace: (_ep, buf, off, len) => send(buf, off, len) },
      inside: { write, writeInPlace: write },
    });
    return { device, peers };
  };
  const a = make('a');
  const b = make('b');
  a.peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(keys.b)), allowedIps: [parsePrefix('100.64.0.2/32')], endpoint: Endpoint.direct(2, 2) });
  b.peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(keys.a)), allowedIps: [parsePrefix('100.64.0.1/32')], endpoint: Endpoint.direct(1, 1) });
  /** Deliver everything on the wire until quiet. */
  const pump = (filter: (w: Wire) => boolean = () => true) => {
    while (wire.length) {
      const w = wire.shift()!;
      if (!filter(w)) continue;
      const to = w.from === 'a' ? b : a;
      const src = w.from === 'a' ? 1 : 2;
      to.device.readOutsidePackets(slab([w.bytes], 32, src, src), EndpointKind.Direct);
    }
  };
  const send = (from: 'a' | 'b', packet: Buffer) => {
    (from === 'a' ? a : b).device.readInsidePackets(slab([packet], DEVICE_HEADROOM), MTU);
  };
  return { clock, wire, inbox, a, b, pump, send };
}

test('first packet triggers a handshake and is delivered after it; replies flow back', (t) => {
  const n = pair();
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2'));
  t.is(n.wire.length, 1, 'an initiation goes out');
  n.pump();
  t.is(n.inbox.b.length, 1);
  t.deepEqual(n.inbox.b[0], ipv4Packet('100.64.0.1', '100.64.0.2'));
  n.send('b', ipv4Packet('100.64.0.2', '100.64.0.1', Buffer.from('reply')));
  n.pump();
  t.deepEqual(n.inbox.a[0], ipv4Packet('100.64.0.2', '100.64.0.1', Buffer.from('reply')));
  const peerB = [...n.a.peers.all()][0];
  t.truthy(peerB.current);
  t.is(peerB.stats.handshakes, 1);
});

test('a packet whose inner source the peer does not own is dropped and counted', (t) => {
  const n = pair();
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2'));
  n.pump();
  n.send('a', ipv4Packet('100.64.0.77', '100.64.0.2'));
  n.pump();
  t.is(n.inbox.b.length, 1);
  t.is(n.b.device.drops['source-not-allowed'], 1);
});

test('a replayed transport message is dropped', (t) => {
  const n = pair();
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2'));
  n.pump();
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('once')));
  const copy = Buffer.from(n.wire[0].bytes);
  n.pump();
  n.wire.push({ from: 'a', bytes: copy });
  n.pump();
  t.is(n.inbox.b.length, 2);
  t.is(n.b.device.drops['transport-replay'], 1);
});

test('no route: counted, and answered with ICMP host unreachable from the unreachable address', (t) => {
  const n = pair();
  n.send('a', ipv4Packet('100.64.0.1', '10.1.2.3'));
  t.is(n.a.device.drops['no-route'], 1);
  t.is(n.inbox.a.length, 1);
  const icmp = n.inbox.a[0];
  t.is(icmp.readUInt32BE(12), parseAddr('10.1.2.3'));
  t.is(icmp.readUInt32BE(16), parseAddr('100.64.0.1'));
  t.is(icmp[9], 1); // ICMP
  t.is(icmp[20], 3); // destination unreachable
  t.is(icmp[21], 1); // host
});

test('garbage is counted, never thrown', (t) => {
  const n = pair();
  const junk = Buffer.alloc(200, 0xab);
  n.a.device.readInsidePackets({ count: 1, data: junk, offsets: Uint32Array.of(30), lengths: Uint32Array.of(10) }, MTU);
  for (let i = 0; i < 2000; i++) {
    const len = 1 + Math.floor(Math.random() * 180);
    const b = Buffer.from(Array.from({ length: len }, () => Math.floor(Math.random() * 256)));
    b[0] = 1 + (i % 4);
    b[1] = b[2] = b[3] = 0;
    n.a.device.readOutsidePackets({ count: 1, data: b, offsets: Uint32Array.of(0), lengths: Uint32Array.of(b.length), addrs: Uint32Array.of(9), ports: Uint32Array.of(9) }, EndpointKind.Direct);
  }
  const total = Object.values(n.a.device.drops).reduce((x, y) => x + y, 0);
  t.true(total >= 2001);
});

test('the initiator rekeys after REKEY_AFTER_TIME and the old keypair is kept as previous', (t) => {
  // Longer than REKEY_TIMEOUT (5 s): initiations are rate limited to one per REKEY_TIMEOUT.
  const n = pair({ rekeyAfterTimeMs: 6000 });
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2'));
  n.pump();
  const peerB = [...n.a.peers.all()][0];
  const first = peerB.current;
  n.clock.advance(6500);
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2'));
  n.pump();
  t.is(peerB.stats.handshakes, 2);
  t.not(peerB.current, first);
  t.is(peerB.previous, first);
  t.is(n.inbox.b.length, 2);
  // B confirmed the new session: its next keypair became current after A's keepalive.
  const peerA = [...n.b.peers.all()][0];
  t.is(peerA.next, undefined);
  t.truthy(peerA.current);
});

test('lost response: the initiation is retried by the timers', (t) => {
  const n = pair();
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2'));
  n.wire.length = 0; // the initiation is lost
  for (let i = 0; i < 80; i++) {
    n.clock.advance(100);
    n.a.device.tick();
  }
  t.true(n.wire.length >= 1, 'a retry went out');
  n.pump();
  t.is(n.inbox.b.length, 1, 'the staged packet was delivered after the retried handshake');
});

test('a peer that lost its sessions (restart) answers data under an unknown index with a new handshake', (t) => {
  const n = pair();
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2'));
  n.pump();
  t.is(n.inbox.b.length, 1);
  // B forgets every session, as a restarted agent would.
  const peerA = [...n.b.peers.all()][0];
  n.b.device.handshakes.zeroKeys(peerA);
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('lost')));
  n.pump();
  t.is(n.b.device.drops['unknown-index'], 1);
  // B's initiation reached A and the handshake completed: the next packet gets through.
  n.send('a', ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('after')));
  n.pump();
  t.deepEqual(n.inbox.b.at(-1), ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('after')));
});

test('packets staged during the handshake all follow it, in order, sealed as one batch', (t) => {
  const n = pair();
  const sizes = [20, 21, 100, 1000, 1420 - 20];
  const packets = sizes.map((s, i) => ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.alloc(s, i + 1)));
  for (const p of packets) n.send('a', p);
  t.is(n.wire.length, 1, 'one initiation for all of them');
  n.pump();
  t.deepEqual(n.inbox.b, packets);
  const peerB = [...n.a.peers.all()][0];
  t.is(peerB.staged.length, 0);
  t.is(Object.values(n.a.device.drops).reduce((x, y) => x + y, 0), 0);
});
