/**
 * The relay's own cost per forwarded DATA frame, its C fast path on vs off (issue 15): one
 * `isthmus relay` process on loopback, two members in this process (RelayClient over native
 * sockets), member a sending DATA frames to b in batches of 64 with at most `--window` frames
 * in flight. Reports the relay process's CPU (utime + stime from /proc) per frame and per GB
 * delivered, and the frames b received per second. Modes alternate (on, off, on, off, ...) so a
 * shared machine's load hits both alike.
 *
 *   npm run bench:relay-forward   (or: node dist/bench/relay-forward.js [--frames 1000000]
 *                                  [--size 1408] [--pairs 2] [--window 2048])
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import nacl from 'tweetnacl';
import { parseAddr, silentLogger, systemClock } from '../common';
import { openUdpSocket, type NativeUdpSocket } from '../native-bindings';
import { RelayClient } from '../node-agent';
import { FrameType } from '../protocol';
import { ManagedProcess, processJiffies, sleep } from '../testbed';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const FRAMES = arg('frames', 1_000_000);
const SIZE = arg('size', 8 + 1400);
const PAIRS = arg('pairs', 2);
const WINDOW = arg('window', 2048);
const BATCH = 64;
const LOOP = parseAddr('127.0.0.1');
const CLI = resolve(__dirname, '..', 'cli', 'main.js');

interface Member { client: RelayClient; socket: NativeUdpSocket; received: number; kp: nacl.BoxKeyPair; vip: number }

function member(vip: string): Member {
  const kp = nacl.box.keyPair();
  const socket = openUdpSocket({ host: '127.0.0.1', port: 0 });
  return { kp, socket, vip: parseAddr(vip), received: 0, client: undefined as unknown as RelayClient };
}

function connect(m: Member, relayPort: number): void {
  m.client = new RelayClient({
    staticPrivate: m.kp.secretKey, staticPublic: m.kp.publicKey, relayAddr: LOOP, relayPort, vip: m.vip,
    socket: m.socket, clock: systemClock, logger: silentLogger(), keepaliveMs: 5000,
  });
  m.socket.onReceive((b) => {
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i]!;
      if (b.data[off] === FrameType.DATA) m.received++;
      else m.client.handleFrame(b.data, off, b.lengths[i]!);
    }
  });
  m.client.start();
}

async function once(fastPath: boolean, port: number): Promise<{ fps: number; cpuUsPerFrame: number; cpuSPerGB: number; delivered: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-relay-forward-'));
  const a = member('100.64.0.1');
  const b = member('100.64.0.2');
  const members = join(dir, 'members');
  writeFileSync(members, [a, b].map((m) => `${Buffer.from(m.kp.publicKey).toString('base64')} 100.64.0.${m === a ? 1 : 2}\n`).join(''), { mode: 0o600 });
  const relay = new ManagedProcess(process.execPath, [CLI, 'relay', '--listen', `127.0.0.1:${port}`, '--members', members,
    `--fast-path=${fastPath}`], { name: 'relay' });
  try {
    await relay.waitForLine(/relay ready/, 15_000);
    connect(a, port);
    connect(b, port);
    for (let t = 0; !(a.client.isReady && b.client.isReady); t++) {
      if (t > 500) throw new Error('members did not authenticate');
      await sleep(10);
    }
    const frame = Buffer.alloc(SIZE, 0x5a);
    frame[8] = 4; frame[9] = 0; frame[10] = 0; frame[11] = 0;
    a.client.writeDataHeader(frame, 0, b.vip);
    const j0 = processJiffies([relay.pid]);
    const t0 = performance.now();
    let sent = 0;
    let writtenOff = 0;
    let lastProgress = performance.now();
    let lastReceived = 0;
    while (sent < FRAMES) {
      if (sent - b.received - writtenOff < WINDOW) {
        for (let i = 0; i < BATCH; i++) a.socket.send(frame, 0, SIZE, LOOP, port);
        a.socket.flush();
        sent += BATCH;
      } else {
        await new Promise((r) => setImmediate(r));
        const now = performance.now();
        if (b.received !== lastReceived) {
          lastReceived = b.received;
          lastProgress = now;
        } else if (now - lastProgress > 20) {
          writtenOff = sent - b.received; // lost on the way: open the window again
          lastProgress = now;
        }
      }
    }
    const end = performance.now() + 1000;
    while (b.received + writtenOff < sent && performance.now() < end) await new Promise((r) => setTimeout(r, 1));
    const wallS = (performance.now() - t0) / 1000;
    const cpuS = (processJiffies([relay.pid]) - j0) / 100;
    const delivered = b.received;
    return { fps: delivered / wallS, cpuUsPerFrame: (cpuS / delivered) * 1e6, cpuSPerGB: cpuS / (delivered * SIZE / 1e9), delivered: delivered / sent };
  } finally {
    a.client?.stop();
    b.client?.stop();
    a.socket.close();
    b.socket.close();
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  process.stdout.write(`relay forwarding on loopback: ${FRAMES} frames of ${SIZE} bytes, batches of ${BATCH}, window ${WINDOW}\n`);
  for (let p = 0; p < PAIRS; p++) {
    for (const fast of [true, false]) {
      const port = 20_000 + Math.floor(Math.random() * 30_000);
      const r = await once(fast, port);
      const row = `fast path ${fast ? 'on ' : 'off'}: ${(r.fps / 1e3).toFixed(0)} kframes/s delivered (${(r.delivered * 100).toFixed(1)} % of sent), relay CPU ${r.cpuUsPerFrame.toFixed(2)} µs/frame = ${r.cpuSPerGB.toFixed(2)} CPU-s/GB`;
      process.stdout.write(`${row}\n`);
    }
  }
}

main().catch((err: Error) => {
  process.stderr.write(`relay-forward failed: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
