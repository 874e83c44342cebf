/**
 * Where the time goes on the isthmus data path: builds the bench topology, starts the isthmus
 * subject (relay + two agents), runs one iperf3 TCP transfer through it and records the relay's
 * and agents' CPU with `perf record -g` meanwhile. JS frames are named through
 * `--perf-basic-prof` (/tmp/perf-PID.map), which this script puts in NODE_OPTIONS for the
 * subject's processes. Prints `perf report` per process (self time, top symbols).
 * That flag also makes each of those node processes write V8's `isolate-*-v8.log` into its
 * working directory, so they are started from a temporary directory, removed at the end.
 *
 *   node dist/bench/profile.js [--duration 6] [--streams 1] [--reverse] [--top 25]
 *   node dist/bench/profile.js --cpu-only      CPU-s per GB of each process (relay, agents), no perf
 *
 * ISTHMUS_FAST_PATH=false in the environment runs the relay with its C fast path off.
 *
 * Root only; needs `perf`. Everything it starts is stopped and the topology removed at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { atProcessEnd, isthmusRelaySubject, processJiffies, runIperf, waitForPing, run, sleep, createTopology, randomPrefix } from '../testbed';

const IPERF_PORT = 5201;

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv).strict()
    .option('duration', { type: 'number', default: 6 })
    .option('streams', { type: 'number', default: 1 })
    .option('reverse', { type: 'boolean', default: false })
    .option('top', { type: 'number', default: 25 })
    .option('out', { type: 'string', default: '/tmp/isthmus-perf.data' })
    .option('cpu-only', { type: 'boolean', default: false, describe: 'no perf: print each process\'s CPU-s per GB of the transfer' })
    .option('hold', { type: 'number', default: 0, describe: 'instead of profiling: keep the overlay up this many seconds (print namespaces and pids)' })
    .help().parseAsync();
  if (process.getuid?.() !== 0) {
    process.stderr.write('profile needs root (network namespaces, perf)\n');
    return 1;
  }
  // Inherited by the relay and agents (startStaticOverlay passes process.env through), and so
  // is the working directory, where each of them writes an isolate-*-v8.log: not the repo's.
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --perf-basic-prof`.trim();
  const cwd = process.cwd();
  const out = resolve(a.out);
  const scratch = mkdtempSync(join(tmpdir(), 'isthmus-profile-'));
  // Also when `--hold` is ended by a signal (the topology's own handlers stop the processes).
  const forgetScratch = atProcessEnd(() => rmSync(scratch, { recursive: true, force: true }));
  process.chdir(scratch);
  const topo = await createTopology({ prefix: randomPrefix('isthp') });
  const subject = isthmusRelaySubject();
  try {
    const ep = await subject.setup(topo);
    await waitForPing(topo, ep.serverAddr, 30_000);
    const server = topo.spawn(topo.ns.vpc2, 'iperf3', ['-s', '-B', ep.serverAddr, '-p', String(IPERF_PORT)]);
    try {
      await topo.waitForListen(topo.ns.vpc2, IPERF_PORT, 'tcp');
      const pids = ep.pids?.() ?? [];
      if (a.hold > 0) {
        process.stdout.write(`${JSON.stringify({ ns: topo.ns, server: ep.serverAddr, client: ep.clientAddr, pids })}\n`);
        await sleep(a.hold * 1000);
        return 0;
      }
      const names = ['relay', 'agent a1 (vpc1)', 'agent s1 (vpc2)'];
      if (a['cpu-only']) {
        const t0 = performance.now();
        const j0 = pids.map((p) => processJiffies([p]));
        const r = await runIperf(topo, ep.serverAddr, ep.clientAddr, { streams: a.streams, reverse: a.reverse },
          { durationS: a.duration, omitS: 1, port: IPERF_PORT }, () => pids);
        const wallS = (performance.now() - t0) / 1000;
        const gbPerS = r.bitsPerSecond / 8e9;
        const per = pids.map((p, i) => `${names[i] ?? p} ${((processJiffies([p]) - j0[i]!) / 100 / wallS / gbPerS).toFixed(2)}`);
        process.stdout.write(`iperf3: ${(r.bitsPerSecond / 1e9).toFixed(3)} Gbit/s, machine CPU-s/GB ${r.machineCpuSPerGB.toFixed(2)}, proc CPU-s/GB ${r.procCpuSPerGB.toFixed(2)}; per process CPU-s/GB: ${per.join(', ')}\n`);
        return 0;
      }
      const iperf = runIperf(topo, ep.serverAddr, ep.clientAddr, { streams: a.streams, reverse: a.reverse },
        { durationS: a.duration + 2, omitS: 1, port: IPERF_PORT }, () => pids);
      await sleep(1500);
      await run('perf', ['record', '-F', '499', '-g', '-o', out, '-p', pids.join(','), '--', 'sleep', String(a.duration)],
        { timeoutMs: (a.duration + 30) * 1000, check: false });
      const r = await iperf;
      process.stdout.write(`iperf3: ${(r.bitsPerSecond / 1e9).toFixed(3)} Gbit/s, proc CPU-s/GB ${r.procCpuSPerGB.toFixed(1)}\n`);
      for (let i = 0; i < pids.length; i++) {
        const rep = await run('perf', ['report', '-i', out, '--stdio', '--no-children', '--pid', String(pids[i]),
          '--sort', 'sym', '-g', 'none', '--percentage', 'relative', '--percent-limit', '0.7'], { timeoutMs: 120_000, check: false });
        const lines = rep.stdout.split('\n').filter((l) => l.trim() && !l.startsWith('#')).slice(0, a.top);
        process.stdout.write(`\n== ${names[i] ?? 'pid'} ${pids[i]} ==\n${lines.join('\n')}\n`);
      }
    } finally {
      await server.stop();
    }
  } finally {
    await subject.teardown().catch(() => undefined);
    await topo.destroy();
    process.chdir(cwd);
    forgetScratch();
    rmSync(scratch, { recursive: true, force: true });
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: Error) => {
    process.stderr.write(`profile failed: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  });
}
