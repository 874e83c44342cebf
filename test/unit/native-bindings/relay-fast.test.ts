/**
 * The relay fast path's C table (src/relay_fast.c) through the binding, on real loopback UDP:
 * a "relay" socket with the table, "members" as plain native sockets. What the table knows is
 * forwarded in C (rewritten, counted, JS not called); everything else reaches the socket's
 * receive handler unchanged, in order. Every refusal sits next to a positive control.
 */
import test, { type ExecutionContext } from 'ava';
import { type DatagramBatch } from '../../../common/packet-io';
import { parseAddr } from '../../../common/ipv4';
import {
  FAST_ALLOW, FAST_DENY, FAST_POLICY_LOADING, FAST_POLICY_OFF, FAST_POLICY_ON, nativeAvailable, openUdpSocket,
  type NativeUdpSocket, type RelayFastTable,
} from '../../../native-bindings';

const LOOP = parseAddr('127.0.0.1');
const DATA = 0x12;
const MIN_PAYLOAD = 32;
const available = nativeAvailable();
const t = available ? test : test.skip;
if (!available) console.log('native addon not built (npm run install): skipping relay fast path tests');

const VIP = { a: parseAddr('100.64.0.1'), b: parseAddr('100.64.0.2'), c: parseAddr('100.64.0.3') };

interface Got { bytes: Buffer; addr: number; port: number }

class Peer {
  readonly got: Got[] = [];
  constructor(readonly s: NativeUdpSocket) {
    s.onReceive((b) => {
      for (let i = 0; i < b.count; i++) {
        this.got.push({ bytes: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)), addr: b.addrs[i]!, port: b.ports[i]! });
      }
    });
  }

  get port(): number {
    return this.s.localAddress.port;
  }

  send(to: number, ...frames: Buffer[]): void {
    for (const f of frames) this.s.send(f, 0, f.length, LOOP, to);
    this.s.flush();
  }
}

/** A DATA frame to `dst` carrying a WireGuard-looking payload (type 4) marked with `tag`. */
function data(dst: number, tag: number, len = 64): Buffer {
  const b = Buffer.alloc(len, tag);
  b[0] = DATA; b[1] = 0; b[2] = 0; b[3] = 0;
  b.writeUInt32BE(dst, 4);
  b[8] = 4; b[9] = 0; b[10] = 0; b[11] = 0;
  return b;
}

interface Setup {
  relay: NativeUdpSocket;
  table: RelayFastTable;
  /** what reached the relay's JS handler */
  js: Got[];
  jsBatches: number;
  peers: Record<'a' | 'b' | 'c', Peer>;
}

function setup(tt: ExecutionContext): Setup {
  const relay = openUdpSocket({ host: '127.0.0.1', port: 0 });
  const peers = { a: new Peer(openUdpSocket({ host: '127.0.0.1', port: 0 })), b: new Peer(openUdpSocket({ host: '127.0.0.1', port: 0 })), c: new Peer(openUdpSocket({ host: '127.0.0.1', port: 0 })) };
  tt.teardown(() => { relay.close(); for (const p of Object.values(peers)) p.s.close(); });
  const table = relay.relayFastPath({ dataType: DATA, minPayload: MIN_PAYLOAD });
  const s: Setup = { relay, table, js: [], jsBatches: 0, peers };
  relay.onReceive((b: DatagramBatch) => {
    s.jsBatches++;
    for (let i = 0; i < b.count; i++) {
      s.js.push({ bytes: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)), addr: b.addrs[i]!, port: b.ports[i]! });
    }
  });
  table.enable(true);
  table.policy(FAST_POLICY_OFF);
  return s;
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Long enough for a datagram on loopback that is NOT expected to arrive. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));

t('bound source to bound destination: forwarded in C with the sender\'s vip; JS is not called', async (tt) => {
  const s = setup(tt);
  const { a, b } = s.peers;
  s.table.set(VIP.a, LOOP, a.port, 0);
  s.table.set(VIP.b, LOOP, b.port, 0);
  tt.is(s.table.size, 2);
  const f = data(VIP.b, 7, 200);
  a.send(s.relay.localAddress.port, f, data(VIP.b, 8, 200));
  await until(() => b.got.length === 2, 'two frames at b');
  tt.is(b.got[0]!.bytes.readUInt32BE(4), VIP.a, 'bytes 4-7: the sender\'s vip');
  tt.deepEqual(b.got[0]!.bytes.subarray(8), f.subarray(8), 'payload untouched');
  tt.is(b.got[0]!.port, s.relay.localAddress.port, 'from the relay socket');
  tt.is(b.got[1]!.bytes[20], 8, 'in order');
  tt.is(s.jsBatches, 0, 'JS never called');
  tt.deepEqual({ ...s.table.stats, batchesInC: 0 }, { forwarded: 2, bytes: 400, policyDrops: 0, passed: 0, batchesInC: 0 });
  tt.true(s.table.stats.batchesInC >= 1);
  const seen: number[] = [];
  s.table.drainSeen((v) => seen.push(v));
  tt.deepEqual(seen, [VIP.a], 'the sender is marked seen (the destination is not)');
  s.table.drainSeen((v) => seen.push(v));
  tt.deepEqual(seen, [VIP.a], 'marks are cleared by a drain');
});

