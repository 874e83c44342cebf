/**
 * A member floods another with handshake initiations at 5,000/s: how much X25519 and CPU
 * does the victim spend, with the per-source rate limit (node-agent/handshake-handler.ts,
 * protocol/ratelimiter.ts) and without it? In process, real clock, one real `Device` as the
 * victim; the attacker is the strongest a member can be (a valid member key: one real
 * initiation re-indexed and re-MACed per copy, so each admitted copy costs a DH; it reads
 * the cookie replies at its overlay address and sends valid mac2).
 *
 *   npm run bench:handshake-flood   (or: node dist/bench/handshake-flood.js [--rate 5000] [--duration 5])
 *
 * Offered: `rate` messages per second, sent in batches every ~10 ms as due (at most 128 per
 * batch, a UDP batch); a victim that cannot keep up falls behind, and what it never read is
 * reported as not read (a socket would have dropped it). Victim CPU = process CPU time
 * (getrusage) spent inside the victim's readOutsidePackets/tick; the attacker's own message
 * building is excluded. X25519 counts every scalar multiplication of the process during the
 * run (the attacker does none while it runs). "CPU s/s at full rate" scales the victim's CPU
 * per message read to every message offered: what it would need to read them all (on a
 * shared machine the victim may get less CPU than that, and then reads less).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseNetwork, silentLogger, systemClock, type DatagramBatch } from '../common';
import { Device, Endpoint, EndpointKind, PeerSet } from '../node-agent';
import {
  CookieGenerator, DEFAULT_TIMER_CONFIG, MSG_COOKIE_REPLY, createInitiation, createLocalIdentity, createPeerCrypto,
  generatePrivateKey, keyToBase64, publicKeyFromPrivate, x25519Operations,
} from '../protocol';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
};
const RATE = arg('rate', 5000);
const DURATION_S = arg('duration', 5);
const MAX_BATCH = 128;
const V = 0x64400001;
const M = 0x64400003;

interface Result {
  case: string;
  offered: number;
  delivered: number;
  x25519: number;
  victimCpuS: number;
  processCpuS: number;
  wallS: number;
  drops: Record<string, number>;
}

async function run(name: string, rateLimit: false | undefined): Promise<Result> {
  const clock = systemClock;
  const vKey = generatePrivateKey();
  const mKey = generatePrivateKey();
  const local = createLocalIdentity(vKey);
  const peers = new PeerSet(local, clock, DEFAULT_TIMER_CONFIG);
  peers.upsert({ publicKey: keyToBase64(publicKeyFromPrivate(mKey)), allowedIps: [parseNetwork('100.64.0.3/32')], endpoint: Endpoint.relay(M) });
  const replies: Buffer[] = [];
  const toWire = (_ep: Endpoint, buf: Uint8Array, off: number, len: number) => {
    if (buf[off] === MSG_COOKIE_REPLY) replies.push(Buffer.from(buf.subarray(off, off + len)));
  };
  const victim = new Device({
    clock, logger: silentLogger(), peers, local, timerConfig: DEFAULT_TIMER_CONFIG, localAddresses: [V],
    outside: { send: toWire, sendInPlace: toWire }, inside: { write: () => undefined, writeInPlace: () => undefined },
    handshakeRateLimit: rateLimit,
  });
  const vPub = publicKeyFromPrivate(vKey);
  const mLocal = createLocalIdentity(mKey);
  const template = createInitiation(mLocal, createPeerCrypto(mLocal, vPub), 1, clock.wallMs()).message;
  const cookies = new CookieGenerator(vPub, clock);
  const data = Buffer.alloc(MAX_BATCH * template.length);
  const batch: DatagramBatch = {
    count: 0, data, offsets: new Uint32Array(MAX_BATCH), lengths: new Uint32Array(MAX_BATCH).fill(template.length),
    addrs: new Uint32Array(MAX_BATCH).fill(M), ports: new Uint32Array(MAX_BATCH),
  };
  for (let i = 0; i < MAX_BATCH; i++) batch.offsets[i] = i * template.length;
  let index = 2;

  const x0 = x25519Operations();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let offered = 0;
  let delivered = 0;
  let victimUs = 0;
  for (;;) {
    const elapsed = performance.now() - t0;
    if (elapsed >= DURATION_S * 1000) break;
    const due = Math.floor((elapsed / 1000) * RATE);
    const n = Math.min(MAX_BATCH, due - offered);
    offered = due; // what is due and not sent now is lost, as in a full socket buffer
    if (n > 0) {
      for (let i = 0; i < n; i++) {
        const m = data.subarray(i * template.length, (i + 1) * template.length);
        template.copy(m);
        m.writeUInt32LE(index++ >>> 0, 4);
        cookies.addMacs(m);
      }
      batch.count = n;
      const c = process.cpuUsage();
      victim.readOutsidePackets(batch, EndpointKind.Relay);
      victim.tick();
      const d = process.cpuUsage(c);
      victimUs += d.user + d.system;
      delivered += n;
      for (const r of replies.splice(0)) cookies.consumeReply(r);
    }
    await sleep(10);
  }
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const drops = Object.fromEntries(Object.entries(victim.drops).filter(([, v]) => v > 0));
  return {
    case: name, offered, delivered, x25519: x25519Operations() - x0, victimCpuS: victimUs / 1e6,
    processCpuS: (cpu.user + cpu.system) / 1e6, wallS, drops,
  };
}

async function main(): Promise<void> {
  console.log(`handshake flood: one member, ${RATE} initiations/s offered for ${DURATION_S} s, relayed (source = its overlay address)`);
  const results = [await run('rate limit (default)', undefined), await run('no rate limit', false)];
  const pad = (s: string | number, n: number) => String(s).padStart(n);
  console.log(`${'case'.padEnd(22)}${pad('offered/s', 11)}${pad('read/s', 9)}${pad('X25519/s', 10)}${pad('X25519/msg', 12)}`
    + `${pad('victim CPU s/s', 16)}${pad('at full rate', 14)}${pad('process CPU s/s', 17)}  drops`);
  for (const r of results) {
    const full = r.delivered > 0 ? (r.victimCpuS / r.delivered) * (r.offered / r.wallS) : 0;
    console.log(`${r.case.padEnd(22)}${pad(Math.round(r.offered / r.wallS), 11)}${pad(Math.round(r.delivered / r.wallS), 9)}`
      + `${pad((r.x25519 / r.wallS).toFixed(1), 10)}${pad((r.x25519 / Math.max(1, r.delivered)).toFixed(3), 12)}`
      + `${pad((r.victimCpuS / r.wallS).toFixed(3), 16)}${pad(full.toFixed(3), 14)}${pad((r.processCpuS / r.wallS).toFixed(3), 17)}  ${JSON.stringify(r.drops)}`);
  }
  console.log('CPU s/s: seconds of CPU per second of flood (1.0 = one core). read/s < offered/s: the victim did not keep up');
  console.log('(a real socket drops the rest, legitimate handshakes included).');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
