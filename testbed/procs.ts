/**
 * Child processes for the netns topology, the bench and the demo: run a command and collect its
 * output under a deadline, or start a long-running one, wait for a line of its output, and stop it
 * by PID (SIGTERM, then SIGKILL). Compiled with the bench (no tsx at run time); test/harness/procs.ts
 * re-exports it.
 *
 * Cleanup paths exist in two flavours: async (normal teardown) and sync (process 'exit' and signal
 * handlers, where the event loop no longer runs).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';

const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const binCache = new Map<string, string>();

/**
 * Absolute path of a system tool. Under npx/ava, node_modules/.bin comes first on PATH and
 * shadows system tools (@vercel/nft installs an `nft` that exits 0 on any nftables script).
 */
export function systemBin(cmd: string): string {
  if (cmd.includes('/')) return cmd;
  let hit = binCache.get(cmd);
  if (hit === undefined) {
    hit = SYSTEM_DIRS.map((d) => `${d}/${cmd}`).find((p) => existsSync(p)) ?? cmd;
    binCache.set(cmd, hit);
  }
  return hit;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the command (SIGKILL) after this long. @default 30000 */
  timeoutMs?: number;
  /** Reject with CommandError when the exit code is not 0. @default true */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** Told the PID when the command starts and again (with `exited` true) when it ends. */
  track?: (pid: number, exited: boolean) => void;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  readonly code = 'ECOMMAND';
  constructor(readonly argv: string[], readonly result: RunResult, why: string) {
    super(`${argv.join(' ')}: ${why}${result.stderr.trim() ? `: ${result.stderr.trim().slice(-400)}` : ''}`);
  }
}

export class ProcessTimeoutError extends Error {
  override readonly name = 'ProcessTimeoutError';
  readonly code = 'ETIMEDOUT';
}

/** Run a command to completion and collect stdout/stderr. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const argv = [cmd, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(systemBin(cmd), args, { env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    const pid = child.pid;
    if (pid !== undefined) opts.track?.(pid, false);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (pid !== undefined) opts.track?.(pid, true);
      const result: RunResult = { code, signal, stdout, stderr };
      if (timedOut) return reject(new CommandError(argv, result, `timed out after ${timeoutMs} ms`));
      if ((opts.check ?? true) && code !== 0) {
        return reject(new CommandError(argv, result, `exit ${code ?? signal}`));
      }
      resolve(result);
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the command may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** Synchronous twin of run() for exit/signal handlers; never throws. */
export function runSync(cmd: string, args: string[], timeoutMs = 10_000): RunResult {
  const r = spawnSync(systemBin(cmd), args, { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** True while `pid` exists and is not a zombie (in sync code nobody reaps our children). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Synchronous; for exit handlers. */
export function killPidSync(pid: number, graceMs = 1000): void {
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    if (!pidAlive(pid)) return;
    sleepSync(20);
  }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

const OUTPUT_KEEP = 256 * 1024;

const atEnd = new Set<() => void>();
let endHandlersInstalled = false;

function runEndCleanups(): void {
  for (const f of [...atEnd]) {
    atEnd.delete(f);
    try { f(); } catch { /* the others still run */ }
  }
}

/**
 * Run `cleanup` (synchronous: the event loop no longer runs) if this process ends before the
 * returned function is called: on 'exit', which also follows an uncaught exception, and on
 * SIGINT/SIGTERM/SIGHUP (an ava worker on timeout, Ctrl-C), after which the process still dies of
 * the signal unless someone else handles it. What a test, the bench or the demo started must not
 * outlive it, however it ends.
 */
export function atProcessEnd(cleanup: () => void): () => void {
  if (!endHandlersInstalled) {
    endHandlersInstalled = true;
    process.on('exit', runEndCleanups);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      const onSignal = () => {
        runEndCleanups();
        // Alone on this signal: restore the default action so the process still dies of it.
        if (process.listenerCount(sig) === 1) {
          process.removeListener(sig, onSignal);
          process.kill(process.pid, sig);
        }
      };
      process.on(sig, onSignal);
    }
  }
  atEnd.add(cleanup);
  return () => { atEnd.delete(cleanup); };
}

export interface SpawnOptions {
  /** Label for errors and logs. @default the command */
  name?: string;
  env?: NodeJS.ProcessEnv;
  /** Also copy the output to this stream (e.g. process.stderr) while debugging. */
  echo?: NodeJS.WritableStream;
}

/**
 * spawn(), and the child is killed (SIGKILL) if this process ends first (atProcessEnd): for
 * children a test starts itself, which a crash past its teardown would otherwise leave behind.
 */
export const spawnOwned = ((...spawnArgs: unknown[]): ChildProcess => {
  const child = (spawn as (...a: unknown[]) => ChildProcess)(...spawnArgs);
  const forget = atProcessEnd(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } });
  child.once('exit', forget);
  child.once('error', forget);
  return child;
}) as typeof spawn;

