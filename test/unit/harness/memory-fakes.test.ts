/**
 * The memory fakes themselves (test/harness/memory-tun.ts, memory-bind.ts): they are only
 * worth having if they are at least as strict as the real devices about the batch contract,
 * and if their network switches (down hosts, hooks, the VIP balancer) do what tests rely on.
 */
import test from 'ava';
import { type DatagramBatch, type PacketBatch } from '../../../common/packet-io';
import { parseAddr } from '../../../common/ipv4';
import { MemoryTun, POISON } from '../../harness/memory-tun';
import { MemoryNetwork, type MemoryDatagramSocket } from '../../harness/memory-bind';
import { icmpEcho } from '../../harness/packets';

const pkt = (n: number, fill = 0x45): Buffer => Buffer.alloc(n, fill);

test('memory TUN: a batch has the headroom, views die with the handler call', (t) => {
  const tun = new MemoryTun({ mtu: 1400, headroom: 24, tailroom: 32 });
  const p1 = icmpEcho('100.64.0.1', '100.64.0.2', { seq: 1 });
  const p2 = icmpEcho('100.64.0.1', '100.64.0.3', { seq: 2 });
  let kept: Buffer | undefined;
  let seen: PacketBatch | undefined;
  tun.onReceive((b) => {
    seen = { ...b, offsets: b.offsets.slice(0, b.count), lengths: b.lengths.slice(0, b.count) };
    t.is(b.count, 2);
    for (let i = 0; i < b.count; i++) t.true(b.offsets[i] >= 24 + (i === 0 ? 0 : b.offsets[i - 1] + b.lengths[i - 1] + 32));
    t.deepEqual(b.data.subarray(b.offsets[0], b.offsets[0] + b.lengths[0]), p1);
    t.deepEqual(b.data.subarray(b.offsets[1], b.offsets[1] + b.lengths[1]), p2);
    kept = b.data.subarray(b.offsets[0], b.offsets[0] + b.lengths[0]);
  });
  tun.inject([p1, p2]);
  t.truthy(seen);
  t.true(kept!.every((x) => x === POISON), 'a view kept past the handler reads poison');
  t.throws(() => tun.inject(pkt(1401)), { instanceOf: RangeError });
});

test('memory TUN: write copies now, writeInPlace copies at flush; unflushed in-place writes are violations', async (t) => {
  const tun = new MemoryTun({ mtu: 1400, headroom: 0 });
  const buf = pkt(40, 1);
  tun.write(buf, 0, 40);
  tun.writeInPlace(buf, 0, 40);
  buf.fill(2);
  t.deepEqual(tun.written(), [], 'nothing reaches the kernel before flush');
  tun.flush();
  t.deepEqual(tun.written(), [pkt(40, 1), pkt(40, 2)]);
  t.deepEqual(await tun.next(), pkt(40, 1));
  t.deepEqual(await tun.next({ match: (p) => p[0] === 2 }), pkt(40, 2));
  await t.throwsAsync(tun.next({ timeoutMs: 20 }), { message: /no packet written within 20 ms/ });

  // An engine that echoes the packet in place but flushes only after returning.
  tun.onReceive((b) => tun.writeInPlace(b.data, b.offsets[0], b.lengths[0]));
  tun.inject(pkt(30, 7));
  t.is(tun.violations, 1, 'the batch ended with an in-place write still unflushed');
  tun.flush();
  t.is(tun.violations, 2, 'and it was flushed after its memory was reused');
  t.true(tun.written().at(-1)!.every((x) => x === POISON), 'what it flushed was poison');

  // Flushing inside the handler is correct.
  tun.onReceive((b) => {
    tun.writeInPlace(b.data, b.offsets[0], b.lengths[0]);
    tun.flush();
  });
  tun.inject(pkt(30, 8));
  t.is(tun.violations, 2);
  t.deepEqual(tun.written().at(-1), pkt(30, 8));
  t.throws(() => {
    tun.onReceive(() => tun.inject(pkt(20)));
    tun.inject(pkt(20));
  }, { message: /inside the receive handler/ });
});

function pair(net: MemoryNetwork): { a: MemoryDatagramSocket; b: MemoryDatagramSocket; got: { from: string; bytes: Buffer; batch: number }[] } {
  const a = net.bind('10.0.0.1', 1000);
  const b = net.bind('10.0.0.2', 2000);
  const got: { from: string; bytes: Buffer; batch: number }[] = [];
  let batches = 0;
  b.onReceive((x: DatagramBatch) => {
    batches++;
    for (let i = 0; i < x.count; i++) {
      got.push({ from: `${x.addrs[i] >>> 24}.${(x.addrs[i] >>> 16) & 255}.${(x.addrs[i] >>> 8) & 255}.${x.addrs[i] & 255}:${x.ports[i]}`, bytes: Buffer.from(x.data.subarray(x.offsets[i], x.offsets[i] + x.lengths[i])), batch: batches });
    }
  });
  return { a, b, got };
}

