/**
 * `npm run bench` (compiled to dist/bench/run.js, plain node, root): builds the three-namespace
 * topology once and measures every subject through it with the same iperf3 and ping commands —
 * TCP 1 and 4 streams in both directions, ping RTT, CPU per GB — then prints a table with the
 * first subject's ratio to each of the others and writes bench/results/latest.{json,svg}.
 *
 *   node dist/bench/run.js [--duration 5] [--omit 1] [--runs 1] [--only wireguard-go,...]
 */
import { isthmusRelaySubject, isthmusMeshSubject, median, runIperf, runPing, runUdpPps, waitForPing, buildTcpRr, runSockperfRr, runTcpRr, type RrResult, type IperfCase, type IperfResult, wireguardGoHubSubject, wireguardGoCurrentSubject, nebulaRelaySubject, run, sleep, systemBin, type BenchSubject, type SubjectFactory, createTopology, randomPrefix, type Topology } from '../testbed';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import yargs from 'yargs';
import { formatReport, renderSvg, type BenchReport, type CaseSummary, type SubjectResult } from './report';

/**
 * Every subject, in report order. The first one is "ours": the table gives its ratio to each of
 * the others. To add a subject, write testbed/peers/<name>.ts exporting a SubjectFactory and list it
 * here (isthmus goes first).
 */
export const SUBJECTS: readonly SubjectFactory[] = [
  isthmusRelaySubject,
  () => isthmusMeshSubject('same'),
  () => isthmusMeshSubject('cross'),
  wireguardGoHubSubject,
  wireguardGoCurrentSubject,
  nebulaRelaySubject,
];

/** Debian package that provides each tool a subject may need; the bench installs missing ones. */
const TOOL_PACKAGES: Record<string, string> = {
  'iperf3': 'iperf3', 'ping': 'iputils-ping', 'ip': 'iproute2', 'nft': 'nftables', 'ss': 'iproute2',
  'redis-server': 'redis-server', 'redis-cli': 'redis-tools', 'wireguard-go': 'wireguard-go', 'wg': 'wireguard-tools', 'nebula': 'nebula', 'nebula-cert': 'nebula',
  'sockperf': 'sockperf', 'cc': 'gcc',
};

const IPERF_PORT = 5201;
const SOCKPERF_PORT = 11111;
/** Echo requests through the path before idle RTT is measured (V8 optimizes a function after a few thousand calls). */
const WARMUP_PINGS = 3000;
const TCP_RR_PORT = 5202;

