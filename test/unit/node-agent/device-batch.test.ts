/**
 * The data path with whole batches (Device.readInsidePackets / readOutsidePackets): two
 * engines back to back in memory, whole batches in one slab each way. Engines on the native
 * batched AEAD and on node:crypto's (nodeCryptoAead) must interoperate byte for byte, and
 * the replay window must move only for packets whose tag verified.
 */
import test from 'ava';
import { ManualClock } from '../../../common/clock';
import { silentLogger } from '../../../common/logger';
import { parseAddr, parsePrefix } from '../../../common/ipv4';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64 } from '../../../protocol/keys';
import { createLocalIdentity } from '../../../protocol/handshake';
import { DEFAULT_TIMER_CONFIG } from '../../../protocol/timers';
import { Device, DEVICE_HEADROOM } from '../../../node-agent/device';
import { PeerSet } from '../../../node-agent/peer-set';
import { Endpoint, EndpointKind } from '../../../node-agent/endpoint';
import { nodeCryptoAead, type BatchAead } from '../../../node-agent/batch-crypto';
import { aead as nativeAead, nativeAvailable } from '../../../native-bindings';
import { ipv4Packet } from '../../harness/packets';
import { slab } from './batches';

const MTU = 1420;

type Side = 'a' | 'b';
interface Wire { from: Side; bytes: Buffer }

function pair(aeads: Record<Side, BatchAead>) {
  const clock = new ManualClock();
  const timerConfig = { ...DEFAULT_TIMER_CONFIG };
  const wire: Wire[] = [];
  const inbox: Record<Side, Buffer[]> = { a: [], b: [] };
  const keys = { a: generatePrivateKey(), b: generatePrivateKey() };
  const make = (self: Side) => {
    const local = createLocalIdentity(keys[self]);
    const peers = new PeerSet(local, clock, timerConfig);
    const send = (buf: Uint8Array, off: number, len: number) => wire.push({ from: self, bytes: Buffer.from(buf.subarray(off, off + len)) });
    const write = (buf: Uint8Array, off: number, len: number) => inbox[self].push(Buffer.from(buf.subarray(off, off + len)));
    const device = new Device({
      clock, logger: silentLogger(), peers, local, timerConfig, localAddresses: [parseAddr(self === 'a' ? '100.64.0.1' : '100.64.0.2')], aead: aeads[self],
      outside: { send: (_ep, buf, off, len) => send(buf, off, len), sendInPlace: (_ep, buf, off, len) => send(buf, off, len) },
      inside: { write, writeInPlace: write },
    });
    return { device, peers };
  };
  const a = make('a');
  const b = make('b');
  a.peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(keys.b)), allowedIps: [parsePrefix('100.64.0.2/32')], endpoint: Endpoint.relay(parseAddr('100.64.0.2')) });
  b.peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(keys.a)), allowedIps: [parsePrefix('100.64.0.1/32')], endpoint: Endpoint.relay(parseAddr('100.64.0.1')) });
  const dev = (s: Side) => (s === 'a' ? a : b).device;
  /** Deliver what is on the wire in batches (one slab per batch) until quiet. */
  const pump = (mutate: (w: Wire[]) => Wire[] = (w) => w) => {
    for (let rounds = 0; wire.length > 0 && rounds < 20; rounds++) {
      const all = mutate(wire.splice(0));
      for (const to of ['a', 'b'] as const) {
        const msgs = all.filter((w) => w.from !== to);
        if (msgs.length === 0) continue;
        const from = parseAddr(to === 'a' ? '100.64.0.2' : '100.64.0.1');
        dev(to).readOutsidePackets(slab(msgs.map((w) => w.bytes), 64, from), EndpointKind.Relay);
      }
    }
  };
  const sendBatch = (from: Side, packets: Buffer[]) => dev(from).readInsidePackets(slab(packets, DEVICE_HEADROOM), MTU);
  return { clock, wire, inbox, a, b, pump, sendBatch };
}

const payloads = (n: number, tag: string) => Array.from({ length: n }, (_, i) => Buffer.alloc(1 + ((i * 97) % 1380), `${tag}${i}`));

const native = nativeAvailable() ? nativeAead : undefined;
const needNative = native ? test : test.skip;
if (!native) console.log('native addon not built (npm run install): skipping the batched-AEAD tests');

