/**
 * A gateway (agent + `isthmus mapper --gateway`) against a direct member, in the same run
 * (issue 16): new connections per second and bulk throughput to a1 (vpc1).
 *
 *   direct:   s1 (vpc2, an agent) dials a1's virtual IP over the overlay
 *   gateway:  a caller in vpc2 (not using s1's agent) dials g1 (m1, 10.95.1.2) through the hub,
 *             SOCKS5 with proxy-user auth (RFC 1929), CONNECT to a1's original IP; g1 checks the
 *             user (cached after the first scrypt), the policy, and dials a1 over the overlay
 *
 * A "connect" is a whole short connection: (SOCKS5 greeting, auth, CONNECT,) the member's
 * 1-byte answer, close; CONCURRENCY loops for SECONDS. Bulk: BYTES from a blob server, median
 * of RUNS. Prints the ratios and writes bench/results/gateway.json.
 *
 *   npm run bench:gateway [-- --bytes 268435456 --runs 3 --seconds 5 --concurrency 16]
 */
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createTopology, randomPrefix, startJoinedOverlay, addMemberNamespace, cliPath, repoRoot, median } from '../testbed';

export interface GatewayBenchResult {
  date: string;
  host: { cores: number; cpuModel: string; node: string };
  settings: { bytes: number; runs: number; seconds: number; concurrency: number };
  connectsPerSecond: { direct: number[]; gateway: number[]; ratio: number };
  bulkMbps: { direct: number[]; gateway: number[]; ratio: number };
}

export async function runGatewayBench(o: { bytes: number; runs: number; seconds: number; concurrency: number }): Promise<GatewayBenchResult> {
  const fix = join(repoRoot(), 'bench/fixtures');
  const client = join(fix, 'gateway-client.js');
  const topo = await createTopology({ prefix: randomPrefix('isgw') });
  try {
    const overlay = await startJoinedOverlay(topo);
    const m1 = await addMemberNamespace(topo, 1);
    try {
      const token = await overlay.createToken();
      const a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token });
      await overlay.join('s1', topo.ns.vpc2, topo.addr.vpc2, { token });
      const g1 = await overlay.join('g1', m1.ns, m1.addr, { token });
      await topo.allowHubForward('to-vpc2', 'to-m1');
      await topo.exec(topo.ns.hub, 'sysctl', ['-qw', 'net.ipv4.conf.to-m1.forwarding=1']);
      await topo.exec(topo.ns.vpc2, 'ip', ['route', 'add', `${m1.addr}/32`, 'via', topo.addr.hubVpc2]);
      await topo.exec(m1.ns, 'ip', ['route', 'add', `${topo.addr.vpc2}/32`, 'via', '10.95.1.1']);
      const blob = topo.spawn(topo.ns.vpc1, process.execPath, [join(fix, 'blob-server.js'), '0.0.0.0', '9300', String(o.bytes)], { name: 'blob-server' });
      await blob.waitForLine(/listening/);
      const tiny = topo.spawn(topo.ns.vpc1, process.execPath, [join(fix, 'blob-server.js'), '0.0.0.0', '9301', '1'], { name: 'tiny-server' });
      await tiny.waitForLine(/listening/);
      topo.spawn(m1.ns, process.execPath, [cliPath(), 'mapper', '--gateway', '--redis', overlay.redisUrl, '--socks', '0.0.0.0:1080',
        '--agent-socket', join(g1.stateDir, 'agent.sock')], { name: 'gateway' });
      await topo.waitForListen(m1.ns, 1080, 'tcp');
      const u = await overlay.admin(['proxy-user', 'create', 'bench', '--tag', 'bench']);
      if (u.code !== 0) throw new Error(`proxy-user create: ${u.stderr}`);
      const env = { ...process.env, GATEWAY_PASS: u.stdout.trim().split('\n').pop()! };
      const viaGateway = [`${m1.addr}:1080`, 'bench'];

      const fetch = async (args: string[]) => {
        const r = await topo.exec(topo.ns.vpc2, process.execPath, [client, 'fetch', ...args], { timeoutMs: 300_000, env });
        const res = JSON.parse(r.stdout.trim()) as { bytes: number; mbps: number };
        if (res.bytes !== o.bytes) throw new Error(`short read: ${res.bytes} of ${o.bytes}`);
        return res.mbps;
      };
      const rate = async (args: string[]) => {
        const r = await topo.exec(topo.ns.vpc2, process.execPath, [client, 'rate', args[0]!, args[1]!, String(o.seconds), String(o.concurrency), ...args.slice(2)],
          { timeoutMs: (o.seconds + 60) * 1000, env });
        const res = JSON.parse(r.stdout.trim()) as { connects: number; failures: number; perSecond: number };
        if (res.failures > 0) throw new Error(`${res.failures} connections failed (${res.connects} succeeded)`);
        return res.perSecond;
      };
      // Warm-up: handshakes, caches, the proxy user's first (scrypt) check.
      await fetch([a1.vip, '9300']);
      await fetch([a1.originalIp, '9300', ...viaGateway]);
      const d = { conn: [] as number[], bulk: [] as number[] };
      const g = { conn: [] as number[], bulk: [] as number[] };
      for (let i = 0; i < o.runs; i++) {
        d.conn.push(await rate([a1.vip, '9301']));
        g.conn.push(await rate([a1.originalIp, '9301', ...viaGateway]));
        d.bulk.push(await fetch([a1.vip, '9300']));
        g.bulk.push(await fetch([a1.originalIp, '9300', ...viaGateway]));
      }
      return {
        date: new Date().toISOString(),
        host: { cores: cpus().length, cpuModel: cpus()[0]?.model ?? '?', node: process.version },
        settings: { ...o },
        connectsPerSecond: { direct: d.conn, gateway: g.conn, ratio: median(g.conn) / median(d.conn) },
        bulkMbps: { direct: d.bulk, gateway: g.bulk, ratio: median(g.bulk) / median(d.bulk) },
      };
    } finally {
      await overlay.stop();
      await m1.remove();
    }
  } finally {
    await topo.destroy();
  }
}

