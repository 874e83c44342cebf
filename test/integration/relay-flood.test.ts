/**
 * The relay under flood, on real loopback sockets (issue 11):
 *   - 400 garbage AUTHs per second do not stop a genuine member binding within 2 s: the
 *     challenge MAC is checked before the X25519 work budget is spent.
 */
import test from 'ava';
import { encodeAuth } from '../../protocol/relay-frame';
import { directoryOf, identity, rawPeer, startMember, startRelay, until } from './relay-harness';

/** A real UDP flooder: `perSecond` garbage AUTHs (valid length, random challenge) from `sources` sockets. */
async function flood(relayPort: number, perSecond: number, sources = 4): Promise<{ sent: () => number; stop(): void }> {
  const peers = await Promise.all(Array.from({ length: sources }, () => rawPeer()));
  let sent = 0;
  const tickMs = 25;
  const start = Date.now();
  const timer = setInterval(() => {
    // Paced by elapsed time, so a late timer does not lower the rate.
    const due = Math.floor(((Date.now() - start) * perSecond) / 1000) - sent;
    for (let i = 0; i < due; i++) {
      const f = encodeAuth({
        version: 1, claimedVip: 0x64400000 + (sent & 0xff), staticPublic: randomBytes(32), ephemeralPublic: randomBytes(32),
        nonce: randomBytes(16), proof: randomBytes(32),
      });
      peers[sent % sources].send(relayPort, f);
      sent++;
    }
  }, tickMs);
  return { sent: () => sent, stop() { clearInterval(timer); for (const p of peers) p.close(); } };
}

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(Math.random() * 256);
  return b;
}

test('400 garbage AUTHs per second do not stop a genuine member binding within 2 s', async (t) => {
  const a = identity('100.64.9.1');
  const b = identity('100.64.9.2');
  const r = await startRelay(directoryOf([a, b]));
  const stops: (() => void)[] = [() => r.stop()];
  t.teardown(() => { for (const s of stops.reverse()) s(); });

  // Positive control, same relay, no flood: a member binds.
  const t0 = Date.now();
  const ma = await startMember(a, r.port);
  stops.push(() => ma.close());
  await until(() => ma.client.isReady, 'member a bound without a flood', 2000);
  t.log(`bound without flood in ${Date.now() - t0} ms`);

  const f = await flood(r.port, 400);
  stops.push(() => f.stop());
  // Let the flood run a full second first: the old relay's budget (300/s global, 50/s per IP)
  // would be spent on garbage by now, every genuine AUTH dropped as 'auth-overload'.
  await new Promise((res) => setTimeout(res, 1000));
  const t1 = Date.now();
  const mb = await startMember(b, r.port);
  stops.push(() => mb.close());
  await until(() => mb.client.isReady, 'member b bound under a 400/s garbage AUTH flood', 2000);
  const took = Date.now() - t1;
  t.log(`bound under flood in ${took} ms; garbage sent so far: ${f.sent()}`);
  await new Promise((res) => setTimeout(res, 500));
  f.stop();
  const s = r.relay.stats();
  t.true(f.sent() >= 500, `the flood ran (${f.sent()} sent)`);
  // Every garbage AUTH stopped at the MAC: none took budget, none reached the proof check.
  t.true(s.drops['auth-bad-challenge'] >= f.sent() * 0.9, `garbage dropped before work: ${s.drops['auth-bad-challenge']}`);
  t.is(s.drops['auth-overload'], 0);
  t.is(s.drops['auth-failed'], 0);
  t.is(s.sessions, 2);
  // And the bound member's traffic flows.
  ma.sendData(b.vip, Buffer.from([4, 0, 0, 0, ...randomBytes(60)]));
  await until(() => mb.received.length === 1, 'DATA a → b after the flood');
  t.pass();
});