test('memory network: asynchronous delivery, one batch per flush, in-place bytes read at flush', async (t) => {
  const net = new MemoryNetwork();
  const { a, got } = pair(net);
  const B = parseAddr('10.0.0.2');
  const buf = pkt(10, 1);
  a.send(buf, 0, 10, B, 2000);
  a.sendInPlace(buf, 0, 10, B, 2000);
  buf.fill(3);
  a.send(pkt(5, 9), 0, 5, B, 2000);
  a.flush();
  t.deepEqual(got, [], 'never delivered inside the sender\'s flush');
  await net.idle();
  t.deepEqual(got.map((g) => [g.from, g.bytes, g.batch]), [
    ['10.0.0.1:1000', pkt(10, 1), 1], ['10.0.0.1:1000', pkt(10, 3), 1], ['10.0.0.1:1000', pkt(5, 9), 1],
  ]);
  a.send(pkt(4), 0, 4, B, 2000);
  a.flush();
  await net.idle();
  t.is(got.at(-1)!.batch, 2);
  t.is(net.stats.delivered, 4);
  t.throws(() => net.bind('10.0.0.1', 1000), { message: /address in use/ });
  t.not(net.bind('10.0.0.1').localAddress.port, 1000, 'port 0 picks a free port');
});

test('memory network: a down host neither receives nor sends; hooks drop and delay', async (t) => {
  const net = new MemoryNetwork();
  const { a, b, got } = pair(net);
  const back: Buffer[] = [];
  a.onReceive((x) => back.push(Buffer.from(x.data.subarray(x.offsets[0], x.offsets[0] + x.lengths[0]))));
  const B = parseAddr('10.0.0.2');
  const A = parseAddr('10.0.0.1');
  net.setHostDown('10.0.0.2');
  a.send(pkt(3), 0, 3, B, 2000);
  a.flush();
  b.send(pkt(3), 0, 3, A, 1000);
  b.flush();
  await net.idle();
  t.deepEqual([got.length, back.length], [0, 0]);
  t.is(net.stats.dropped['host-down'], 2);
  // In flight when the host dies: vanishes too.
  net.setHostDown('10.0.0.2', false);
  a.send(pkt(3), 0, 3, B, 2000);
  a.flush();
  net.setHostDown('10.0.0.2');
  await net.idle();
  t.is(got.length, 0);
  net.setHostDown('10.0.0.2', false);

  net.dropIf = (d) => d.bytes[0] === 0xdd;
  net.delayMs = (d) => (d.bytes[0] === 0x01 ? 30 : 0);
  a.send(pkt(3, 0xdd), 0, 3, B, 2000);
  a.send(pkt(3, 0x01), 0, 3, B, 2000);
  a.send(pkt(3, 0x02), 0, 3, B, 2000);
  a.flush();
  await net.idle();
  t.deepEqual(got.map((g) => g.bytes[0]), [0x02, 0x01], 'the delayed datagram arrives after the one behind it');
  t.is(net.stats.dropped.hook, 1);
  b.close();
  a.send(pkt(3, 0x02), 0, 3, B, 2000);
  a.flush();
  await net.idle();
  t.is(net.stats.dropped['no-socket'], 1);
});

test('memory network: the VIP balancer places new flows round-robin, pins them, answers from the VIP', async (t) => {
  const net = new MemoryNetwork();
  const r1 = net.bind('10.90.0.1', 7000);
  const r2 = net.bind('10.90.0.2', 7000);
  net.addBalancer({ ip: '10.90.0.100', port: 7000 }, [{ ip: '10.90.0.1', port: 7000 }, { ip: '10.90.0.2', port: 7000 }]);
  const hits: string[] = [];
  for (const [name, r] of [['r1', r1], ['r2', r2]] as const) {
    r.onReceive((x) => {
      for (let i = 0; i < x.count; i++) {
        hits.push(`${name}<${x.ports[i]}`);
        r.send(Buffer.from('pong'), 0, 4, x.addrs[i], x.ports[i]);
      }
      r.flush();
    });
  }
  const VIP = parseAddr('10.90.0.100');
  const replies: string[] = [];
  const client = (port: number): MemoryDatagramSocket => {
    const s = net.bind('10.1.0.1', port);
    s.onReceive((x) => replies.push(`${port}<${x.addrs[0] === VIP ? 'vip' : 'backend'}:${x.ports[0]}`));
    return s;
  };
  const c1 = client(5001);
  const c2 = client(5002);
  const ping = async (s: MemoryDatagramSocket): Promise<void> => {
    s.send(Buffer.from('ping'), 0, 4, VIP, 7000);
    s.flush();
    await net.idle();
  };
  await ping(c1);
  await ping(c2);
  await ping(c1);
  t.deepEqual(hits, ['r1<5001', 'r2<5002', 'r1<5001'], 'round-robin per new flow; a flow stays where it started');
  t.deepEqual(replies, ['5001<vip:7000', '5002<vip:7000', '5001<vip:7000'], 'replies come from the VIP');
  t.is(net.backendOf({ ip: '10.1.0.1', port: 5001 }, { ip: '10.90.0.100', port: 7000 }), '10.90.0.1:7000');
  // r1 dies: its pinned flow blackholes (stale conntrack); a new source port reaches r2.
  net.setHostDown('10.90.0.1');
  await ping(c1);
  t.is(hits.length, 3);
  await ping(client(5003));
  t.deepEqual(hits.at(-1), 'r2<5003');
  net.setHostDown('10.90.0.2');
  await ping(client(5004));
  t.is(net.stats.dropped['no-backend'], 1);
});
