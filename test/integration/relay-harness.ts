/** Loopback helpers for the relay integration tests: a relay and members on real UDP sockets. */
import nacl from 'tweetnacl';
import { systemClock } from '../../common/clock';
import { silentLogger } from '../../common/logger';
import { DgramSocket, nativeAvailable, openUdpSocket } from '../../native-bindings';
import { type DatagramSocket } from '../../common/packet-io';
import { parseAddr } from '../../common/ipv4';
import { createRelay, StaticMemberDirectory, type Relay } from '../../relay';
import { RelayClient } from '../../node-agent/relay-client';
import { RELAY_HEADER_LEN } from '../../protocol/relay-frame';

export const LOOPBACK = parseAddr('127.0.0.1');

export interface Identity { kp: nacl.BoxKeyPair; vip: number }
export const identity = (vip: string): Identity => ({ kp: nacl.box.keyPair(), vip: parseAddr(vip) });

export function directoryOf(ids: Identity[]): StaticMemberDirectory {
  return new StaticMemberDirectory(ids.map((m) => ({ publicKey: Buffer.from(m.kp.publicKey).toString('base64'), vip: m.vip })));
}

/** 'native': the addon's socket with the relay's C fast path (the default); 'native-js': the
 *  same socket with the fast path off (every frame through the JS forwarder). */
export type SocketKind = 'dgram' | 'native' | 'native-js';

/** Socket kinds to run the relay on: dgram always, native (fast path on and off) when the addon is built. */
export function relaySocketKinds(): SocketKind[] {
  return nativeAvailable() ? ['dgram', 'native', 'native-js'] : ['dgram'];
}

export async function openSocket(kind: SocketKind, port = 0): Promise<DatagramSocket> {
  if (kind === 'dgram') return DgramSocket.open({ host: '127.0.0.1', port });
  return openUdpSocket({ host: '127.0.0.1', port });
}

export async function startRelay(directory: StaticMemberDirectory, port = 0, kind: SocketKind = 'dgram'): Promise<{ relay: Relay; socket: DatagramSocket; port: number; stop(): void }> {
  const socket = await openSocket(kind, port);
  const relay = createRelay({ id: 'it-relay', keepaliveSeconds: 1, tickMs: 100, fastPath: kind !== 'native-js' })({ logger: silentLogger(), clock: systemClock, socket, directory });
  relay.start();
  return { relay, socket, port: socket.localAddress.port, stop: () => { relay.stop(); socket.close(); } };
}

export interface Received { srcVip: number; payload: Buffer }

export interface Member {
  client: RelayClient;
  socket: DgramSocket;
  received: Received[];
  unreachable: number[];
  sendData(dstVip: number, wg: Buffer): void;
  close(): void;
}

/** An "agent": a socket shared by the client and the WireGuard traffic, dispatching relay datagrams. */
export async function startMember(id: Identity, relayPort: number, opts: { keepaliveMs?: number } = {}): Promise<Member> {
  const socket = await DgramSocket.open({ host: '127.0.0.1' });
  const client = new RelayClient({
    staticPrivate: id.kp.secretKey, staticPublic: id.kp.publicKey, relayAddr: LOOPBACK, relayPort, vip: id.vip,
    socket, clock: systemClock, logger: silentLogger(), keepaliveMs: opts.keepaliveMs ?? 200, authRetryMinMs: 100,
    authRetryMaxMs: 400, tickMs: 20,
  });
  const received: Received[] = [];
  const unreachable: number[] = [];
  client.on('unreachable', (v) => unreachable.push(v));
  socket.onReceive((b) => {
    for (let i = 0; i < b.count; i++) {
      if (b.addrs[i] !== client.relayAddr || b.ports[i] !== client.relayPort) continue;
      const d = client.handleFrame(b.data, b.offsets[i], b.lengths[i]);
      if (d) received.push({ srcVip: d.srcVip, payload: Buffer.from(b.data.subarray(d.offset, d.offset + d.length)) });
    }
  });
  client.start();
  return {
    client, socket, received, unreachable,
    sendData(dstVip, wg) {
      const buf = Buffer.alloc(RELAY_HEADER_LEN + wg.length);
      wg.copy(buf, RELAY_HEADER_LEN);
      client.writeDataHeader(buf, 0, dstVip);
      socket.send(buf, 0, buf.length, client.relayAddr, client.relayPort);
      socket.flush();
    },
    close() { client.stop(); socket.close(); },
  };
}

/** A fake WireGuard transport message: type 4, three zero bytes, then random bytes. */
export function fakeWg(len = 64): Buffer {
  const b = Buffer.from(nacl.randomBytes(len));
  b[0] = 4; b[1] = 0; b[2] = 0; b[3] = 0;
  return b;
}

export async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A raw UDP peer for hand-made frames; collects replies. */
export async function rawPeer(): Promise<{ socket: DgramSocket; replies: Buffer[]; send(relayPort: number, f: Uint8Array): void; close(): void }> {
  const socket = await DgramSocket.open({ host: '127.0.0.1' });
  const replies: Buffer[] = [];
  socket.onReceive((b) => { for (let i = 0; i < b.count; i++) replies.push(Buffer.from(b.data.subarray(b.offsets[i], b.offsets[i] + b.lengths[i]))); });
  return {
    socket, replies,
    send(relayPort, f) { socket.send(f, 0, f.length, LOOPBACK, relayPort); socket.flush(); },
    close() { socket.close(); },
  };
}
