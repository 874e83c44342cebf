/**
 * Real loopback UDP through the native addon: batches, content, source addresses,
 * truncation counting, error codes.
 */
import test from 'ava';
import { type DatagramBatch } from '../../../common/packet-io';
import { parseAddr } from '../../../common/ipv4';
import { nativeAvailable, openUdpSocket, type NativeIoError, type NativeUdpSocket } from '../../../native-bindings';

const LOOP = parseAddr('127.0.0.1');
const available = nativeAvailable();
const t = available ? test : test.skip;
if (!available) console.log('native addon not built (npm run install): skipping native UDP tests');

interface Got { len: number; addr: number; port: number; bytes: Buffer; offset: number }

/** Collects datagrams (copied: batch views are reused) until `n` arrived or timeout. */
function collect(sock: NativeUdpSocket, n: number, ms = 3000): Promise<{ got: Got[]; batches: number[] }> {
  return new Promise((resolve, reject) => {
    const got: Got[] = [];
    const batches: number[] = [];
    const timer = setTimeout(() => reject(new Error(`timeout: got ${got.length}/${n}`)), ms);
    sock.onReceive((b: DatagramBatch) => {
      batches.push(b.count);
      for (let i = 0; i < b.count; i++) {
        const off = b.offsets[i]!;
        got.push({
          len: b.lengths[i]!, addr: b.addrs[i]!, port: b.ports[i]!, offset: off,
          bytes: Buffer.from(b.data.subarray(off, off + b.lengths[i]!)),
        });
      }
      if (got.length >= n) {
        clearTimeout(timer);
        resolve({ got, batches });
      }
    });
  });
}

/** Datagram i: u32 index, then a byte pattern derived from i, `size` bytes total. */
function datagram(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let j = 0; j < size; j++) b[j] = (i * 31 + j * 7) & 0xff;
  if (size >= 4) b.writeUInt32BE(i, 0);
  return b;
}

t('300 datagrams of varied sizes arrive intact with source address and port', async (tt) => {
  const rx = openUdpSocket({ host: '127.0.0.1', port: 0, batchSize: 64 });
  const tx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  tt.teardown(() => { rx.close(); tx.close(); });
  tt.true(rx.localAddress.port > 0);
  tt.is(rx.localAddress.ip, '127.0.0.1');

  const N = 300;
  const sizes = Array.from({ length: N }, (_, i) => 4 + ((i * 613) % (rx.slotSize - rx.headroom - 4 + 1)));
  const done = collect(rx, N);
  // Send from a non-zero offset inside a bigger buffer, flushing in uneven chunks.
  for (let i = 0; i < N; i++) {
    const d = datagram(i, sizes[i]!);
    const big = Buffer.concat([Buffer.alloc(5, 0xee), d, Buffer.alloc(3, 0xee)]);
    tx.send(big, 5, d.length, LOOP, rx.localAddress.port);
    if (i % 97 === 0) tx.flush();
  }
  tx.flush();
  const { got, batches } = await done;

  tt.is(got.length, N);
  tt.true(batches.every((c) => c >= 1 && c <= 64), `batches ${batches}`);
  tt.true(batches.length < N, 'received in batches, not one call per datagram');
  for (let i = 0; i < N; i++) {
    const g = got[i]!; // one sender over loopback: order is preserved
    tt.is(g.len, sizes[i]!);
    tt.is(g.addr, LOOP);
    tt.is(g.port, tx.localAddress.port);
    tt.true(g.bytes.equals(datagram(i, sizes[i]!)), `content of datagram ${i}`);
    tt.is((g.offset - rx.headroom) % rx.slotSize, 0, 'offset = slot start + headroom');
  }
  tt.is(tx.stats.txPackets, N);
  tt.is(tx.stats.txDrops, 0);
  tt.is(rx.stats.rxPackets, N);
  tt.is(rx.stats.rxBatches, batches.length);
});

