/**
 * The bench's request/response measurements (testbed/rr.ts, bench/native/tcp-rr.c) and the goal
 * ratios (testbed/bench-goals.ts): the parsers on real tool output, tcp-rr compiled with the
 * system cc and run on loopback (no root, no namespaces), and the best-peer arithmetic.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { bestPeerRatios, buildTcpRr, parseSockperf, parseTcpRr, run, type GoalSubject, type RrResult } from '../../../testbed';

const SOCKPERF_OUT = `sockperf: [Total Run] RunTime=2.000 sec; Warm up time=400 msec; SentMessages=154359; ReceivedMessages=154358
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime=1.550 sec; SentMessages=93077; ReceivedMessages=93077
sockperf: \x1b[2;35m====> avg-rtt=16.638 (std-dev=119.647)\x1b[0m
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: ---> percentile 99.999 = 8037.291
sockperf: ---> percentile 99.000 =   15.633
sockperf: ---> percentile 90.000 =   12.769
sockperf: ---> percentile 50.000 =   12.158
sockperf: ---> <MIN> observation =   11.046
`;

test('parseSockperf reads the valid-duration rate and the RTT percentiles', (t) => {
  const r = parseSockperf(SOCKPERF_OUT);
  t.is(Math.round(r.transactionsPerSec), Math.round(93077 / 1.55));
  t.is(r.p50Us, 12.158);
  t.is(r.p99Us, 15.633);
  t.throws(() => parseSockperf('sockperf: == version #3.7 ==\n'), { message: /no statistics/ });
});

test('parseTcpRr reads the JSON line and rejects anything else', (t) => {
  const r = parseTcpRr('{"mode":"crr","conns":64,"seconds":2.000,"transactions":100,"tps":50.0,"p50Us":10.5,"p99Us":99.0,"errors":1}\n');
  t.deepEqual(r, { mode: 'crr', conns: 64, transactionsPerSec: 50, p50Us: 10.5, p99Us: 99, errors: 1 });
  t.throws(() => parseTcpRr('tcp-rr: connect: Connection refused\n'), { message: /no JSON line/ });
  t.throws(() => parseTcpRr('{"mode":"udp","tps":1}\n'), { message: /unexpected output/ });
});

test('tcp-rr compiles with cc and measures RR and CRR on loopback', async (t) => {
  const cc = await run('cc', ['--version'], { check: false }).catch(() => undefined);
  if (!cc || cc.code !== 0) return t.fail('cc is needed: the bench compiles bench/native/tcp-rr.c with it');
  const tool = await buildTcpRr(join(__dirname, '..', '..', '..', 'bench', 'native', 'tcp-rr.c'));
  // Below Linux's ephemeral range (32768-60999): a connect to a closed port inside it can pick that
  // very port as its source and connect to itself (TCP simultaneous open), which would answer.
  const port = 20_000 + Math.floor(Math.random() * 10_000);
  const server = spawn(tool.bin, ['server', '127.0.0.1', String(port)], { stdio: 'ignore' });
  t.teardown(() => {
    server.kill('SIGKILL');
    tool.dispose();
  });
  // Wait for the listener: a client that connects too early fails to connect and exits 1.
  let rr: RrResult | undefined;
  for (let i = 0; i < 50 && !rr; i++) {
    const r = await run(tool.bin, ['client', 'rr', '127.0.0.1', String(port), '127.0.0.1', '4', '0.3', '0.1'], { check: false });
    if (r.code === 0) rr = { ...parseTcpRr(r.stdout), tool: 'tcp-rr', messageBytes: 1 };
    else await new Promise((res) => setTimeout(res, 100));
  }
  t.truthy(rr, 'the RR client ran');
  t.is(rr!.mode, 'rr');
  t.is(rr!.conns, 4);
  t.true(rr!.transactionsPerSec > 0);
  t.is(rr!.errors, 0);
  t.true(rr!.p50Us > 0 && rr!.p99Us >= rr!.p50Us);
  const crr = await run(tool.bin, ['client', 'crr', '127.0.0.1', String(port), '127.0.0.1', '8', '0.3', '0.1']);
  const c = parseTcpRr(crr.stdout);
  t.is(c.mode, 'crr');
  t.true(c.transactionsPerSec > 0);
  t.is(c.errors, 0);
  // Negative control in the same setup: nothing listens on port+1, so every connect fails.
  const refused = await run(tool.bin, ['client', 'crr', '127.0.0.1', String(port + 1), '127.0.0.1', '1', '0.2', '0'], { check: false });
  const rc = parseTcpRr(refused.stdout);
  t.is(rc.transactionsPerSec, 0);
  t.true(rc.errors > 0);
  const bad = await run(tool.bin, ['client', 'rr', '127.0.0.1', String(port), '127.0.0.1', '0', '1', '0'], { check: false });
  t.is(bad.code, 2);
  t.regex(bad.stderr, /CONNS must be/);
});

const rr = (mode: 'rr' | 'crr', conns: number, tps: number): RrResult =>
  ({ mode, conns, tool: 'tcp-rr', messageBytes: 1, transactionsPerSec: tps, p50Us: 1, p99Us: 2, errors: 0 });

test('bestPeerRatios compares the first subject with the best peer, not with other isthmus shapes', (t) => {
  const subjects: GoalSubject[] = [
    { name: 'isthmus', ping: { medianMs: 0.3 }, coldPing: { medianMs: 0.9 }, loadedPing: { medianMs: 2 }, rr: [rr('rr', 1, 9000), rr('crr', 64, 1000)] },
    { name: 'isthmus-mesh-same', ping: { medianMs: 0.1 }, rr: [rr('rr', 1, 99_999)] },
    { name: 'nebula', ping: { medianMs: 0.4 }, coldPing: { medianMs: 0.45 }, loadedPing: { medianMs: 3 }, rr: [rr('rr', 1, 5000), rr('crr', 64, 800)] },
    { name: 'wireguard-go-current', ping: { medianMs: 0.5 }, loadedPing: { medianMs: 1 }, rr: [rr('rr', 1, 6000)] },
    { name: 'broken', error: 'setup failed', ping: { medianMs: 0.01 } },
  ];
  const byMetric = Object.fromEntries(bestPeerRatios(subjects).map((b) => [b.metric, b]));
  t.deepEqual(Object.keys(byMetric), ['idle RTT median', 'idle RTT median, cold start', 'RTT under load median', 'RR 1 transactions/s', 'CRR 64 transactions/s']);
  t.like(byMetric['idle RTT median'], { bestName: 'nebula', best: 0.4, ratio: 0.3 / 0.4, met: true });
  t.like(byMetric['idle RTT median, cold start'], { bestName: 'nebula', ratio: 2, met: false });
  t.like(byMetric['RTT under load median'], { bestName: 'wireguard-go-current', ratio: 2, met: false });
  t.like(byMetric['RR 1 transactions/s'], { bestName: 'wireguard-go-current', ratio: 1.5, met: true });
  t.like(byMetric['CRR 64 transactions/s'], { bestName: 'nebula', ratio: 1.25, met: false });
  t.deepEqual(bestPeerRatios(subjects.slice(0, 2)), [], 'no peer, no ratio');
  // A failed lead is not replaced by the next subject: no ratios at all.
  t.deepEqual(bestPeerRatios([{ ...subjects[0]!, error: 'iperf3 failed' }, ...subjects.slice(1)]), []);
});
