/**
 * The test VIP's health checker: our stand-in for the company's LVS/keepalived. Runs inside
 * the hub namespace (Topology.startVipHealthCheck spawns it there), probes every relay's
 * member UDP port with a HELLO and expects a CHALLENGE back, and rewrites the VIP's nft
 * DNAT map to the live relays:
 *
 *   every --interval ms, per backend:  HELLO ─► relay:port   (timeout = interval)
 *                                      CHALLENGE ◄─            good
 *   --fall consecutive misses → removed;  --rise consecutive answers → added back.
 *
 * A HELLO costs the relay one BLAKE2s and no state (relay/challenge.ts), so probing is
 * cheap, and it exercises the relay's event loop, not just the kernel socket.
 *
 *   node dist/testbed/vip-health.js --table T --port 7000 --backends 10.93.1.2,10.93.2.2 \
 *     [--interval 200] [--fall 2] [--rise 2]
 *
 * Output: one JSON line per change {"event":"down"|"up","backend","live":[...],"t":ms}, and
 * {"event":"ready","live":[...]} once the first round is applied.
 */
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import yargs from 'yargs';
import { FrameType, encodeHello } from '../protocol';
import { vipLbCommands } from './topology';
import { systemBin } from './procs';

interface Backend {
  ip: string;
  up: boolean;
  good: number;
  bad: number;
  answered: boolean;
}

/** Pure: fold one probe result into a backend; true when its up/down state changed. */
export function applyProbe(b: Backend, ok: boolean, fall: number, rise: number): boolean {
  if (ok) {
    b.good++;
    b.bad = 0;
    if (!b.up && b.good >= rise) {
      b.up = true;
      return true;
    }
  } else {
    b.bad++;
    b.good = 0;
    if (b.up && b.bad >= fall) {
      b.up = false;
      return true;
    }
  }
  return false;
}

function nft(cmds: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = execFile(systemBin('nft'), ['-f', '-'], (err, _o, stderr) => (err ? reject(new Error(`nft: ${stderr || err.message}`)) : resolve()));
    p.stdin!.end(cmds.join('\n') + '\n');
  });
}

async function main(): Promise<void> {
  const a = await yargs(process.argv.slice(2)).strict()
    .option('table', { type: 'string', demandOption: true })
    .option('port', { type: 'number', demandOption: true })
    .option('backends', { type: 'string', demandOption: true })
    .option('interval', { type: 'number', default: 200 })
    .option('fall', { type: 'number', default: 2 })
    .option('rise', { type: 'number', default: 2 })
    .parseAsync();
  const port = a.port;
  // Start optimistic: every backend is in the set, the first failed probes take it out.
  const backends: Backend[] = a.backends.split(',').filter(Boolean).map((ip) => ({ ip, up: true, good: 0, bad: 0, answered: false }));
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, r));
  sock.on('message', (msg, rinfo) => {
    if (rinfo.port !== port || msg.length < 1 || msg[0] !== FrameType.CHALLENGE) return;
    const b = backends.find((x) => x.ip === rinfo.address);
    if (b) b.answered = true;
  });
  sock.on('error', () => undefined);
  const hello = encodeHello();
  const live = () => backends.filter((b) => b.up).map((b) => b.ip);
  let applied = '';
  const apply = async (): Promise<void> => {
    const key = live().join(',');
    if (key === applied) return;
    await nft(vipLbCommands(a.table, 'udp', port, live()));
    applied = key;
  };
  await apply();
  process.stdout.write(JSON.stringify({ event: 'ready', live: live(), t: Date.now() }) + '\n');
  let busy = false;
  const round = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const events: string[] = [];
      for (const b of backends) {
        const ok = b.answered;
        b.answered = false;
        if (applyProbe(b, ok, a.fall, a.rise)) events.push(JSON.stringify({ event: b.up ? 'up' : 'down', backend: b.ip, live: live(), t: Date.now() }));
      }
      if (events.length > 0) {
        await apply();
        for (const e of events) process.stdout.write(e + '\n');
      }
      for (const b of backends) sock.send(hello, port, b.ip);
    } catch (err) {
      process.stderr.write(`vip-health: ${(err as Error).message}\n`);
    } finally {
      busy = false;
    }
  };
  for (const b of backends) sock.send(hello, port, b.ip);
  const timer = setInterval(() => void round(), a.interval);
  const stop = () => {
    clearInterval(timer);
    sock.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`vip-health failed: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  });
}