t('two senders are told apart by source port; send() auto-flushes a full tx slab', async (tt) => {
  const rx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  const a = openUdpSocket({ host: '127.0.0.1', port: 0, batchSize: 8 });
  const b = openUdpSocket({ host: '127.0.0.1', port: 0, batchSize: 8 });
  tt.teardown(() => { rx.close(); a.close(); b.close(); });
  const done = collect(rx, 40);
  for (let i = 0; i < 20; i++) {
    a.send(Buffer.from(`a${i}`), 0, `a${i}`.length, LOOP, rx.localAddress.port);
    b.send(Buffer.from(`b${i}`), 0, `b${i}`.length, LOOP, rx.localAddress.port);
  }
  a.flush();
  b.flush();
  const { got } = await done;
  const fromA = got.filter((g) => g.port === a.localAddress.port).map((g) => g.bytes.toString());
  const fromB = got.filter((g) => g.port === b.localAddress.port).map((g) => g.bytes.toString());
  tt.deepEqual(fromA, Array.from({ length: 20 }, (_, i) => `a${i}`));
  tt.deepEqual(fromB, Array.from({ length: 20 }, (_, i) => `b${i}`));
});

t('datagrams larger than a slot are counted as truncated and the rest of the batch survives', async (tt) => {
  const rx = openUdpSocket({ host: '127.0.0.1', port: 0, slotSize: 1024, headroom: 64 });
  const tx = openUdpSocket({ host: '127.0.0.1', port: 0, slotSize: 4096 });
  tt.teardown(() => { rx.close(); tx.close(); });
  const fits = rx.slotSize - rx.headroom; // 960
  const plan = [10, fits, fits + 1, 20, 3000, 30, fits + 500, 40];
  const expectKept = plan.filter((s) => s <= fits);
  const done = collect(rx, expectKept.length);
  plan.forEach((s, i) => tx.send(datagram(i, s), 0, s, LOOP, rx.localAddress.port));
  tx.flush();
  const { got } = await done;
  await new Promise((r) => setTimeout(r, 50));
  tt.deepEqual(got.map((g) => g.len), expectKept);
  for (const g of got) {
    const i = plan.indexOf(g.len);
    tt.true(g.bytes.equals(datagram(i, g.len)), `datagram ${i} moved down intact`);
  }
  tt.is(rx.stats.rxTruncated, plan.length - expectKept.length);
  tt.is(rx.stats.rxPackets, expectKept.length);
});

t('zero-length datagrams are delivered with length 0', async (tt) => {
  const rx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  const tx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  tt.teardown(() => { rx.close(); tx.close(); });
  const done = collect(rx, 2);
  tx.send(Buffer.alloc(0), 0, 0, LOOP, rx.localAddress.port);
  tx.send(Buffer.from('x'), 0, 1, LOOP, rx.localAddress.port);
  tx.flush();
  const { got } = await done;
  tt.deepEqual(got.map((g) => g.len), [0, 1]);
});

t('bad host, unassigned host, port in use and bad options fail with a code', (tt) => {
  tt.throws(() => openUdpSocket({ host: 'not-an-ip', port: 0 }), { code: 'EINVAL', name: 'InvalidOptionError' });
  tt.throws(() => openUdpSocket({ host: '127.0.0.1', port: 70000 }), { code: 'EINVAL' });
  tt.throws(() => openUdpSocket({ host: '127.0.0.1', port: 0, batchSize: 0 }), { code: 'EINVAL' });
  tt.throws(() => openUdpSocket({ host: '127.0.0.1', port: 0, headroom: 4096, slotSize: 2048 }), { code: 'EINVAL' });
  // 192.0.2.1 (TEST-NET-1) is on no interface here.
  const e = tt.throws(() => openUdpSocket({ host: '192.0.2.1', port: 0 }), { code: 'EADDRNOTAVAIL', name: 'NativeIoError' });
  tt.is((e as NativeIoError | undefined)?.syscall, 'bind');
  const a = openUdpSocket({ host: '127.0.0.1', port: 0 });
  tt.teardown(() => a.close());
  tt.throws(() => openUdpSocket({ host: '127.0.0.1', port: a.localAddress.port }), { code: 'EADDRINUSE' });
});

t('reusePort lets two sockets share a port', (tt) => {
  const a = openUdpSocket({ host: '127.0.0.1', port: 0, reusePort: true });
  const b = openUdpSocket({ host: '127.0.0.1', port: a.localAddress.port, reusePort: true });
  tt.teardown(() => { a.close(); b.close(); });
  tt.is(b.localAddress.port, a.localAddress.port);
});

t('oversize sends and sends after close are counted, never thrown', (tt) => {
  const s = openUdpSocket({ host: '127.0.0.1', port: 0, slotSize: 512 });
  s.send(Buffer.alloc(513), 0, 513, LOOP, 9);
  tt.is(s.stats.txDrops, 1);
  s.close();
  s.close(); // idempotent
  tt.notThrows(() => s.send(Buffer.alloc(10), 0, 10, LOOP, 9));
  tt.notThrows(() => s.flush());
  tt.is(s.stats.txDrops, 2);
});