async function ensureTools(tools: readonly string[]): Promise<void> {
  const missing = [...new Set(tools)].filter((t) => !systemBin(t).startsWith('/'));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))];
  process.stderr.write(`installing missing tools: apt-get install -y ${pkgs.join(' ')}\n`);
  await run('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], {
    timeoutMs: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

function repoRoot(): string {
  for (let d = __dirname; d !== dirname(d); d = dirname(d)) {
    const pj = join(d, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'isthmus') return d;
  }
  return process.cwd();
}

interface RunSettings {
  durationS: number;
  omitS: number;
  runs: number;
  streams: number[];
  pingCount: number;
  pingIntervalS: number;
  pps: boolean;
  /** Request/response: RR over these connection counts, CRR with these many in flight; undefined: skipped (--no-rr). */
  rr?: { rrConns: number[]; crrConns: number[]; tcpRrBin: string };
}

/**
 * RR and CRR (bench/native/tcp-rr.c, sockperf for one connection) through the subject, each case
 * `runs` times, the median run (by transactions/s) kept. Servers live in vpc2 only while measuring.
 */
async function measureRr(topo: Topology, ep: { serverAddr: string; clientAddr: string }, s: RunSettings,
  rr: NonNullable<RunSettings['rr']>, log: (m: string) => void): Promise<RrResult[]> {
  const opts = { durationS: s.durationS, omitS: s.omitS };
  const out: RrResult[] = [];
  const pick = async (label: string, once: () => Promise<RrResult>) => {
    const runs: RrResult[] = [];
    for (let i = 0; i < s.runs; i++) runs.push(await once());
    runs.sort((a, b) => a.transactionsPerSec - b.transactionsPerSec);
    const r = runs[(runs.length - 1) >> 1]!;
    out.push(r);
    log(`${label}: ${r.transactionsPerSec.toFixed(0)} transactions/s, p50 ${r.p50Us.toFixed(0)} µs, p99 ${r.p99Us.toFixed(0)} µs` +
      (r.errors ? `, ${r.errors} errors` : ''));
  };
  const tcpRr = topo.spawn(topo.ns.vpc2, rr.tcpRrBin, ['server', ep.serverAddr, String(TCP_RR_PORT)]);
  try {
    await topo.waitForListen(topo.ns.vpc2, TCP_RR_PORT, 'tcp');
    for (const n of rr.rrConns) {
      if (n === 1) {
        const sp = topo.spawn(topo.ns.vpc2, 'sockperf', ['server', '--tcp', '-i', ep.serverAddr, '-p', String(SOCKPERF_PORT)]);
        try {
          await topo.waitForListen(topo.ns.vpc2, SOCKPERF_PORT, 'tcp');
          await pick('RR 1 connection (sockperf)', () => runSockperfRr(topo, ep.serverAddr, ep.clientAddr, SOCKPERF_PORT, opts));
        } finally {
          await sp.stop();
        }
      } else {
        await pick(`RR ${n} connections`, () => runTcpRr(topo, rr.tcpRrBin, 'rr', n, ep.serverAddr, ep.clientAddr, TCP_RR_PORT, opts));
      }
    }
    for (const n of rr.crrConns) {
      await pick(`CRR ${n} in flight`, () => runTcpRr(topo, rr.tcpRrBin, 'crr', n, ep.serverAddr, ep.clientAddr, TCP_RR_PORT, opts));
    }
  } finally {
    await tcpRr.stop();
  }
  return out;
}

async function measure(topo: Topology, subject: BenchSubject, s: RunSettings): Promise<SubjectResult> {
  const result: SubjectResult = { name: subject.name, description: await subject.describe().catch(() => subject.name), cases: [] };
  const log = (m: string) => process.stderr.write(`[${subject.name}] ${m}\n`);
  try {
    log('setting up');
    const ep = await subject.setup(topo);
    await waitForPing(topo, ep.serverAddr, 30_000);
    const server = topo.spawn(topo.ns.vpc2, 'iperf3', ['-s', '-B', ep.serverAddr, '-p', String(IPERF_PORT)]);
    try {
      await topo.waitForListen(topo.ns.vpc2, IPERF_PORT, 'tcp');
      // First the path as setup left it (a JIT runtime has run only the handshake and a few
      // packets), then WARMUP_PINGS echoes 0.2 ms apart, not counted, then idle RTT: the same
      // for every subject, so "idle" means a running member's idle path, not a cold start.
      result.coldPing = await runPing(topo, ep.serverAddr, s.pingCount, s.pingIntervalS);
      await topo.exec(topo.ns.vpc1, 'ping', ['-n', '-q', '-c', String(WARMUP_PINGS), '-i', '0.0002', '-W', '1', ep.serverAddr],
        { check: false, timeoutMs: 60_000 });
      result.ping = await runPing(topo, ep.serverAddr, s.pingCount, s.pingIntervalS);
      log(`ping median ${result.ping.medianMs.toFixed(3)} ms (right after setup: ${result.coldPing.medianMs.toFixed(3)} ms)`);
      if (s.rr) {
        try {
          result.rr = await measureRr(topo, ep, s, s.rr, log);
        } catch (err) {
          // Costs only the RR figures, not the subject's throughput results.
          result.rrError = (err as Error).message;
          log(`RR/CRR failed: ${result.rrError}`);
        }
      }
      const pids = () => [...(ep.pids?.() ?? []), server.pid];
      const iperfOpts = { durationS: s.durationS, omitS: s.omitS, port: IPERF_PORT };
      const measureCase = async (streams: number, reverse: boolean): Promise<void> => {
        const c: IperfCase = { streams, reverse };
        const runs: IperfResult[] = [];
        for (let i = 0; i < s.runs; i++) {
          const iperf = runIperf(topo, ep.serverAddr, ep.clientAddr, c, iperfOpts, pids);
          if (i === 0 && !reverse && streams === s.streams[0]) {
            // Latency under load: ping through the same path while the first stream runs.
            const count = Math.max(5, Math.min(100, Math.floor((s.durationS - 0.5) / s.pingIntervalS)));
            // Memory under load: resident set of the hub process and the members, mid-run.
            const [res, loaded, rss] = await Promise.all([iperf,
              sleep(s.omitS * 1000).then(() => runPing(topo, ep.serverAddr, count, s.pingIntervalS)),
              sleep((s.omitS + s.durationS / 2) * 1000).then(() => (ep.pids?.() ?? []).map(rssMiB))]);
            runs.push(res);
            result.loadedPing = loaded;
            if (rss.length > 0) result.rssMiB = { hub: rss[0]!, memberMax: Math.max(0, ...rss.slice(1)) };
            log(`ping under load median ${loaded.medianMs.toFixed(3)} ms`);
          } else {
            runs.push(await iperf);
          }
        }
        const summary: CaseSummary = {
          streams, reverse, runs,
          gbps: median(runs.map((r) => r.bitsPerSecond)) / 1e9,
          machineCpuSPerGB: median(runs.map((r) => r.machineCpuSPerGB)),
          procCpuSPerGB: median(runs.map((r) => r.procCpuSPerGB)),
        };
        result.cases.push(summary);
        log(`${streams} stream(s) ${reverse ? 'vpc2→vpc1' : 'vpc1→vpc2'}: ${summary.gbps.toFixed(3)} Gbit/s`);
      };
      for (const streams of s.streams) {
        for (const reverse of [false, true]) {
          try {
            await measureCase(streams, reverse);
          } catch (err) {
            // A failed iperf3 case costs only that case's figures, not the subject's others.
            const why = `${streams}x ${reverse ? 'vpc2→vpc1' : 'vpc1→vpc2'}: ${(err as Error).message}`;
            (result.caseErrors ??= []).push(why);
            log(`case failed: ${why}`);
          }
        }
      }
      if (s.pps) {
        // A flood of tiny datagrams can upset iperf3's control connection: one retry, and a
        // failure here costs only the pps figure, not the subject's TCP results.
        for (let attempt = 1; attempt <= 2 && !result.udp64; attempt++) {
          try {
            const pps = await runUdpPps(topo, ep.serverAddr, ep.clientAddr, iperfOpts);
            result.udp64 = pps;
            log(`64-byte UDP: ${(pps.receivedPps / 1000).toFixed(1)} kpps received (${pps.lossPercent.toFixed(1)}% lost)`);
          } catch (err) {
            result.udp64Error = (err as Error).message;
            log(`64-byte UDP attempt ${attempt} failed: ${result.udp64Error}`);
            await sleep(1000);
          }
        }
        if (result.udp64) delete result.udp64Error;
      }
    } finally {
      await server.stop();
    }
  } catch (err) {
    result.error = (err as Error).message;
    log(`FAILED: ${result.error}`);
  } finally {
    await subject.teardown().catch((err: Error) => log(`teardown: ${err.message}`));
  }
  return result;
}

/** Resident set size of a process in MiB (NaN when it is gone). */
function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv).strict()
    .option('duration', { type: 'number', default: 5, describe: 'seconds per iperf3 run (after warm-up)' })
    .option('omit', { type: 'number', default: 1, describe: 'warm-up seconds excluded (iperf3 -O)' })
    .option('runs', { type: 'number', default: 1, describe: 'runs per case; the median is reported' })
    .option('streams', { type: 'string', default: '1,4', describe: 'parallel streams per case (iperf3 -P)' })
    .option('ping-count', { type: 'number', default: 20 })
    .option('ping-interval', { type: 'number', default: 0.05 })
    .option('pps', { type: 'boolean', default: true, describe: 'also measure 64-byte UDP packets/s (--no-pps to skip)' })
    .option('rr', { type: 'boolean', default: true, describe: 'also measure request/response rates, TCP_RR and TCP_CRR style (--no-rr to skip)' })
    .option('rr-conns', { type: 'string', default: '1,64', describe: 'RR: concurrent connections per case (1 = sockperf, more = tcp-rr)' })
    .option('crr-conns', { type: 'string', default: '1,64', describe: 'CRR: connections in flight per case' })
    .option('busy-poll', { type: 'string', describe: 'comma-separated --busy-poll values for the isthmus subject (agents and relay), each measured as its own subject in this order, e.g. 0,50us,0,50us,0,50us to alternate' })
    .option('only', { type: 'string', describe: 'comma-separated subject names' })
    .option('prefix', { type: 'string', describe: 'namespace prefix (default isth + 4 random hex)' })
    .option('out', { type: 'string', describe: 'results directory (default <repo>/bench/results)' })
    .help().parseAsync();
  if (process.getuid?.() !== 0) {
    process.stderr.write('npm run bench needs root: it builds network namespaces (run it as root)\n');
    return 1;
  }
  const only = a.only?.split(',').map((x) => x.trim());
  const busyPolls = a['busy-poll']?.split(',').map((x) => x.trim());
  if (busyPolls?.some((v) => !/^(0|\d+(\.\d+)?(us|µs|ms))$/.test(v))) {
    process.stderr.write(`--busy-poll wants a comma-separated list of durations like 0,50us,0.1ms, got '${a['busy-poll']}'\n`);
    return 1;
  }
  // Each --busy-poll value is an isthmus subject of its own (isthmus+bp<value>#<k>), in order.
  const seen = new Map<string, number>();
  const factories: SubjectFactory[] = !busyPolls ? [...SUBJECTS] : SUBJECTS.flatMap((f) => f !== isthmusRelaySubject ? [f]
    : busyPolls.map((v) => {
      const k = (seen.get(v) ?? 0) + 1;
      seen.set(v, k);
      return () => isthmusRelaySubject({ busyPoll: v, name: `isthmus+bp${v}#${k}` });
    }));
  const onlyMatch = (name: string) => !only || only.includes(name) || (busyPolls !== undefined && only.includes('isthmus') && name.startsWith('isthmus+bp'));
  const subjects = factories.map((f) => f()).filter((s) => onlyMatch(s.name)).filter((s) => {
    const why = s.unavailable?.();
    if (why) process.stderr.write(`skipping ${s.name}: ${why}\n`);
    return !why;
  });
  if (subjects.length === 0) {
    process.stderr.write(`no subject selected; known: ${SUBJECTS.map((f) => f().name).join(', ')}\n`);
    return 1;
  }
  const counts = (flag: string, v: string): number[] | undefined => {
    const xs = v.split(',').map((x) => Number(x.trim()));
    if (xs.some((x) => !Number.isInteger(x) || x < 1 || x > 10_000)) {
      process.stderr.write(`--${flag} wants a comma-separated list of integers 1..10000, got '${v}'\n`);
      return undefined;
    }
    return xs;
  };
  const rrConns = counts('rr-conns', a['rr-conns']);
  const crrConns = counts('crr-conns', a['crr-conns']);
  if (!rrConns || !crrConns) return 1;
  await ensureTools(['iperf3', 'ping', 'ip', 'nft', 'ss', ...(a.rr ? ['sockperf', 'cc'] : []), ...subjects.flatMap((s) => s.requires ?? [])]);
  const tcpRr = a.rr ? await buildTcpRr(join(repoRoot(), 'bench', 'native', 'tcp-rr.c')) : undefined;
  const settings: RunSettings = {
    durationS: a.duration, omitS: a.omit, runs: a.runs, streams: a.streams.split(',').map(Number),
    pingCount: a['ping-count'], pingIntervalS: a['ping-interval'], pps: a.pps,
    ...(tcpRr ? { rr: { rrConns, crrConns, tcpRrBin: tcpRr.bin } } : {}),
  };
  // Relay namespaces for the isthmus-mesh subjects; the others never route through them.
  const topo = await createTopology({ prefix: a.prefix ?? randomPrefix(), relays: 3 });
  const results: SubjectResult[] = [];
  try {
    for (const s of subjects) results.push(await measure(topo, s, settings));
  } finally {
    await topo.destroy();
    tcpRr?.dispose();
  }
  const report: BenchReport = {
    date: new Date().toISOString(),
    host: { cores: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? 'unknown', kernel: release(), node: process.version },
    settings: { durationS: settings.durationS, omitS: settings.omitS, runs: settings.runs, pingCount: settings.pingCount,
      pingIntervalS: settings.pingIntervalS, vethMtu: topo.mtu },
    subjects: results,
  };
  process.stdout.write(formatReport(report) + '\n');
  const outDir = resolve(a.out ?? join(repoRoot(), 'bench', 'results'));
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(outDir, 'latest.svg'), renderSvg(report));
  process.stdout.write(`\nwrote ${join(outDir, 'latest.json')} and latest.svg\n`);
  return results.some((r) => r.error) ? 2 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: Error) => {
    process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  });
}
