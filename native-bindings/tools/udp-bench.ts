/**
 * Loopback UDP micro-benchmark: native recvmmsg/sendmmsg sockets vs node:dgram, one
 * process, 1420-byte datagrams. Prints datagrams/s received (sender and receiver share
 * the event loop, so this is a crossing-cost comparison, not a NIC benchmark).
 *
 *   node --import=tsx native-bindings/tools/udp-bench.ts [seconds-per-case]
 */
import dgram from 'node:dgram';
import { parseAddr } from '../../common';
import { openUdpSocket } from '../index';

const SECONDS = Number(process.argv[2] ?? 1);
const PKT = 1420;
const BATCH = 128;
const LOOP = parseAddr('127.0.0.1');
const payload = Buffer.alloc(PKT, 0xab);

function report(name: string, received: number, sent: number, secs: number): void {
  console.log(`${name.padEnd(22)} ${Math.round(received / secs).toString().padStart(9)} datagrams/s received  (${Math.round(sent / secs)} sent/s)`);
}

async function native(): Promise<void> {
  const rx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  const tx = openUdpSocket({ host: '127.0.0.1', port: 0 });
  let received = 0;
  let sent = 0;
  rx.onReceive((b) => (received += b.count));
  const start = process.hrtime.bigint();
  const stopAt = Date.now() + SECONDS * 1000;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (Date.now() >= stopAt) return resolve();
      for (let i = 0; i < BATCH; i++) tx.send(payload, 0, PKT, LOOP, rx.localAddress.port);
      tx.flush();
      sent += BATCH;
      setImmediate(pump);
    };
    pump();
  });
  report('native (mmsg, batch 128)', received, sent, Number(process.hrtime.bigint() - start) / 1e9);
  rx.close();
  tx.close();
}

async function node(): Promise<void> {
  const rx = dgram.createSocket('udp4');
  const tx = dgram.createSocket('udp4');
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
  await new Promise<void>((r) => tx.bind(0, '127.0.0.1', r));
  const port = rx.address().port;
  let received = 0;
  let sent = 0;
  rx.on('message', () => received++);
  const start = process.hrtime.bigint();
  const stopAt = Date.now() + SECONDS * 1000;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (Date.now() >= stopAt) return resolve();
      for (let i = 0; i < BATCH; i++) tx.send(payload, port, '127.0.0.1');
      sent += BATCH;
      setImmediate(pump);
    };
    pump();
  });
  report('node:dgram', received, sent, Number(process.hrtime.bigint() - start) / 1e9);
  rx.close();
  tx.close();
}

native().then(node).catch((e) => {
  console.error(e);
  process.exit(1);
});