t('runs of equal-size datagrams to one receiver (sent with UDP GSO) arrive as the same datagrams, in order', async (tt) => {
  const rxA = openUdpSocket({ host: '127.0.0.1', port: 0 });
  const rxB = openUdpSocket({ host: '127.0.0.1', port: 0 });
  const tx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  tt.teardown(() => { rxA.close(); rxB.close(); tx.close(); });
  // Per receiver: runs of 1400-byte datagrams, a shorter one ending a run, a zero-length one,
  // and the two destinations interleaved in blocks so runs break on the address too.
  const plan: { to: 'A' | 'B'; size: number }[] = [];
  for (let block = 0; block < 6; block++) {
    const to = block % 2 === 0 ? 'A' : 'B';
    for (let k = 0; k < 70; k++) plan.push({ to, size: 1400 });
    plan.push({ to, size: 100 + block }, { to, size: 1400 }, { to, size: 0 }, { to, size: 1400 });
  }
  const want = { A: plan.filter((p) => p.to === 'A'), B: plan.filter((p) => p.to === 'B') };
  const doneA = collect(rxA, want.A.length, 5000);
  const doneB = collect(rxB, want.B.length, 5000);
  plan.forEach((p, i) => {
    const rx = p.to === 'A' ? rxA : rxB;
    tx.send(datagram(i, p.size), 0, p.size, LOOP, rx.localAddress.port);
    if (i % 128 === 127) tx.flush();
  });
  tx.flush();
  const [a, b] = await Promise.all([doneA, doneB]);
  let i = 0;
  const expected = { A: [] as Buffer[], B: [] as Buffer[] };
  for (const p of plan) expected[p.to].push(datagram(i++, p.size));
  tt.deepEqual(a.got.map((g) => g.bytes), expected.A);
  tt.deepEqual(b.got.map((g) => g.bytes), expected.B);
  tt.is(tx.stats.txPackets, plan.length);
  tt.is(tx.stats.txDrops, 0);
});

t('a train larger than the receive batch (UDP GRO) is delivered across several batches, nothing lost', async (tt) => {
  const rx = openUdpSocket({ host: '127.0.0.1', port: 0, batchSize: 16 });
  const tx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  tt.teardown(() => { rx.close(); tx.close(); });
  const N = 200;
  const done = collect(rx, N, 5000);
  for (let i = 0; i < N; i++) tx.send(datagram(i, 1000), 0, 1000, LOOP, rx.localAddress.port);
  tx.flush();
  const { got, batches } = await done;
  tt.deepEqual(got.map((g) => g.bytes), Array.from({ length: N }, (_, i) => datagram(i, 1000)));
  tt.true(batches.every((c) => c <= 16));
  tt.is(rx.stats.rxPackets, N);
});

t('sendInPlace sends from the caller\'s buffer at flush, in order with copied sends; a bad range is counted', async (tt) => {
  const rx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  const tx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  tt.teardown(() => { rx.close(); tx.close(); });
  const slabA = Buffer.concat(Array.from({ length: 10 }, (_, i) => datagram(i, 500)));
  const slabB = Buffer.concat(Array.from({ length: 10 }, (_, i) => datagram(100 + i, 300)));
  const expected: Buffer[] = [];
  const done = collect(rx, 24, 5000);
  const port = rx.localAddress.port;
  for (let i = 0; i < 10; i++) {
    tx.sendInPlace(slabA.subarray(0), i * 500, 500, LOOP, port); // a view: same memory, another object
    expected.push(datagram(i, 500));
    if (i % 3 === 0) {
      tx.send(datagram(50 + i, 200), 0, 200, LOOP, port);
      expected.push(datagram(50 + i, 200));
    }
  }
  for (let i = 0; i < 10; i++) {
    tx.sendInPlace(slabB, i * 300, 300, LOOP, port); // another buffer: what is pending goes first
    expected.push(datagram(100 + i, 300));
  }
  tx.sendInPlace(slabB, slabB.length - 10, 20, LOOP, port); // past the end: counted, not sent
  tx.flush();
  slabB.fill(0); // after the flush the bytes are no longer needed
  const { got } = await done;
  tt.deepEqual(got.map((g) => g.bytes), expected);
  tt.is(tx.stats.txDrops, 1);
});