if (require.main === module) {
  const a = yargs(hideBin(process.argv))
    .option('bytes', { type: 'number', default: 256 * 2 ** 20, describe: 'Bulk transfer size' })
    .option('runs', { type: 'number', default: 3, describe: 'Runs of each measurement (medians are compared)' })
    .option('seconds', { type: 'number', default: 5, describe: 'Length of each connection-rate run' })
    .option('concurrency', { type: 'number', default: 16, describe: 'Connection loops in parallel' })
    .strict().parseSync();
  runGatewayBench({ bytes: a.bytes, runs: a.runs, seconds: a.seconds, concurrency: a.concurrency }).then((r) => {
    const f = (v: number[]) => v.map((x) => x.toFixed(0)).join(' / ');
    const dir = join(repoRoot(), 'bench/results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'gateway.json'), JSON.stringify(r, null, 2) + '\n');
    process.stdout.write(`Gateway vs direct member (a1 in vpc1; ${r.host.cores} cores, ${r.host.cpuModel}):\n`
      + `  connections/s, direct member by virtual IP      ${f(r.connectsPerSecond.direct)}\n`
      + `  connections/s, gateway (SOCKS5 + auth + policy)  ${f(r.connectsPerSecond.gateway)}\n`
      + `  ratio gateway / direct                            ${r.connectsPerSecond.ratio.toFixed(2)} (medians, ${r.settings.concurrency} in parallel)\n`
      + `  bulk Mbit/s, direct member                        ${f(r.bulkMbps.direct)}\n`
      + `  bulk Mbit/s, gateway                              ${f(r.bulkMbps.gateway)}\n`
      + `  ratio gateway / direct                            ${r.bulkMbps.ratio.toFixed(2)} (medians, ${(r.settings.bytes / 2 ** 20).toFixed(0)} MiB)\n`
      + `written to bench/results/gateway.json\n`);
  }).catch((err: Error) => {
    process.stderr.write(`bench:gateway: ${err.message}\n`);
    process.exit(1);
  });
}