t('a spoofed or unbound source 4-tuple is not forwarded: it reaches JS unchanged', async (tt) => {
  const s = setup(tt);
  const { a, b, c } = s.peers;
  s.table.set(VIP.a, LOOP, a.port, 0);
  s.table.set(VIP.b, LOOP, b.port, 0);
  // c claims nothing: it just sends DATA for b (as if it were a, from another port).
  const spoof = data(VIP.b, 9);
  c.send(s.relay.localAddress.port, spoof);
  a.send(s.relay.localAddress.port, data(VIP.b, 10)); // positive control, same setup
  await until(() => s.js.length === 1 && b.got.length === 1, 'the spoof at JS, the control at b');
  await settle();
  tt.is(b.got.length, 1, 'only the control reached b');
  tt.is(b.got[0]!.bytes[20], 10);
  tt.deepEqual(s.js[0]!.bytes, spoof, 'unchanged: destination vip still in bytes 4-7');
  tt.deepEqual([s.js[0]!.addr, s.js[0]!.port], [LOOP, c.port]);
  tt.is(s.table.stats.forwarded, 1);
  tt.is(s.table.stats.passed, 1);
});

t('everything but valid local DATA goes to JS, in order, with its own offsets', async (tt) => {
  const s = setup(tt);
  const { a, b } = s.peers;
  s.table.set(VIP.a, LOOP, a.port, 0);
  s.table.set(VIP.b, LOOP, b.port, 0);
  const control = Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 1]);
  const badWg = data(VIP.b, 2); badWg[9] = 1;                       // not three zero bytes
  const bareWg = data(VIP.b, 3); bareWg[0] = 4;                     // not a relay frame
  const short = data(VIP.b, 4).subarray(0, 8 + MIN_PAYLOAD - 1);    // below a keepalive
  const remote = data(parseAddr('100.64.9.9'), 5);                   // no session here: mesh / UNREACHABLE
  const frames = [data(VIP.b, 1), control, badWg, data(VIP.b, 11), bareWg, short, remote, data(VIP.b, 12)];
  a.send(s.relay.localAddress.port, ...frames);
  await until(() => b.got.length === 3 && s.js.length === 5, 'three forwarded, five passed');
  tt.deepEqual(s.js.map((g) => g.bytes), [control, badWg, bareWg, short, remote], 'passed unchanged and in order');
  tt.deepEqual(b.got.map((g) => g.bytes[20]), [1, 11, 12]);
});

t('remove and rebind: the mirror follows SessionTable semantics', async (tt) => {
  const s = setup(tt);
  const { a, b, c } = s.peers;
  const relayPort = s.relay.localAddress.port;
  s.table.set(VIP.a, LOOP, a.port, 0);
  s.table.set(VIP.b, LOOP, b.port, 0);
  tt.true(s.table.delete(VIP.b));
  tt.false(s.table.delete(VIP.b), 'gone already');
  a.send(relayPort, data(VIP.b, 1));
  await until(() => s.js.length === 1, 'DATA for a removed member at JS');
  tt.is(b.got.length, 0);
  // b rebinds from c's socket (a NAT rebinding): frames for b go there, b's old tuple is unbound.
  s.table.set(VIP.b, LOOP, b.port, 0);
  s.table.set(VIP.b, LOOP, c.port, 0);
  tt.is(s.table.size, 2);
  a.send(relayPort, data(VIP.b, 2));
  await until(() => c.got.length === 1, 'at the new tuple');
  b.send(relayPort, data(VIP.a, 3));                 // old tuple: unbound now
  c.send(relayPort, data(VIP.a, 4));                 // new tuple: bound as b
  await until(() => a.got.length === 1 && s.js.length === 2, 'new tuple forwarded, old tuple to JS');
  tt.is(a.got[0]!.bytes.readUInt32BE(4), VIP.b);
  tt.is(a.got[0]!.bytes[20], 4);
  tt.is(s.js[1]!.port, b.port);
  // Binding a tuple already used by another vip removes that other session.
  s.table.set(VIP.c, LOOP, c.port, 0);
  tt.is(s.table.size, 2, 'b (on c\'s tuple) replaced by c');
  a.send(relayPort, data(VIP.b, 5), data(VIP.c, 6));
  await until(() => s.js.length === 3 && c.got.length === 2, 'b unknown now, c forwarded');
  tt.is(c.got[1]!.bytes[20], 6);
  s.table.clear();
  tt.is(s.table.size, 0);
  a.send(relayPort, data(VIP.c, 7));
  await until(() => s.js.length === 4, 'after clear, at JS');
  tt.is(c.got.length, 2);
});

