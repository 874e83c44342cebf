/**
 * SOCKS5 bulk throughput as a ratio to the plain overlay, in the same run (issue 4):
 * s1 (vpc2) downloads BYTES from a1 (vpc1) over the real overlay, once by a1's virtual IP
 * and once through the mapper's SOCKS5 front by a1's original IP. Median of --runs each.
 *
 *   npm run bench:socks [-- --bytes 268435456 --runs 3]
 */
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createTopology, randomPrefix, startJoinedOverlay, cliPath, repoRoot, median } from '../testbed';

export interface SocksOverlayResult {
  bytes: number;
  directMbps: number[];
  socksMbps: number[];
  ratio: number;
}

export async function runSocksOverlayBench(o: { bytes: number; runs: number }): Promise<SocksOverlayResult> {
  const fix = join(repoRoot(), 'bench/fixtures');
  const topo = await createTopology({ prefix: randomPrefix('isb') });
  try {
    const overlay = await startJoinedOverlay(topo);
    try {
      const token = await overlay.createToken();
      const a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token });
      await overlay.join('s1', topo.ns.vpc2, topo.addr.vpc2, { token });
      const server = topo.spawn(topo.ns.vpc1, process.execPath, [join(fix, 'blob-server.js'), '0.0.0.0', '9300', String(o.bytes)], { name: 'blob-server' });
      await server.waitForLine(/listening/);
      topo.spawn(topo.ns.vpc2, process.execPath, [cliPath(), 'mapper', '--redis', overlay.redisUrl, '--socks', '127.0.0.1:1080'], { name: 'mapper' });
      await topo.waitForListen(topo.ns.vpc2, 1080, 'tcp');
      const fetch = async (args: string[]) => {
        const r = await topo.exec(topo.ns.vpc2, process.execPath, [join(fix, 'fetch-client.js'), ...args], { timeoutMs: 300_000 });
        const res = JSON.parse(r.stdout.trim()) as { bytes: number; mbps: number };
        if (res.bytes !== o.bytes) throw new Error(`short read: ${res.bytes} of ${o.bytes}`);
        return res.mbps;
      };
      await fetch([a1.vip, '9300']); // warm-up: handshake, caches
      const directMbps: number[] = [];
      const socksMbps: number[] = [];
      for (let i = 0; i < o.runs; i++) {
        directMbps.push(await fetch([a1.vip, '9300']));
        socksMbps.push(await fetch([a1.originalIp, '9300', '127.0.0.1:1080']));
      }
      return { bytes: o.bytes, directMbps, socksMbps, ratio: median(socksMbps) / median(directMbps) };
    } finally {
      await overlay.stop();
    }
  } finally {
    await topo.destroy();
  }
}

if (require.main === module) {
  const a = yargs(hideBin(process.argv))
    .option('bytes', { type: 'number', default: 256 * 2 ** 20 })
    .option('runs', { type: 'number', default: 3 })
    .strict().parseSync();
  runSocksOverlayBench({ bytes: a.bytes, runs: a.runs }).then((r) => {
    const f = (v: number[]) => v.map((x) => x.toFixed(0)).join(' / ');
    process.stdout.write(`SOCKS5 bulk over the overlay (${(r.bytes / 2 ** 20).toFixed(0)} MiB, s1 ← a1, one relay):\n`
      + `  direct by virtual IP        ${f(r.directMbps)} Mbit/s\n`
      + `  SOCKS5 by original IP       ${f(r.socksMbps)} Mbit/s\n`
      + `  ratio SOCKS5 / overlay      ${r.ratio.toFixed(2)} (medians)\n`);
  }).catch((err: Error) => {
    process.stderr.write(`bench:socks: ${err.message}\n`);
    process.exit(1);
  });
}
