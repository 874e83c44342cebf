/**
 * TUN offloads and the agent's per-packet checks, end to end through real Agents and a real
 * relay on memory TUNs (test/harness/testnet.ts): a TCP super-packet as the kernel hands it
 * to an offload TUN is split by the addon (what NativeTunDevice does before the batch reaches
 * the agent), and every segment then goes through routing, sealing, the relay, opening, the
 * replay window, cryptokey routing and the inbound filter on its own. What arrives is
 * coalesced by the addon's write-side code back into the original super-packet.
 *
 *   s (100.64.0.1) ── relay r1 ── a (100.64.0.2)
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { nativeAvailable, tunOffloadCoalesce, tunOffloadSplit, VNET_HDR_LEN } from '../../native-bindings';
import { tcp, TCP_FLAGS } from '../harness/packets';
import { startTestnet, waitFor } from '../harness/testnet';

const t = nativeAvailable() ? test.serial : test.serial.skip;
if (!nativeAvailable()) console.log('native addon not built (npm run install): skipping the TUN offload tests');

const MSS = 1380; // TUN MTU 1420 - 40
const DATA = 20_000;

/** vnet header (NEEDS_CSUM, GSO TCPV4, gso_size MSS) + one TCP packet of DATA random bytes. */
function superPacket(src: string, dst: string, sport: number, dport: number): Buffer {
  const p = tcp(src, dst, sport, dport, TCP_FLAGS.ACK, DATA);
  randomBytes(DATA).copy(p, 40);
  const h = Buffer.alloc(VNET_HDR_LEN);
  h[0] = 1;
  h[1] = 1;
  h.writeUInt16LE(40, 2);
  h.writeUInt16LE(MSS, 4);
  h.writeUInt16LE(20, 6);
  h.writeUInt16LE(16, 8);
  return Buffer.concat([h, p]);
}

t('a split super-packet crosses segment by segment, each checked; coalesced at the receiver it is the original data again', async (tt) => {
  const n = await startTestnet({ agents: ['s', 'a'], inbound: { a: { s: ['tcp/22'] }, s: { a: [] } }, extraAllowedIps: { a: ['10.200.0.0/24'] } });
  tt.teardown(() => n.stop());
  await n.ready();
  const s = n.agent('s');
  const a = n.agent('a');
  const marker = tcp(s.vip, a.vip, 40000, 22, TCP_FLAGS.ACK | TCP_FLAGS.PSH, 10);

  // Positive: the super-packet of an established flow, split; every segment arrives as sent.
  const sup = superPacket(s.vip, a.vip, 40000, 22);
  const segs = tunOffloadSplit(sup, 1420)!;
  tt.is(segs.length, Math.ceil(DATA / MSS));
  a.tun.clearWritten();
  s.tun.inject(segs);
  await waitFor(() => a.tun.written().length >= segs.length, { what: 'all segments at a' });
  tt.deepEqual(a.tun.written(), segs);
  const merged = tunOffloadCoalesce(a.tun.written());
  tt.is(merged.length, 1, 'one super-packet for the kernel');
  tt.true(merged[0]!.subarray(VNET_HDR_LEN + 40).equals(sup.subarray(VNET_HDR_LEN + 40)), 'the same data');

  // Negative, same setup: a super-packet whose inner source s does not own. Every one of its
  // segments is refused by cryptokey routing; the marker after them passes.
  const before = a.agent.device.drops['source-not-allowed'];
  const spoofed = tunOffloadSplit(superPacket('100.64.0.99', a.vip, 40000, 22), 1420)!;
  a.tun.clearWritten();
  s.tun.inject([...spoofed, marker]);
  await a.tun.next({ match: (p) => p.equals(marker), timeoutMs: 2000 });
  tt.deepEqual(a.tun.written(), [marker]);
  tt.is(a.agent.device.drops['source-not-allowed'] - before, spoofed.length);

  // Negative: addressed to a prefix s routes to a (a's AllowedIPs) but not to a's own address:
  // each segment is dropped by a's inbound filter as not-our-address; the marker passes.
  const other = a.agent.device.drops['not-our-address'];
  const misaddressed = tunOffloadSplit(superPacket(s.vip, '10.200.0.5', 40000, 22), 1420)!;
  a.tun.clearWritten();
  s.tun.inject([...misaddressed, marker]);
  await a.tun.next({ match: (p) => p.equals(marker), timeoutMs: 2000 });
  tt.deepEqual(a.tun.written(), [marker]);
  tt.is(a.agent.device.drops['not-our-address'] - other, misaddressed.length);
});