t('policy: a denied class pair is dropped and counted in C next to an allowed pair; unknown verdicts and loading go to JS', async (tt) => {
  const s = setup(tt);
  const { a, b, c } = s.peers;
  const relayPort = s.relay.localAddress.port;
  s.table.set(VIP.a, LOOP, a.port, 0);   // class 0
  s.table.set(VIP.b, LOOP, b.port, 1);   // class 1
  s.table.set(VIP.c, LOOP, c.port, 2);   // class 2
  s.table.policy(FAST_POLICY_ON);
  s.table.verdict(0, 1, FAST_ALLOW);
  s.table.verdict(2, 1, FAST_DENY);
  a.send(relayPort, data(VIP.b, 1));      // allowed
  c.send(relayPort, data(VIP.b, 2));      // denied
  b.send(relayPort, data(VIP.a, 3));      // (1,0) never decided: JS decides
  await until(() => b.got.length === 1 && s.table.stats.policyDrops === 1 && s.js.length === 1, 'allowed, denied, undecided');
  await settle();
  tt.deepEqual(b.got.map((g) => g.bytes[20]), [1], 'only the allowed pair reached b');
  tt.is(s.js[0]!.bytes[20], 3);
  tt.is(a.got.length, 0);
  const seen: number[] = [];
  s.table.drainSeen((v) => seen.push(v));
  tt.deepEqual(seen.sort(), [VIP.a, VIP.c].sort(), 'a refused sender was seen too (it is bound)');
  // A class the gate has not assigned yet (-1): JS.
  s.table.set(VIP.a, LOOP, a.port, -1);
  a.send(relayPort, data(VIP.b, 4));
  await until(() => s.js.length === 2, 'unclassified sender to JS');
  // A new policy: every verdict unknown again.
  s.table.set(VIP.a, LOOP, a.port, 0);
  s.table.policy(FAST_POLICY_ON);
  c.send(relayPort, data(VIP.b, 5));
  await until(() => s.js.length === 3, 'verdicts forgotten: to JS');
  tt.is(s.table.stats.policyDrops, 1);
  s.table.policy(FAST_POLICY_LOADING);
  s.table.verdict(0, 1, FAST_ALLOW);
  a.send(relayPort, data(VIP.b, 6));
  await until(() => s.js.length === 4, 'policy loading: to JS');
  s.table.policy(FAST_POLICY_OFF);
  c.send(relayPort, data(VIP.b, 7));
  await until(() => b.got.length === 2, 'no policy: any pair forwarded');
  tt.is(b.got[1]!.bytes[20], 7);
});

t('turned off: every frame reaches JS at the plain slot offsets; calls after close do nothing', async (tt) => {
  const s = setup(tt);
  const { a, b } = s.peers;
  s.table.set(VIP.a, LOOP, a.port, 0);
  s.table.set(VIP.b, LOOP, b.port, 0);
  a.send(s.relay.localAddress.port, Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 1]), data(VIP.b, 1));
  await until(() => s.js.length === 1 && b.got.length === 1, 'mixed batch');
  s.table.enable(false);
  tt.false(s.table.enabled);
  a.send(s.relay.localAddress.port, data(VIP.b, 2), data(VIP.b, 3));
  await until(() => s.js.length === 3, 'both at JS');
  await settle();
  tt.is(b.got.length, 1);
  tt.deepEqual(s.js.slice(1).map((g) => g.bytes[20]), [2, 3]);
  s.relay.close();
  s.table.set(VIP.c, LOOP, 1, 0);
  tt.is(s.table.size, 0);
  tt.false(s.table.enabled);
  tt.is(s.table.stats.forwarded, 1, 'counters stay readable');
});

t('many members: the table grows and forwards to each', async (tt) => {
  const s = setup(tt);
  const { a, b } = s.peers;
  for (let i = 0; i < 5000; i++) s.table.set(parseAddr('100.65.0.0') + i, LOOP, 20000 + (i % 40000), 0);
  s.table.set(VIP.a, LOOP, a.port, 0);
  s.table.set(VIP.b, LOOP, b.port, 0);
  tt.is(s.table.size, 5002);
  for (let i = 0; i < 5000; i += 2) tt.true(s.table.delete(parseAddr('100.65.0.0') + i));
  tt.is(s.table.size, 2502);
  a.send(s.relay.localAddress.port, data(VIP.b, 1));
  b.send(s.relay.localAddress.port, data(VIP.a, 2));
  await until(() => a.got.length === 1 && b.got.length === 1, 'both ways');
  tt.is(s.jsBatches, 0);
});

t('bad arguments are refused with a reason', (tt) => {
  const s = setup(tt);
  tt.throws(() => s.table.set(VIP.a, LOOP, 70000, 0), { message: /port/ });
  tt.throws(() => s.table.policy(7), { message: /mode/ });
  tt.is(s.relay.relayFastPath({ dataType: DATA, minPayload: MIN_PAYLOAD }), s.table, 'one table per socket');
});
