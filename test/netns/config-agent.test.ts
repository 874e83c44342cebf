/**
 * Root-only: the agent's settings file and SIGHUP, through the real CLI in its own network
 * namespace (it creates a TUN device there):
 *
 *   netns itcfXXXXXX:  isthmus agent --config agent.yaml   (peers: static-peer file, log-level)
 *
 * SIGHUP with the file unchanged reloads nothing and logs no debug line; after log-level: debug
 * (and an mtu change) it reports the new level, names mtu as needing a restart, and debug lines
 * appear. The old meaning of --config (a static-peer file) still runs, with a warning.
 * The namespace and the agents are removed in after.always, also on failure.
 */
import test from 'ava';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { forRoot } from '../harness/root';
import { spawnOwned } from '../harness/procs';

const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const NS = `itcf${randomBytes(3).toString('hex')}`;
const rootTest = forRoot(test, __filename, { tools: ['ip'], why: 'creates a netns and a TUN device' });

let dir = '';
const children = new Set<ChildProcess>();

test.before(() => {
  if (process.getuid?.() !== 0) return;
  dir = mkdtempSync(join(tmpdir(), 'isthmus-config-agent-'));
  spawnSync('ip', ['netns', 'add', NS], { stdio: 'inherit' });
  spawnSync('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'inherit' });
});

test.after.always(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  }
  await Promise.all([...children].map((c) => new Promise((r) => { if (c.exitCode !== null || c.signalCode !== null) r(null); else c.once('exit', r); })));
  if (process.getuid?.() === 0) spawnSync('ip', ['netns', 'del', NS]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');

function peersFile(name: string, vip: string): string {
  const me = nacl.box.keyPair();
  const peer = nacl.box.keyPair();
  const f = join(dir, name);
  writeFileSync(f, `[Interface]\nPrivateKey = ${b64(me.secretKey)}\nAddress = ${vip}/10\n\n[Peer]\nPublicKey = ${b64(peer.publicKey)}\nAllowedIPs = 100.64.0.99/32\nEndpoint = 127.0.0.1:9\n`,
    { mode: 0o600 });
  return f;
}

type Line = Record<string, unknown>;

function startAgent(args: string[]) {
  // `ip netns exec` execs the command: the child's PID is the agent's.
  const child = spawnOwned('ip', ['netns', 'exec', NS, process.execPath, CLI, 'agent', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  const a = {
    child, stderr: '',
    lines: (): Line[] => a.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line),
    async waitFor(msg: RegExp, from = 0): Promise<Line> {
      const end = Date.now() + 15_000;
      for (;;) {
        const hit = a.lines().slice(from).find((l) => msg.test(String(l.msg)));
        if (hit) return hit;
        if (child.exitCode !== null || Date.now() > end) throw new Error(`no log line ${msg} (exit ${child.exitCode}):\n${a.stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
  child.stderr!.on('data', (b: Buffer) => { a.stderr += b.toString(); });
  return a;
}

rootTest('agent: settings from --config (peers, state dir); SIGHUP applies log-level, names mtu for a restart', async (t) => {
  const peers = peersFile('peers-a.conf', '100.64.0.1');
  const file = join(dir, 'agent.yaml');
  const settings = (level: string, mtu: number) => `peers: ${peers}\nstate-dir: ${join(dir, 'state-a')}\nmtu: ${mtu}\nlog-level: ${level}\n`;
  writeFileSync(file, settings('info', 1420));
  const a = startAgent(['--config', file]);
  const started = await a.waitFor(/^agent started$/);
  t.is(started.vip, '100.64.0.1', 'the peers file named in the settings file');

  const hup = async () => {
    const from = a.lines().length;
    a.child.kill('SIGHUP');
    return { from, line: await a.waitFor(/^SIGHUP: reloaded/, from) };
  };
  const same = await hup();
  t.deepEqual(same.line.reloaded, {});
  await new Promise((r) => setTimeout(r, 200));
  t.false(a.lines().some((l) => l.level === 20), 'no debug line at info');

  writeFileSync(file, settings('debug', 1300));
  const changed = await hup();
  t.deepEqual(changed.line.reloaded, { 'log-level': 'debug' });
  t.truthy(a.lines().slice(changed.from).find((l) => l.msg === `mtu changed in ${file}; restart to apply`), a.stderr);
  const debug = await a.waitFor(/^settings in force$/, changed.from);
  t.is(debug.level, 20);
  t.is(a.child.exitCode, null, 'still running');
});

rootTest('agent: --config with a static-peer file (its old meaning) still runs it, with a warning naming --peers', async (t) => {
  const peers = peersFile('peers-b.conf', '100.64.0.2');
  const a = startAgent(['--config', peers, '--state-dir', join(dir, 'state-b')]);
  const started = await a.waitFor(/^agent started$/);
  t.is(started.vip, '100.64.0.2');
  t.regex(a.stderr, /warning: --config .*peers-b\.conf is a static-peer file \(\[Interface\]\): that is --peers FILE now/);
  // Control: --peers itself, no warning.
  const b = startAgent(['--peers', peersFile('peers-c.conf', '100.64.0.3'), '--state-dir', join(dir, 'state-c')]);
  t.is((await b.waitFor(/^agent started$/)).vip, '100.64.0.3');
  t.notRegex(b.stderr, /warning/);
});
