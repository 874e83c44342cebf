/**
 * The README's first line: `isthmus demo` runs the whole system and leaves nothing behind —
 * no namespace, TUN device, nft table or process — also when interrupted with Ctrl-C.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { rootSkipReason } from '../harness/netns';
import { run } from '../harness/procs';
import { cliPath } from '../../bench/peers/isthmus';

const skip = rootSkipReason();

async function leftovers(): Promise<string[]> {
  const ns = (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith('isd'));
  return ns;
}

function runDemo(interruptOn?: RegExp): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; pid: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath(), 'demo', '--seconds', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
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
    child.on('exit', (code, signal) => resolve({ code, signal, out, pid: child.pid! }));
  });
}

async function descendantsGone(out: string): Promise<boolean> {
  // Every daemon the demo started runs inside its namespaces: none may survive it.
  const ps = (await run('ps', ['-eo', 'args'])).stdout;
  const prefix = /network namespaces (isd[0-9a-f]+)-\*/.exec(out)?.[1];
  return prefix !== undefined && !ps.includes(`${prefix}-`);
}

if (skip) {
  test('demo', (t) => t.pass(skip));
} else {
  test.serial('the demo shows every way in and tears everything down', async (t) => {
    const before = await leftovers();
    const r = await runDemo();
    t.is(r.code, 0, r.out);
    for (const re of [/joined: virtual IP 100\.64\./, /5\/5 answered/, /Mbit\/s/, /SOCKS5, original IP\s+→ 200/,
      /HTTP proxy, original IP\s+→ 200/, /transparent, original IP\s+→ 200/, /teardown/]) t.regex(r.out, re);
    t.deepEqual(await leftovers(), before);
    t.true(await descendantsGone(r.out));
  });

  test.serial('Ctrl-C in the middle of the demo leaves nothing behind', async (t) => {
    const before = await leftovers();
    const r = await runDemo(/joined: virtual IP/);
    t.not(r.code, 0);
    t.deepEqual(await leftovers(), before);
    t.true(await descendantsGone(r.out));
    const tuns = (await run('ip', ['-o', 'link', 'show', 'type', 'tun'])).stdout.trim();
    t.is(tuns, '');
  });
}
