/**
 * Interop with stock wireguard-go (root only; not a pure unit test, kept beside the handshake
 * tests because it checks the same code). One wireguard-go device with no address and no
 * routes in the current namespace, talking UDP on 127.0.0.1 to a socket in this process:
 *
 *   this test (127.0.0.1:Q)  <── initiation / response / keepalives ──>  wireguard-go isprXXXX (127.0.0.1:P)
 *
 * 1. wireguard-go initiates (persistent-keepalive makes it send at once); we answer.
 * 2. we initiate; wireguard-go answers; we send a keepalive on the new keys.
 * Both directions must end in a transport message that decrypts with our derived keys.
 */
import test from 'ava';
import { spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { CookieChecker, CookieGenerator } from '../../../protocol/cookie';
import {
  consumeInitiation, consumeResponse, createInitiation, createLocalIdentity, createPeerCrypto, createResponse,
  type SessionKeys,
} from '../../../protocol/handshake';
import { generatePrivateKey, keyToBase64 } from '../../../protocol/keys';
import { aeadOpen, aeadSeal } from '../../../protocol/noise';
import { tai64nToMs } from '../../../protocol/tai64n';
import { forRoot } from '../../harness/root';
import { spawnOwned } from '../../harness/procs';

const maybe = forRoot(test, __filename, { tools: ['wireguard-go', 'wg'], why: 'wireguard-go creates a TUN device' });

const IFACE = `ispr${randomBytes(3).toString('hex')}`;
let tmp = '';
let wgProc: ChildProcess | undefined;
let sock: dgram.Socket | undefined;

const clock = { now: () => performance.now() };
const us = createLocalIdentity(generatePrivateKey());
const themPriv = generatePrivateKey();
const them = createLocalIdentity(themPriv);
const peer = createPeerCrypto(us, them.publicKey);
const gen = new CookieGenerator(peer.macKeys, clock);
const checker = new CookieChecker(us.macKeys, clock);

function wg(...args: string[]): string {
  const r = spawnSync('wg', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wg ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const inbox: Buffer[] = [];
let waiter: (() => void) | undefined;
async function receive(type: number, timeoutMs = 5000): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = inbox.findIndex((m) => m[0] === type);
    if (i >= 0) return inbox.splice(i, 1)[0];
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no message of type ${type} from wireguard-go within ${timeoutMs} ms`);
    await new Promise<void>((resolve) => { waiter = resolve; setTimeout(resolve, Math.min(left, 100)); });
  }
}

let theirPort = 0;
function send(msg: Buffer): Promise<void> {
  return new Promise((resolve, reject) => sock!.send(msg, theirPort, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
}

function transport(keys: SessionKeys, counter: bigint, payload: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(4, 0);
  h.writeUInt32LE(keys.remoteIndex, 4);
  h.writeBigUInt64LE(counter, 8);
  return Buffer.concat([h, aeadSeal(keys.sendKey, counter, payload)]);
}

/** Waits for a transport message to `keys.localIndex` and returns its decrypted payload. */
async function receiveTransport(keys: SessionKeys): Promise<Buffer> {
  for (;;) {
    const m = await receive(4);
    if (m.readUInt32LE(4) !== keys.localIndex) continue; // keepalive on an older session
    const pt = aeadOpen(keys.recvKey, m.readBigUInt64LE(8), m.subarray(16));
    if (!pt) throw new Error('transport message from wireguard-go did not decrypt');
    return pt;
  }
}

test.before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-proto-'));
  sock = dgram.createSocket('udp4');
  sock.on('message', (m) => { inbox.push(m); waiter?.(); });
  await new Promise<void>((resolve) => sock!.bind(0, '127.0.0.1', resolve));
  const ourPort = sock.address().port;
  wgProc = spawnOwned('wireguard-go', ['-f', IFACE], { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'error' } });
  const sockPath = `/var/run/wireguard/${IFACE}.sock`;
  for (let i = 0; i < 100 && !fs.existsSync(sockPath); i++) await new Promise((r) => setTimeout(r, 50));
  if (!fs.existsSync(sockPath)) throw new Error(`wireguard-go did not create ${sockPath}`);
  const keyFile = path.join(tmp, 'key');
  fs.writeFileSync(keyFile, keyToBase64(themPriv) + '\n', { mode: 0o600 });
  wg('set', IFACE, 'private-key', keyFile, 'listen-port', '0');
  spawnSync('ip', ['link', 'set', IFACE, 'up']);
  theirPort = Number(wg('show', IFACE, 'listen-port').trim());
  wg('set', IFACE, 'peer', keyToBase64(us.publicKey), 'endpoint', `127.0.0.1:${ourPort}`, 'allowed-ips', '10.254.254.2/32');
});

test.after.always(() => {
  sock?.close();
  if (wgProc?.pid && wgProc.exitCode === null) wgProc.kill('SIGTERM');
  spawnSync('ip', ['link', 'del', IFACE], { stdio: 'ignore' });
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

maybe('wireguard-go initiates, we respond, its keepalive decrypts with our keys', async (t) => {
  wg('set', IFACE, 'peer', keyToBase64(us.publicKey), 'persistent-keepalive', '1');
  const msg = await receive(1);
  t.true(checker.checkMac1(msg), 'mac1 from wireguard-go verifies');
  const c = consumeInitiation(us, msg, (pub) => (pub.equals(them.publicKey) ? peer : undefined));
  if (!c.ok) return t.fail(`consumeInitiation: ${c.reason}`);
  t.true(Math.abs(tai64nToMs(c.timestamp) - Date.now()) < 60_000, 'TAI64N timestamp is wall-clock now');
  const { message, keys } = createResponse(us, c.state, 0x0a0b0c0d);
  gen.addMacs(message);
  await send(message);
  t.deepEqual(await receiveTransport(keys), Buffer.alloc(0), 'keepalive');
  t.true(Number(wg('show', IFACE, 'latest-handshakes').trim().split(/\s+/)[1]) > 0);
});

maybe('we initiate, wireguard-go responds, both directions carry data', async (t) => {
  const { message, state } = createInitiation(us, peer, 0x01020304, Date.now());
  gen.addMacs(message);
  await send(message);
  const resp = await receive(2);
  t.true(checker.checkMac1(resp));
  const r = consumeResponse(us, resp, (idx) => (idx === state.localIndex ? { peer, state } : undefined));
  if (!r.ok) return t.fail(`consumeResponse: ${r.reason}`);
  // An IPv4 packet it can route back to us is not needed: a keepalive confirms the session,
  // and its next persistent keepalive arrives on the new keys.
  await send(transport(r.keys, 0n, Buffer.alloc(0)));
  t.deepEqual(await receiveTransport(r.keys), Buffer.alloc(0));
  const rx = Number(wg('show', IFACE, 'transfer').trim().split(/\s+/)[1]);
  t.true(rx > 0, 'wireguard-go counted bytes received from us');
});
