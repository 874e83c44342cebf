/**
 * Mapper benchmark, bounded in time (each phase `phaseMs`):
 *   api      GET /v1/map/:ip over keep-alive HTTP, `concurrency` in flight → lookups/s, p50, p99
 *   sdk      Mapper.resolve with its cache (hits) and with ttl 0 (every call an API request)
 *   connect  SOCKS5 CONNECTs/s on loopback (greeting + request + reply + close)
 *   bulk     bytes through SOCKS5 vs the same transfer dialed directly, as a ratio
 * Needs a redis-server binary (or --redis URL / ISTHMUS_REDIS to use an existing server; it
 * writes keys under a private prefix and deletes them afterwards).
 *
 *   npx tsx bench/mapper.ts [--phase-ms 3000]
 */
import http from 'node:http';
import net from 'node:net';
import { Redis } from 'ioredis';
import { redisKeys } from '../common';
import { startMapperService, Mapper, Command, encodeRequest } from '../mapper';
import { startRedis } from '../testbed';

export interface MapperBenchOptions {
  /** @default 3000 */
  phaseMs?: number;
  /** @default 32 */
  concurrency?: number;
  /** @default 1000 */
  members?: number;
  /** bytes per bulk transfer @default 128 MiB */
  bulkBytes?: number;
  redisUrl?: string;
}

export interface Rate { perSec: number; p50Ms: number; p99Ms: number; count: number }
export interface MapperBenchResult {
  api: Rate;
  sdkCached: Rate;
  sdkUncached: Rate;
  socksConnect: Rate;
  bulk: { socksMiBps: number; directMiBps: number; ratio: number };
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN;
}

async function closedLoop(phaseMs: number, concurrency: number, op: (i: number) => Promise<void>): Promise<Rate> {
  const lat: number[] = [];
  const until = performance.now() + phaseMs;
  let i = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      const t0 = performance.now();
      await op(i++);
      lat.push(performance.now() - t0);
    }
  }));
  const secs = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  return { perSec: Math.round(lat.length / secs), p50Ms: +quantile(lat, 0.5).toFixed(3), p99Ms: +quantile(lat, 0.99).toFixed(3), count: lat.length };
}


/** One SOCKS5 CONNECT, no auth; resolves with the connected socket (reply consumed). */
function socksConnect(proxyPort: number, host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(proxyPort, '127.0.0.1');
    s.setNoDelay(true);
    let buf = Buffer.alloc(0);
    s.once('connect', () => s.write(Buffer.concat([Buffer.from([5, 1, 0]), encodeRequest(Command.Connect, host, port)])));
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 + 10) return;
      s.removeListener('data', onData);
      if (buf[3] !== 0) { s.destroy(); reject(new Error(`socks reply ${buf[3]}`)); return; }
      if (buf.length > 12) s.unshift(buf.subarray(12));
      resolve(s);
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

async function receiveAll(s: net.Socket): Promise<number> {
  let n = 0;
  await new Promise<void>((resolve, reject) => { s.on('data', (d: Buffer) => { n += d.length; }); s.once('end', resolve); s.once('error', reject); });
  s.destroy();
  return n;
}

