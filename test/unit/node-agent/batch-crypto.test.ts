/**
 * The two BatchAead implementations behind one interface: node:crypto's (nodeCryptoAead)
 * against the protocol's reference Keypair (protocol/transport.ts), and against the native
 * addon's byte for byte when it is built.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { Keypair, paddedLength, writeTransportHeader } from '../../../protocol/transport';
import { CryptoBatch, nodeCryptoAead, type BatchAead } from '../../../node-agent/batch-crypto';
import { aead as nativeAead, nativeAvailable } from '../../../native-bindings';
import type { Peer } from '../../../node-agent/peer';

const SLOT = 2048;
const HEAD = 16;
const peer = {} as Peer;

function keypairs(): [Keypair, Keypair] {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  return [
    new Keypair({ sendKey: k1, recvKey: k2, localIndex: 1, remoteIndex: 2, isInitiator: true, createdMs: 0 }),
    new Keypair({ sendKey: k2, recvKey: k1, localIndex: 2, remoteIndex: 1, isInitiator: false, createdMs: 0 }),
  ];
}

/** Seal `lens.length` packets (two keypairs alternating, counters from 2^32 - 2) with `aead`; the transport messages. */
function sealWith(aead: BatchAead, senders: Keypair[], lens: number[], fill: number): Buffer[] {
  const data = Buffer.alloc(lens.length * SLOT);
  const b = new CryptoBatch(lens.length);
  lens.forEach((len, i) => {
    const kp = senders[i % senders.length];
    const off = i * SLOT + HEAD;
    const counter = 2 ** 32 - 2 + i;
    data.fill(fill + i, off, off + len);
    writeTransportHeader(data, off - HEAD, kp.remoteIndex, counter);
    b.add(data, kp, kp.sendKey, peer, off, paddedLength(len), counter);
  });
  const sealed = aead.sealBatch(b, b.keys, b.keyIndex, b.counters, b.ok);
  if (sealed !== lens.length) throw new Error(`sealed ${sealed} of ${lens.length}`);
  return lens.map((len, i) => Buffer.from(data.subarray(i * SLOT, i * SLOT + HEAD + paddedLength(len) + 16)));
}

const lens = [0, 1, 15, 16, 17, 100, 1420];

test('node:crypto: sealed messages open with the reference Keypair; its own open agrees and rejects a flipped bit', (t) => {
  const [a1, b1] = keypairs();
  const [a2, b2] = keypairs();
  const msgs = sealWith(nodeCryptoAead, [a1, a2], lens, 7);
  msgs.forEach((m, i) => {
    const rx = i % 2 === 0 ? b1 : b2;
    const out = Buffer.alloc(SLOT);
    t.is(rx.open(m, 0, m.length, out, 0), paddedLength(lens[i]), `message ${i}`);
    t.true(out.subarray(0, lens[i]).every((x) => x === 7 + i));
  });
  // Open in place with the batch, one message flipped.
  const data = Buffer.concat(msgs);
  const b = new CryptoBatch(msgs.length);
  let off = 0;
  msgs.forEach((m, i) => {
    const rx = i % 2 === 0 ? b1 : b2;
    b.add(data, rx, rx.recvKey, peer, off + HEAD, m.length - HEAD, 2 ** 32 - 2 + i);
    off += m.length;
  });
  data[b.offsets[3] + 2] ^= 1;
  t.is(nodeCryptoAead.openBatch(b, b.keys, b.keyIndex, b.counters, b.ok), msgs.length - 1);
  t.deepEqual([...b.ok.subarray(0, msgs.length)], msgs.map((_, i) => (i === 3 ? 0 : 1)));
  t.true(data.subarray(b.offsets[5], b.offsets[5] + lens[5]).every((x) => x === 7 + 5), 'plaintext in place');
});

(nativeAvailable() ? test : test.skip)('node:crypto and native seal byte for byte alike', (t) => {
  const [a1] = keypairs();
  const [a2] = keypairs();
  const x = sealWith(nodeCryptoAead, [a1, a2], lens, 3);
  const y = sealWith(nativeAead, [a1, a2], lens, 3);
  t.deepEqual(x, y);
});
