/**
 * The agent flushes after its timer tick: what the timers send (handshake retries,
 * keepalives) leaves at once, not with the next data batch.
 */
import test from 'ava';
import { ManualClock } from '../../../common/clock';
import { silentLogger } from '../../../common/logger';
import type { DatagramBatch, DatagramSocket, PacketBatch, TunDevice } from '../../../common/packet-io';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64 } from '../../../protocol/keys';
import { MSG_INITIATION } from '../../../protocol/constants';
import { Agent } from '../../../node-agent/agent';
import { DEVICE_HEADROOM } from '../../../node-agent/device';
import { parseNetwork, parsePrefix } from '../../../common/ipv4';
import { nodeCryptoAead } from '../../../node-agent/batch-crypto';
import { ipv4Packet } from '../../harness/packets';
import { slab } from './batches';

/** Records what each flush() hands over; nothing is delivered anywhere. */
class RecordingSocket implements DatagramSocket {
  readonly localAddress = { ip: '127.0.0.1', port: 40000 };
  private queued: Buffer[] = [];
  readonly flushed: Buffer[] = [];
  onReceive(_h: (b: DatagramBatch) => void): void {}
  send(buf: Uint8Array, offset: number, length: number): void {
    this.queued.push(Buffer.from(buf.subarray(offset, offset + length)));
  }
  sendInPlace(buf: Uint8Array, offset: number, length: number): void {
    this.send(buf, offset, length);
  }
  flush(): void {
    this.flushed.push(...this.queued.splice(0));
  }
  close(): void {}
}

class InjectTun implements TunDevice {
  readonly name = 'fake0';
  readonly mtu = 1420;
  readonly headroom = DEVICE_HEADROOM;
  handler: ((b: PacketBatch) => void) | undefined;
  onReceive(h: (b: PacketBatch) => void): void {
    this.handler = h;
  }
  write(): void {}
  writeInPlace(): void {}
  flush(): void {}
  close(): void {}
}

test('a handshake retry from the timers is flushed by the tick itself', async (t) => {
  const clock = new ManualClock();
  const socket = new RecordingSocket();
  const tun = new InjectTun();
  const agent = new Agent({
    privateKey: keyToBase64(generatePrivateKey()), address: parsePrefix('100.64.0.1/10'), mtu: 1420,
    peers: [{ publicKey: keyToBase64(publicKeyFromPrivate(generatePrivateKey())), allowedIps: [parseNetwork('100.64.0.2/32')], endpoint: { host: '127.0.0.1', port: 9 } }],
  }, { clock, logger: silentLogger(), openTun: () => tun, openUdpSocket: () => socket, aead: nodeCryptoAead });
  await agent.start();
  t.teardown(() => agent.stop());
  tun.handler!(slab([ipv4Packet('100.64.0.1', '100.64.0.2')], DEVICE_HEADROOM));
  t.is(socket.flushed.length, 1, 'the first packet starts a handshake');
  t.is(socket.flushed[0][0], MSG_INITIATION);
  clock.advance(5_500); // past REKEY_TIMEOUT: the timers retry
  const deadline = Date.now() + 3000;
  while (socket.flushed.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.is(socket.flushed.length, 2, 'the retry left without any other traffic');
  t.is(socket.flushed[1][0], MSG_INITIATION);
});
