import test from 'ava';
import { DgramSocket } from '../../native-bindings';
import type { DatagramBatch } from '../../common/packet-io';
import { LOOPBACK, until } from './relay-harness';

test('dgram socket: send copies, flush sends, batches of one with source address, batch object reused', async (t) => {
  const a = await DgramSocket.open({ host: '127.0.0.1' });
  const b = await DgramSocket.open({ host: '127.0.0.1' });
  t.teardown(() => { a.close(); b.close(); });
  const got: Buffer[] = [];
  const batches = new Set<DatagramBatch>();
  let from: [number, number] | undefined;
  b.onReceive((batch) => {
    t.is(batch.count, 1);
    batches.add(batch);
    from = [batch.addrs[0], batch.ports[0]];
    got.push(Buffer.from(batch.data.subarray(batch.offsets[0], batch.offsets[0] + batch.lengths[0])));
  });
  const buf = Buffer.from('xxhello-1yy');
  a.send(buf, 2, 7, LOOPBACK, b.localAddress.port);
  buf.write('HELLO-X', 2);
  a.send(buf, 2, 7, LOOPBACK, b.localAddress.port);
  await new Promise((r) => setTimeout(r, 50));
  t.is(got.length, 0, 'nothing leaves before flush');
  a.flush();
  await until(() => got.length === 2, 'two datagrams');
  t.deepEqual(got.map(String).sort(), ['HELLO-X', 'hello-1']);
  t.deepEqual(from, [LOOPBACK, a.localAddress.port]);
  t.is(batches.size, 1);
});

test('dgram socket: sendInPlace copies too (node:dgram sends after flush returns), so later changes to the buffer do not leak', async (t) => {
  const a = await DgramSocket.open({ host: '127.0.0.1' });
  const b = await DgramSocket.open({ host: '127.0.0.1' });
  t.teardown(() => { a.close(); b.close(); });
  const got: string[] = [];
  b.onReceive((batch) => got.push(batch.data.toString('latin1', batch.offsets[0], batch.offsets[0] + batch.lengths[0])));
  const buf = Buffer.from('..in-place..');
  a.sendInPlace(buf, 2, 8, LOOPBACK, b.localAddress.port);
  a.flush();
  buf.write('CHANGED!', 2); // the caller may reuse the bytes once flush() returned
  await until(() => got.length === 1, 'one datagram');
  t.deepEqual(got, ['in-place']);
});

test('dgram socket: bind errors reject with the errno code', async (t) => {
  const a = await DgramSocket.open({ host: '127.0.0.1' });
  t.teardown(() => a.close());
  await t.throwsAsync(DgramSocket.open({ host: '127.0.0.1', port: a.localAddress.port }), { code: 'EADDRINUSE' });
});