export async function runMapperBench(opts: MapperBenchOptions = {}): Promise<MapperBenchResult> {
  const phaseMs = opts.phaseMs ?? 3000;
  const conc = opts.concurrency ?? 32;
  const members = opts.members ?? 1000;
  const bulkBytes = opts.bulkBytes ?? 128 * 1024 * 1024;
  const own = opts.redisUrl ? undefined : await startRedis();
  const url = opts.redisUrl ?? own!.url;
  const prefix = `isthmus-bench-${process.pid}:`;
  const k = redisKeys(prefix);
  const r = new Redis(url);
  // Members 10.200.x.y → 127.0.x.y (loopback stands in for virtual IPs).
  const ips: string[] = [];
  const p = r.pipeline();
  for (let i = 0; i < members; i++) {
    const orig = `10.200.${i >> 8}.${(i & 255) || 1}`;
    const vip = `127.1.${i >> 8}.${(i & 255) || 1}`;
    ips.push(orig);
    p.set(k.orig(orig), vip);
    p.hset(k.node(vip), { orig, pub: 'x', hostname: `m${i}`, tags: '[]', lastSeen: String(Date.now()) });
    p.hset(k.session(vip), { relayIp: '192.0.2.1', relayPort: '51820', agentIp: '198.51.100.1', agentPort: '4000', relayId: 'r', since: '1' });
  }
  await p.exec();
  const sink = net.createServer((s) => { s.on('error', () => undefined); s.end(); });
  const chunk = Buffer.alloc(1 << 20, 7);
  const source = net.createServer((s) => {
    s.on('error', () => undefined);
    let sent = 0;
    const pump = () => { while (sent < bulkBytes) { sent += chunk.length; if (!s.write(chunk)) { s.once('drain', pump); return; } } s.end(); };
    pump();
  });
  await Promise.all([new Promise<void>((res) => sink.listen(0, '127.1.0.1', res)), new Promise<void>((res) => source.listen(0, '127.1.0.1', res))]);
  const sinkPort = (sink.address() as net.AddressInfo).port;
  const sourcePort = (source.address() as net.AddressInfo).port;
  const svc = await startMapperService({ redis: url, prefix, api: { host: '127.0.0.1', port: 0 }, socks: { host: '127.0.0.1', port: 0 }, overlayCidr: '127.0.0.0/8' });
  const apiPort = svc.addresses.api!.port;
  const socksPort = svc.addresses.socks!.port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
  try {
    const get = (path: string) => new Promise<void>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: apiPort, path, agent }, (res) => { res.resume(); res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)))); }).on('error', reject);
    });
    const api = await closedLoop(phaseMs, conc, (i) => get(`/v1/map/${ips[i % ips.length]}`));
    const cached = new Mapper({ url: `http://127.0.0.1:${apiPort}`, ttlMs: 60_000 });
    const sdkCached = await closedLoop(phaseMs, conc, async (i) => { await cached.resolve(ips[i % ips.length]!); });
    const uncached = new Mapper({ url: `http://127.0.0.1:${apiPort}`, ttlMs: 0, negativeTtlMs: 0 });
    const sdkUncached = await closedLoop(phaseMs, conc, async (i) => { await uncached.resolve(ips[i % ips.length]!); });
    const socksConnectRate = await closedLoop(phaseMs, Math.min(conc, 16), async () => {
      const s = await socksConnect(socksPort, ips[0]!, sinkPort);
      await receiveAll(s);
    });
    const t0 = performance.now();
    const viaSocks = await receiveAll(await socksConnect(socksPort, ips[0]!, sourcePort));
    const socksSecs = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const direct = await receiveAll(net.connect(sourcePort, '127.1.0.1'));
    const directSecs = (performance.now() - t1) / 1000;
    const socksMiBps = viaSocks / 1048576 / socksSecs;
    const directMiBps = direct / 1048576 / directSecs;
    return {
      api, sdkCached, sdkUncached, socksConnect: socksConnectRate,
      bulk: { socksMiBps: Math.round(socksMiBps), directMiBps: Math.round(directMiBps), ratio: +(socksMiBps / directMiBps).toFixed(3) },
    };
  } finally {
    agent.destroy();
    await svc.stop();
    sink.close();
    source.close();
    const keys = await r.keys(`${prefix}*`);
    for (let i = 0; i < keys.length; i += 500) await r.del(...keys.slice(i, i + 500));
    r.disconnect();
    await own?.stop();
  }
}

export function formatMapperBench(b: MapperBenchResult): string {
  const row = (name: string, x: Rate) => `${name.padEnd(22)} ${String(x.perSec).padStart(8)}/s   p50 ${x.p50Ms.toFixed(3)} ms   p99 ${x.p99Ms.toFixed(3)} ms   (n=${x.count})`;
  return [
    row('API lookups', b.api),
    row('SDK lookups (cached)', b.sdkCached),
    row('SDK lookups (ttl 0)', b.sdkUncached),
    row('SOCKS5 CONNECTs', b.socksConnect),
    `SOCKS5 bulk            ${b.bulk.socksMiBps} MiB/s vs direct ${b.bulk.directMiBps} MiB/s (ratio ${b.bulk.ratio})`,
  ].join('\n');
}

if (require.main === module) {
  const arg = (name: string) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
  runMapperBench({ phaseMs: Number(arg('--phase-ms') ?? 3000), redisUrl: arg('--redis') ?? process.env.ISTHMUS_REDIS })
    .then((b) => { process.stdout.write(formatMapperBench(b) + '\n'); process.exit(0); })
    .catch((err: Error) => { process.stderr.write(`bench/mapper: ${err.message}\n`); process.exit(1); });
}
