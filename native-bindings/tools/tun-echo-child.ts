/**
 * Child process for test/netns/tun-device.test.ts, run INSIDE a test namespace
 * (`ip netns exec NS node --import=tsx tun-echo-child.ts MODE ...`), because a TUN device
 * belongs to the namespace of the process that creates it. Prints JSON lines on stdout.
 *
 *   echo NAME ADDR COUNT  open NAME with ADDR, print {ready}, answer COUNT ICMP echo
 *                         requests read from the TUN, then print {done, ...} and exit
 *   errors               exercise error paths, print {errors: {...}}
 *   eperm                try to open a TUN (run unprivileged), print {code, message}
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { formatAddr, parsePrefix } from '../../common';
import { openTun } from '../index';

function out(o: unknown): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

/** RFC 1071 ones'-complement sum over b[off, off+len). */
function checksum(b: Buffer, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i + 1 < len; i += 2) s += b.readUInt16BE(off + i);
  if (len & 1) s += b[off + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function errInfo(f: () => unknown): { code?: string; name?: string; message?: string } {
  try {
    const r = f() as { close?: () => void };
    r?.close?.();
    return {};
  } catch (e) {
    const x = e as { code?: string; name?: string; message?: string };
    return { code: x.code, name: x.name, message: x.message };
  }
}

/** UDP datagrams queued into the TUN before polling starts, so they arrive as one batch. */
const UDP_SIZES = [1, 100, 555, 1000, 1392];

async function runEcho(name: string, address: string, count: number): Promise<void> {
  const tun = openTun({ name, address, batchSize: 16 });
  // Traffic to 10.77.0.2 is routed into the TUN; nothing reads it until onReceive.
  const own = parsePrefix(address).addr;
  const peer = formatAddr(((own & 0xffffff00) | 2) >>> 0);
  const udp = dgram.createSocket('udp4');
  const udpEchoes: number[] = [];
  udp.on('message', (m) => udpEchoes.push(m.length));
  await new Promise<void>((r) => udp.bind(0, formatAddr(own), r));
  for (const size of UDP_SIZES) {
    await new Promise<void>((r, j) => udp.send(Buffer.alloc(size, size & 0xff), 9999, peer, (e) => (e ? j(e) : r())));
  }
  const reply = Buffer.alloc(tun.mtu);
  const packets: { len: number; version: number; ihl: number; totalLength: number; proto: number; type: number; src: string; dst: string; offsetOk: boolean }[] = [];
  const batchCounts: number[] = [];
  let replied = 0;
  const finish = (reason: string): void => {
    const link = execFileSync('ip', ['-j', 'addr', 'show', 'dev', tun.name], { encoding: 'utf8' });
    const stats = tun.stats;
    tun.close();
    udp.close();
    // The interface is non-persistent: it must vanish with the fd.
    const goneAfterClose = !existsSync(`/sys/class/net/${tun.name}`);
    out({ done: true, reason, udpSizes: UDP_SIZES, udpEchoes, name: tun.name, mtu: tun.mtu, headroom: tun.headroom, link: JSON.parse(link), stats, packets, batchCounts, replied, goneAfterClose });
    process.exit(0);
  };
  const timer = setTimeout(() => finish('timeout'), 15000);
  tun.onReceive((b) => {
    batchCounts.push(b.count);
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i]!;
      const len = b.lengths[i]!;
      const d = b.data;
      const ihl = (d[off]! & 0x0f) * 4;
      const info = {
        len, version: d[off]! >> 4, ihl, totalLength: d.readUInt16BE(off + 2), proto: d[off + 9]!,
        type: d[off + ihl]!, src: [...d.subarray(off + 12, off + 16)].join('.'), dst: [...d.subarray(off + 16, off + 20)].join('.'),
        offsetOk: (off - tun.headroom) % tun.slotSize === 0 && off >= tun.headroom,
      };
      packets.push(info);
      if (info.version === 4 && info.proto === 17 && len <= reply.length) {
        // UDP echo: swap addresses and ports; checksum 0 means "none" for UDP over IPv4.
        d.copy(reply, 0, off, off + len);
        d.copy(reply, 12, off + 16, off + 20);
        d.copy(reply, 16, off + 12, off + 16);
        reply.writeUInt16BE(d.readUInt16BE(off + ihl + 2), ihl);
        reply.writeUInt16BE(d.readUInt16BE(off + ihl), ihl + 2);
        reply.writeUInt16BE(0, ihl + 6);
        tun.write(reply, 0, len);
        continue;
      }
      if (info.version !== 4 || info.proto !== 1 || info.type !== 8 || len > reply.length) continue;
      // Echo reply: swap addresses, type 0, fresh checksums.
      d.copy(reply, 0, off, off + len);
      d.copy(reply, 12, off + 16, off + 20);
      d.copy(reply, 16, off + 12, off + 16);
      reply.writeUInt16BE(0, 10);
      reply.writeUInt16BE(checksum(reply, 0, ihl), 10);
      reply[ihl] = 0;
      reply.writeUInt16BE(0, ihl + 2);
      reply.writeUInt16BE(checksum(reply, ihl, len - ihl), ihl + 2);
      tun.write(reply, 0, len);
      replied++;
    }
    tun.flush();
    if (replied >= count) {
      clearTimeout(timer);
      // Let the kernel deliver the last reply before the device goes away.
      setTimeout(() => finish('count'), 100);
    }
  });
  out({ ready: true, name: tun.name });
}

function runErrors(prefix: string): void {
  const a = openTun({ name: `${prefix}a` });
  const errors = {
    badAddress: errInfo(() => openTun({ name: `${prefix}b`, address: '10.77.0.1' })),
    badAddress2: errInfo(() => openTun({ name: `${prefix}b`, address: '10.77.0.300/24' })),
    longName: errInfo(() => openTun({ name: 'x'.repeat(16) })),
    busy: errInfo(() => openTun({ name: `${prefix}a` })),
    badMtu: errInfo(() => openTun({ name: `${prefix}c`, mtu: 10 })),
  };
  const pattern = openTun({ name: `${prefix}%d`, mtu: 1280 });
  const patternName = pattern.name;
  const mtuLine = execFileSync('ip', ['-o', 'link', 'show', 'dev', patternName], { encoding: 'utf8' });
  pattern.close();
  // Offloads: on by default (the kernel shows TSO on the device), off when asked.
  const tso = (name: string) => /^\s*tx-tcp-segmentation: on/m.test(execFileSync('ethtool', ['-k', name], { encoding: 'utf8' }));
  const plain = openTun({ name: `${prefix}d`, offload: false });
  const offload = { defaultOn: a.offload, defaultTso: tso(a.name), offOn: plain.offload, offTso: tso(plain.name) };
  plain.close();
  a.close();
  const leftovers = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n').filter((l) => l.includes(prefix)).length;
  out({ errors, patternName, patternMtu1280: / mtu 1280 /.test(mtuLine), leftovers, offload });
}

function runEperm(): void {
  out(errInfo(() => openTun({ name: 'itn1eperm' })));
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'echo') {
  runEcho(args[0]!, args[1]!, Number(args[2])).catch((e) => {
    out({ error: String(e) });
    process.exit(1);
  });
}
else if (mode === 'errors') runErrors(args[0]!);
else if (mode === 'eperm') runEperm();
else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
