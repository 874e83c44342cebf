/**
 * The README's first line: `isthmus demo` runs the whole system and leaves nothing behind —
 * no namespace, TUN device, nft table or process — also when interrupted with Ctrl-C.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { run, spawnOwned } from '../harness/procs';
import { cliPath } from '../../testbed';
import { forRoot } from '../harness/root';

const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'iperf3', 'redis-server'] });

async function leftovers(): Promise<string[]> {
  const ns = (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith('isd'));
  return ns;
}

/** parent pid of every process, from /proc. */
function parents(): Map<number, number> {
  const m = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      m.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  return m;
}

function descendantsOf(root: number): number[] {
  const pp = parents();
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [pid, ppid] of pp) if (ppid === p) { out.push(pid); walk(pid); }
  };
  walk(root);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface DemoRun { code: number | null; signal: NodeJS.Signals | null; out: string; pid: number; seen: Set<number> }

function runDemo(interruptOn?: RegExp): Promise<DemoRun> {
  return new Promise((resolve) => {
    const child = spawnOwned(process.execPath, [cliPath(), 'demo', '--seconds', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Every process the demo starts (redis, coordinators, relays, agents, iperf3, mapper, ...).
    const seen = new Set<number>();
    const sampler = setInterval(() => { for (const p of descendantsOf(child.pid!)) seen.add(p); }, 100);
    let out = '';
    let sent = false;
    const onData = (d: Buffer) => {
      out += d.toString();
      if (interruptOn && !sent && interruptOn.test(out)) {
        sent = true;
        child.kill('SIGINT');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      clearInterval(sampler);
      resolve({ code, signal, out, pid: child.pid!, seen });
    });
  });
}

/** None of the processes the demo started is still alive (zombies awaiting reaping aside). */
async function descendantsGone(r: DemoRun): Promise<boolean> {
  await new Promise((res) => setTimeout(res, 500));
  const left = [...r.seen].filter((pid) => alive(pid) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '));
  return left.length === 0;
}

rootTest('the demo shows every way in, the agent refused by the policy, and tears everything down', async (t) => {
  const before = await leftovers();
  const r = await runDemo();
  t.is(r.code, 0, r.out);
  for (const re of [/joined: virtual IP 100\.64\./, /5\/5 answered/, /Mbit\/s/, /SOCKS5, original IP\s+→ 200/,
    /HTTP proxy, original IP\s+→ 200/, /transparent, original IP\s+→ 200/, /teardown/]) t.regex(r.out, re);
  // The mission's policy: every flow above is the controller's; the agent dialing it is refused.
  for (const re of [/policy set policy\.json/, /tcp\/8000 no connection in 2 s, ping 0\/2 answered/,
    /s1's agent dropped [1-9]\d* packets from a1 \(drop reason policy/, /--from s1 --to a1 --port tcp\/8000 {2}→ {2}.*allowed/,
    /--from a1 --to s1 --port tcp\/8000 {2}→ {2}.*denied/]) t.regex(r.out, re);
  t.deepEqual(await leftovers(), before);
  t.true(r.seen.size >= 5, `saw only ${r.seen.size} processes of the demo`);
  t.true(await descendantsGone(r));
});

rootTest('Ctrl-C in the middle of the demo leaves nothing behind', async (t) => {
  const before = await leftovers();
  const r = await runDemo(/joined: virtual IP/);
  t.not(r.code, 0);
  t.deepEqual(await leftovers(), before);
  t.true(r.seen.size >= 5, `saw only ${r.seen.size} processes of the demo`);
  t.true(await descendantsGone(r));
  const tuns = (await run('ip', ['-o', 'link', 'show', 'type', 'tun'])).stdout.trim();
  t.is(tuns, '');
});
