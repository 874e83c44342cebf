/**
 * One DatagramSocket suite (common/packet-io.ts), run against every implementation: the
 * memory fake (test/harness/memory-bind.ts) the in-process testnet stands on, node:dgram
 * (native-bindings/dgram-socket.ts) and, when the addon is built, the native batched socket. The
 * fake is only a fair stand-in if it keeps the same contract as the real sockets.
 */
import test from 'ava';
import { type DatagramBatch, type DatagramSocket } from '../../common/packet-io';
import { parseAddr } from '../../common/ipv4';
import { DgramSocket, nativeAvailable, openUdpSocket } from '../../native-bindings';
import { MemoryNetwork } from '../harness/memory-bind';
import { waitFor } from '../harness/testnet';

interface Impl {
  name: string;
  /** `n` sockets on 127.0.0.1 that can reach each other at their localAddress. */
  open(n: number): Promise<DatagramSocket[]>;
}

const impls: Impl[] = [
  {
    name: 'memory',
    async open(n) {
      const net = new MemoryNetwork();
      return Array.from({ length: n }, () => net.bind('127.0.0.1'));
    },
  },
  {
    name: 'dgram',
    open: (n) => Promise.all(Array.from({ length: n }, () => DgramSocket.open({ host: '127.0.0.1' }))),
  },
];
if (nativeAvailable()) {
  impls.push({ name: 'native', open: async (n) => Array.from({ length: n }, () => openUdpSocket({ host: '127.0.0.1', port: 0 })) });
}

interface Got { bytes: Buffer; addr: number; port: number }

/** Collect every datagram `s` receives, copied out of the batch (views die with the call). */
function collect(s: DatagramSocket): Got[] {
  const got: Got[] = [];
  s.onReceive((b: DatagramBatch) => {
    for (let i = 0; i < b.count; i++) {
      got.push({ bytes: Buffer.from(b.data.subarray(b.offsets[i], b.offsets[i] + b.lengths[i])), addr: b.addrs[i], port: b.ports[i] });
    }
  });
  return got;
}

const to = (s: DatagramSocket): [number, number] => [parseAddr(s.localAddress.ip), s.localAddress.port];

for (const impl of impls) {
  test(`${impl.name}: a flushed batch arrives in order, with the sender's address and port`, async (t) => {
    const [a, b] = await impl.open(2);
    t.teardown(() => { a.close(); b.close(); });
    t.is(a.localAddress.ip, '127.0.0.1');
    t.true(a.localAddress.port > 0);
    const got = collect(b);
    const sent = Array.from({ length: 40 }, (_, i) => Buffer.alloc(1 + i * 31, i));
    for (const p of sent) a.send(p, 0, p.length, ...to(b));
    a.flush();
    await waitFor(() => got.length === sent.length, { what: 'all datagrams' });
    t.deepEqual(got.map((g) => g.bytes), sent);
    t.true(got.every((g) => g.addr === parseAddr('127.0.0.1') && g.port === a.localAddress.port));
  });

  test(`${impl.name}: send copies before it returns; a slice of a larger buffer is sent exactly`, async (t) => {
    const [a, b] = await impl.open(2);
    t.teardown(() => { a.close(); b.close(); });
    const got = collect(b);
    const buf = Buffer.from('xxhello worldxx');
    a.send(buf, 2, 11, ...to(b));
    buf.fill(0);
    a.flush();
    await waitFor(() => got.length === 1, { what: 'the datagram' });
    t.deepEqual(got[0].bytes, Buffer.from('hello world'));
  });

  test(`${impl.name}: sendInPlace delivers the bytes as they are at flush`, async (t) => {
    const [a, b] = await impl.open(2);
    t.teardown(() => { a.close(); b.close(); });
    const got = collect(b);
    const slab = Buffer.alloc(64, 0xaa);
    slab.write('in place', 10);
    a.sendInPlace(slab, 10, 8, ...to(b));
    a.flush();
    await waitFor(() => got.length === 1, { what: 'the datagram' });
    t.deepEqual(got[0].bytes, Buffer.from('in place'));
  });

  test(`${impl.name}: replies reach the sender; a closed socket hears nothing and later calls are harmless`, async (t) => {
    const [a, b, c] = await impl.open(3);
    t.teardown(() => { a.close(); b.close(); c.close(); });
    const atA = collect(a);
    const atC = collect(c);
    // b echoes every datagram to its sender, and copies it to a.
    b.onReceive((x) => {
      for (let i = 0; i < x.count; i++) {
        b.send(x.data, x.offsets[i], x.lengths[i], x.addrs[i], x.ports[i]);
        b.send(x.data, x.offsets[i], x.lengths[i], ...to(a));
      }
      b.flush();
    });
    a.send(Buffer.from('echo me'), 0, 7, ...to(b));
    a.flush();
    await waitFor(() => atA.length === 2, { what: 'the echo and the copy' });
    t.deepEqual(atA.map((g) => g.bytes.toString()), ['echo me', 'echo me']);
    t.is(atA[0].port, b.localAddress.port);
    a.close();
    t.notThrows(() => {
      a.send(Buffer.from('late'), 0, 4, ...to(b));
      a.flush();
      a.close();
    });
    // Positive control: c's datagram is echoed to c while its copy to a goes nowhere.
    c.send(Buffer.from('still there?'), 0, 12, ...to(b));
    c.flush();
    await waitFor(() => atC.length === 1, { what: 'c\'s echo' });
    t.is(atA.length, 2, 'a, closed, received nothing more');
  });
}
