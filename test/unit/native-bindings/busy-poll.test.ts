/**
 * Adaptive busy-polling in the addon (src/busy_poll.c), over real loopback UDP: a round after
 * traffic delivers what arrives on any handle of the process (the other socket of a ping-pong),
 * it is off at 0, and an idle process does not spin (CPU over 1 s idle ~0 with the largest
 * budget). Serial: the budget and the counters are per thread, shared by the tests of this file.
 */
import test from 'ava';
import { type DatagramBatch } from '../../../common/packet-io';
import { parseAddr } from '../../../common/ipv4';
import {
  BUSY_POLL_MAX_US, busyPollStats, InvalidOptionError, nativeAvailable, openUdpSocket, setBusyPoll, type NativeUdpSocket,
} from '../../../native-bindings';

const LOOP = parseAddr('127.0.0.1');
const available = nativeAvailable();
const t = available ? test.serial : test.skip;
if (!available) console.log('native addon not built (npm run install): skipping busy-poll tests');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A and B bounce one datagram `rounds` times (each handler answers what it got, a counter in
 * the first 4 bytes); resolves with what A saw, in order.
 */
function pingPong(a: NativeUdpSocket, b: NativeUdpSocket, rounds: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const seen: number[] = [];
    const timer = setTimeout(() => reject(new Error(`timeout after ${seen.length}/${rounds}`)), 10_000);
    const bounce = (self: NativeUdpSocket, to: NativeUdpSocket, onValue?: (v: number) => boolean) => (bt: DatagramBatch) => {
      for (let i = 0; i < bt.count; i++) {
        const v = Buffer.from(bt.data.buffer, bt.data.byteOffset + bt.offsets[i]!, bt.lengths[i]!).readUInt32BE(0);
        if (onValue && !onValue(v)) continue;
        const out = Buffer.alloc(64, v & 0xff);
        out.writeUInt32BE(v + 1, 0);
        self.send(out, 0, out.length, LOOP, to.localAddress.port);
      }
      self.flush();
    };
    a.onReceive(bounce(a, b, (v) => {
      seen.push(v);
      if (seen.length < rounds) return true;
      clearTimeout(timer);
      resolve(seen);
      return false;
    }));
    b.onReceive(bounce(b, a));
    const first = Buffer.alloc(64);
    first.writeUInt32BE(0, 0);
    b.send(first, 0, first.length, LOOP, a.localAddress.port);
    b.flush();
  });
}

function pair(tt: { teardown(fn: () => void): void }): [NativeUdpSocket, NativeUdpSocket] {
  const a = openUdpSocket({ host: '127.0.0.1', port: 0 });
  const b = openUdpSocket({ host: '127.0.0.1', port: 0 });
  tt.teardown(() => { a.close(); b.close(); setBusyPoll(0); });
  return [a, b];
}

t('busy-poll delivers: a ping-pong between two sockets is served inside rounds, intact and in order; at 0 no round runs', async (tt) => {
  // Off: the same exchange goes through libuv only.
  setBusyPoll(0);
  const [a0, b0] = pair(tt);
  const before0 = busyPollStats();
  const off = await pingPong(a0, b0, 200);
  tt.deepEqual(off, Array.from({ length: 200 }, (_, i) => 2 * i), 'positive control: delivered with busy-poll off');
  const after0 = busyPollStats();
  tt.is(after0.budgetUs, 0);
  tt.is(after0.rounds, before0.rounds, 'off: no round');
  tt.is(after0.hits, before0.hits);

  setBusyPoll(200);
  const [a, b] = pair(tt);
  const before = busyPollStats();
  const on = await pingPong(a, b, 200);
  tt.deepEqual(on, Array.from({ length: 200 }, (_, i) => 2 * i), 'every bounce arrives, in order');
  const after = busyPollStats();
  tt.is(after.budgetUs, 200);
  tt.true(after.rounds > before.rounds, 'rounds started after traffic');
  // Loopback delivers a send before sendmsg returns: the other socket is readable at once, so
  // rounds serve it (a handle other than the one whose callback started the round).
  tt.true(after.hits > before.hits, `drains inside rounds: ${after.hits - before.hits}`);
  tt.true(after.packets - before.packets >= 100, `packets read inside rounds: ${after.packets - before.packets}`);
});

t('an idle process does not spin: CPU over 1 s idle with the largest budget stays near 0, after rounds ran', async (tt) => {
  setBusyPoll(BUSY_POLL_MAX_US);
  const [a, b] = pair(tt);
  const before = busyPollStats();
  await pingPong(a, b, 50);
  tt.true(busyPollStats().rounds > before.rounds, 'positive control: busy-poll was active for the traffic');
  await sleep(50); // let the last round end (it lasts at most 8 ms)
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await sleep(1000);
  const cpu = process.cpuUsage(cpu0);
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpuMs = (cpu.user + cpu.system) / 1000;
  // A spinning loop would burn ~the whole second; idle Node takes a few ms. Generous bound.
  tt.true(cpuMs < 0.25 * wallMs, `idle CPU ${cpuMs.toFixed(1)} ms over ${wallMs.toFixed(0)} ms`);
});

t('setBusyPoll takes whole microseconds 0..1000 and names what is wrong', (tt) => {
  for (const bad of [-1, 1.5, BUSY_POLL_MAX_US + 1, Number.NaN]) {
    tt.throws(() => setBusyPoll(bad), { instanceOf: InvalidOptionError, message: /busy-poll budget must be an integer number of microseconds in \[0, 1000\]/ }, String(bad));
  }
  tt.notThrows(() => setBusyPoll(50), 'positive control');
  tt.is(busyPollStats().budgetUs, 50);
  setBusyPoll(0);
  tt.is(busyPollStats().budgetUs, 0);
});