/**
 * A long-running child, tracked by PID, with its recent output (stdout+stderr interleaved).
 * It is stopped if the owner ends first (atProcessEnd), also when a test crashes past its teardown.
 */
export class ManagedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly name: string;
  private out = '';
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exitWaiters: Array<() => void> = [];
  private readonly lineWaiters = new Set<() => void>();

  constructor(cmd: string, args: string[], opts: SpawnOptions = {}) {
    this.name = opts.name ?? cmd;
    this.child = spawn(systemBin(cmd), args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    if (this.child.pid === undefined) throw new Error(`could not start ${cmd}`);
    this.pid = this.child.pid;
    const onData = (d: string) => {
      this.out += d;
      if (this.out.length > OUTPUT_KEEP) this.out = this.out.slice(-OUTPUT_KEEP / 2);
      opts.echo?.write(d);
      for (const w of this.lineWaiters) w();
    };
    this.child.stdout!.setEncoding('utf8').on('data', onData);
    this.child.stderr!.setEncoding('utf8').on('data', onData);
    this.child.on('error', (err) => onData(`\n[spawn error] ${err.message}\n`));
    const forget = atProcessEnd(() => this.stopSync(500));
    this.child.on('exit', (code, signal) => {
      forget();
      this.exitInfo = { code, signal };
      for (const w of this.exitWaiters.splice(0)) w();
      for (const w of this.lineWaiters) w();
    });
  }

  get exited(): boolean {
    return this.exitInfo !== undefined;
  }

  get exitStatus(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.exitInfo;
  }

  output(): string {
    return this.out;
  }

  /** Resolve with the first output line matching `re` (already seen or future). */
  waitForLine(re: RegExp, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.out.split('\n').find((l) => re.test(l));
        if (hit !== undefined) return done(() => resolve(hit));
        if (this.exitInfo) {
          return done(() => reject(new Error(`${this.name} exited (${this.exitInfo?.code ?? this.exitInfo?.signal}) before printing ${re}: ${this.out.slice(-500)}`)));
        }
      };
      const timer = setTimeout(() => done(() => reject(new ProcessTimeoutError(
        `${this.name} did not print ${re} within ${timeoutMs} ms: ${this.out.slice(-500)}`))), timeoutMs);
      const done = (f: () => void) => { clearTimeout(timer); this.lineWaiters.delete(check); f(); };
      this.lineWaiters.add(check);
      check();
    });
  }

  /** Resolve when the process has exited; reject after timeoutMs. */
  waitForExit(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ProcessTimeoutError(`${this.name} still running after ${timeoutMs} ms`)), timeoutMs);
      this.exitWaiters.push(() => { clearTimeout(timer); resolve(this.exitInfo!); });
    });
  }

  /** SIGTERM, then SIGKILL after graceMs. Idempotent. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.exitInfo) return;
    try { process.kill(this.pid, 'SIGTERM'); } catch { /* gone */ }
    try {
      await this.waitForExit(graceMs);
    } catch {
      try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
      await this.waitForExit(5000).catch(() => undefined);
    }
  }

  stopSync(graceMs = 1000): void {
    if (this.exitInfo) return;
    killPidSync(this.pid, graceMs);
  }
}

/** Resolve once a TCP connect to host:port succeeds (in this process's namespace). */
export async function waitForTcpPort(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new ProcessTimeoutError(`nothing accepts TCP on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}
