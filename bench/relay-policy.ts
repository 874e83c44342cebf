/**
 * Cost per DATA frame of the relay's hot path (relay/forward.ts) with and without the access
 * policy check (relay/policy-gate.ts), members on one relay, 128-frame batches, a socket that
 * discards sends; plus the garbage collections during each run (steady state: none).
 *
 *   npm run bench:relay-policy   (or: node dist/bench/relay-policy.js [--frames 5000000] [--members 64])
 *
 * Cases:
 *   no-source       a relay without a PolicySource (static mode)
 *   no-policy       a PolicySource, no policy set (check skipped after one field load)
 *   policy-allowed  a policy; every frame between connected members (web → db)
 *   policy-denied   a policy; every frame between unconnected members (dropped as 'policy')
 */
import { PerformanceObserver } from 'node:perf_hooks';
import nacl from 'tweetnacl';
import { ManualClock, silentLogger, type DatagramBatch, type DatagramSocket } from '../common';
import { createRelay, StaticMemberDirectory, type PolicySource, type Relay } from '../relay';
import { FrameType, decodeChallenge, encodeAuth, encodeHello, writeRelayHeader, proveKey } from '../protocol';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const FRAMES = arg('frames', 5_000_000);
const MEMBERS = arg('members', 64);
const BATCH = 128;
const LEN = 8 + 1400;

class NullSocket implements DatagramSocket {
  readonly localAddress = { ip: '127.0.0.1', port: 1 };
  last: Buffer | undefined;
  handler!: (b: DatagramBatch) => void;
  onReceive(h: (b: DatagramBatch) => void): void { this.handler = h; }
  send(buf: Uint8Array, off: number, len: number): void { if (len < 200) this.last = Buffer.from(buf.subarray(off, off + len)); }
  sendInPlace(buf: Uint8Array, off: number, len: number): void { this.send(buf, off, len); }
  flush(): void {}
  close(): void {}
}

function batchOf(frames: { buf: Buffer; addr: number; port: number }[]): DatagramBatch {
  const data = Buffer.alloc(frames.reduce((n, f) => n + f.buf.length, 0));
  const b: DatagramBatch = { count: frames.length, data, offsets: new Uint32Array(frames.length), lengths: new Uint32Array(frames.length), addrs: new Uint32Array(frames.length), ports: new Uint32Array(frames.length) };
  let off = 0;
  frames.forEach((f, i) => { data.set(f.buf, off); b.offsets[i] = off; b.lengths[i] = f.buf.length; b.addrs[i] = f.addr; b.ports[i] = f.port; off += f.buf.length; });
  return b;
}

async function setup(policy: string | null | undefined): Promise<{ relay: Relay; socket: NullSocket; members: { vip: number; addr: number; port: number; tag: string }[] }> {
  const members = Array.from({ length: MEMBERS }, (_, i) => ({ kp: nacl.box.keyPair(), vip: 0x64400001 + i, addr: 0x0a000001 + i, port: 1000 + i, tag: i % 2 === 0 ? 'web' : 'db' }));
  const source: PolicySource = {
    loadPolicy: async () => policy ?? null,
    lookupTags: async (vip) => [members[vip - 0x64400001].tag],
    onEvent: () => undefined,
  };
  const socket = new NullSocket();
  const directory = new StaticMemberDirectory(members.map((m) => ({ publicKey: Buffer.from(m.kp.publicKey).toString('base64'), vip: m.vip })));
  const relay = createRelay({ id: 'bench', tickMs: 1e9 })({
    logger: silentLogger(), clock: new ManualClock(), socket, directory, policy: policy === undefined ? undefined : source,
  });
  relay.start();
  await relay.policyReady();
  for (const m of members) {
    socket.handler(batchOf([{ buf: encodeHello(), addr: m.addr, port: m.port }]));
    const ch = decodeChallenge(socket.last!, 0, socket.last!.length)!;
    const proof = proveKey(m.kp.secretKey, m.kp.publicKey, ch.ephemeralPublic, ch.nonce, 'relay');
    socket.handler(batchOf([{ buf: encodeAuth({ version: 1, claimedVip: m.vip, staticPublic: m.kp.publicKey, ephemeralPublic: ch.ephemeralPublic, nonce: ch.nonce, proof }), addr: m.addr, port: m.port }]));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }
  if (relay.stats().sessions !== MEMBERS) throw new Error('members did not bind');
  return { relay, socket, members };
}

async function run(name: string, policy: string | null | undefined, pairStep: number): Promise<void> {
  const { relay, socket, members } = await setup(policy);
  // Frames from member i to member i + pairStep: odd steps pair web with db, even steps web with web.
  const batches = Array.from({ length: 8 }, (_, k) => batchOf(Array.from({ length: BATCH }, (_, j) => {
    const i = (k * BATCH + j) % MEMBERS;
    const src = members[i];
    const dst = members[(i + pairStep) % MEMBERS];
    const buf = Buffer.alloc(LEN, 0xab);
    writeRelayHeader(buf, 0, FrameType.DATA, dst.vip);
    buf[8] = 4; buf[9] = 0; buf[10] = 0; buf[11] = 0;
    return { buf, addr: src.addr, port: src.port };
  })));
  // The forwarder rewrites the header in place: restore it before each reuse.
  const dsts = batches.map((b) => Array.from({ length: b.count }, (_, j) => b.data.readUInt32BE(b.offsets[j] + 4)));
  const rounds = Math.ceil(FRAMES / BATCH);
  const pass = (n: number): void => {
    for (let r = 0; r < n; r++) {
      const k = r & 7;
      const b = batches[k];
      const d = dsts[k];
      for (let j = 0; j < b.count; j++) b.data.writeUInt32BE(d[j], b.offsets[j] + 4);
      socket.handler(b);
    }
  };
  pass(Math.min(rounds, 2000)); // warm up
  let gcs = 0;
  const obs = new PerformanceObserver((l) => { gcs += l.getEntries().length; });
  obs.observe({ entryTypes: ['gc'] });
  const before = relay.stats();
  const t0 = process.hrtime.bigint();
  pass(rounds);
  const ns = Number(process.hrtime.bigint() - t0);
  await new Promise((r) => setImmediate(r));
  obs.disconnect();
  const after = relay.stats();
  const fwd = after.framesForwarded - before.framesForwarded;
  const dropped = after.drops.policy - before.drops.policy;
  console.log(`${name.padEnd(16)} ${(ns / (rounds * BATCH)).toFixed(1).padStart(6)} ns/frame  ${(rounds * BATCH / ns * 1e3).toFixed(2)} Mpps  forwarded ${fwd}  policy drops ${dropped}  gc ${gcs}`);
  relay.stop();
}

const WEB_TO_DB = '{ "rules": [ { "from": ["tag:web"], "to": ["tag:db"], "ports": ["tcp/5432"] } ] }';
(async () => {
  console.log(`relay hot path, ${FRAMES} frames of ${LEN} bytes, ${MEMBERS} members, batches of ${BATCH} (header restore included)`);
  // Three rounds, interleaved: on a shared machine compare the best of each case.
  for (let round = 0; round < 3; round++) {
    await run('no-source', undefined, 1);
    await run('no-policy', null, 1);
    await run('policy-allowed', WEB_TO_DB, 1);
    await run('policy-denied', WEB_TO_DB, 2);
  }
})();