for (const [name, aeads] of [
  ['both native', { a: native!, b: native! }],
  ['native a, node:crypto b', { a: native!, b: nodeCryptoAead }],
  ['node:crypto a, native b', { a: nodeCryptoAead, b: native! }],
] as const) {
  needNative(`${name}: whole batches each way arrive intact and in order`, (t) => {
    const n = pair(aeads);
    n.sendBatch('a', [ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('first'))]);
    n.pump();
    t.is(n.inbox.b.length, 1, 'the staged first packet follows the handshake');
    const ab = payloads(100, 'a→b').map((p) => ipv4Packet('100.64.0.1', '100.64.0.2', p));
    const ba = payloads(77, 'b→a').map((p) => ipv4Packet('100.64.0.2', '100.64.0.1', p));
    n.sendBatch('a', ab);
    n.sendBatch('b', ba);
    t.is(n.wire.length, 177);
    n.pump();
    t.deepEqual(n.inbox.b.slice(1), ab);
    t.deepEqual(n.inbox.a, ba);
    for (const s of ['a', 'b'] as const) {
      const d = s === 'a' ? n.a.device : n.b.device;
      t.is(Object.values(d.drops).reduce((x, y) => x + y, 0), 0, `no drops at ${s}`);
    }
  });
}

/** Every batch behaviour on each AEAD behind BatchAead: node:crypto always, native when built. */
const aeads: [string, BatchAead][] = [['node:crypto', nodeCryptoAead], ...(native ? [['native', native] as [string, BatchAead]] : [])];
for (const [aeadName, aead] of aeads) {
  test(`${aeadName}: in one batch: a duplicate is dropped as replay, a forged copy does not move the window`, (t) => {
    const n = pair({ a: aead, b: aead });
    n.sendBatch('a', [ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('hs'))]);
    n.pump();
    const pk = payloads(3, 'x').map((p) => ipv4Packet('100.64.0.1', '100.64.0.2', p));
    n.sendBatch('a', pk);
    const [m0, m1, m2] = n.wire.splice(0).map((w) => w.bytes);
    const forged = Buffer.from(m1);
    forged[forged.length - 1] ^= 1; // tag
    // Forged copy of m1 first (same counter): if it moved the window, the real m1 would be a replay.
    n.wire.push({ from: 'a', bytes: forged }, { from: 'a', bytes: m0 }, { from: 'a', bytes: m0 }, { from: 'a', bytes: m1 }, { from: 'a', bytes: m2 });
    n.pump();
    t.deepEqual(n.inbox.b.slice(1), pk);
    t.is(n.b.device.drops['transport-auth'], 1);
    t.is(n.b.device.drops['transport-replay'], 1);
  });

  test(`${aeadName}: in one batch: an inner source the peer does not own is dropped; the rest of the batch goes through`, (t) => {
    const n = pair({ a: aead, b: aead });
    n.sendBatch('a', [ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('hs'))]);
    n.pump();
    const good = ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('good'));
    n.sendBatch('a', [good, ipv4Packet('100.64.0.99', '100.64.0.2', Buffer.from('spoof')), good]);
    n.pump();
    t.deepEqual(n.inbox.b.slice(1), [good, good]);
    t.is(n.b.device.drops['source-not-allowed'], 1);
  });

  test(`${aeadName}: a TUN batch: too long, IPv6 and unroutable packets are counted, the others sealed`, (t) => {
    const n = pair({ a: aead, b: aead });
    n.sendBatch('a', [ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('hs'))]);
    n.pump();
    const ok = ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('ok'));
    const v6 = Buffer.alloc(40);
    v6[0] = 0x60;
    n.sendBatch('a', [ok, ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.alloc(MTU)), v6, ipv4Packet('100.64.0.1', '10.9.9.9', Buffer.from('x')), ok]);
    t.is(n.a.device.drops['inside-malformed'], 1);
    t.is(n.a.device.drops['inside-ipv6'], 1);
    t.is(n.a.device.drops['no-route'], 1);
    n.pump();
    t.deepEqual(n.inbox.b.slice(1), [ok, ok]);
  });

  test(`${aeadName}: batched receive of random and mutated datagrams: counted, never thrown`, (t) => {
    const n = pair({ a: aead, b: aead });
    n.sendBatch('a', [ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('hs'))]);
    n.pump();
    n.sendBatch('a', payloads(50, 'm').map((p) => ipv4Packet('100.64.0.1', '100.64.0.2', p)));
    const genuine = n.wire.splice(0).map((w) => w.bytes);
    const before = n.inbox.b.length;
    let rnd = 12345;
    const r = (m: number) => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) % m);
    const junk: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const base = Buffer.from(genuine[r(genuine.length)]);
      const kind = r(3);
      if (kind === 0) base[16 + r(base.length - 16)] ^= 1 + r(255); // flip a ciphertext/tag byte
      else if (kind === 1) base.writeUInt32LE(r(2 ** 31), 8); // other counter
      else base.writeUInt32LE(r(2 ** 31), 4); // other receiver
      junk.push(kind === 2 && r(2) === 0 ? base.subarray(0, r(base.length)) : base);
    }
    n.b.device.readOutsidePackets(slab(junk, 64, 1), EndpointKind.Relay);
    t.is(n.inbox.b.length, before, 'nothing forged is delivered');
    // The genuine messages still open afterwards: no forged one moved the window.
    n.wire.push(...genuine.map((bytes) => ({ from: 'a' as const, bytes })));
    n.pump();
    t.is(n.inbox.b.length, before + 50);
  });
}
