/**
 * A private redis-server for tests and benchmarks: its own port, its own temp dir, no persistence,
 * killed by PID when the test process ends. Never a mock.
 *
 *   const redis = await startRedis();   // { url, port, stop() }
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

export interface RedisHandle {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export function redisServerPath(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return p || undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitForPort(port: number, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`redis-server did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startRedis(opts: { port?: number; bind?: string } = {}): Promise<RedisHandle> {
  const bin = redisServerPath();
  if (!bin) throw new Error('redis-server not found: apt-get install -y --no-install-recommends redis-server');
  const port = opts.port ?? await freePort();
  const bind = opts.bind ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-redis-'));
  const child = spawn(bin, ['--port', String(port), '--bind', bind, '--save', '', '--appendonly', 'no',
    '--dir', dir, '--protected-mode', 'no'], { stdio: 'ignore' });
  const onExit = () => { try { child.kill('SIGKILL'); } catch { /* already gone */ } };
  process.once('exit', onExit);
  // 'exit' does not run when the owner is killed by a signal (an ava worker on timeout, Ctrl-C):
  // kill the server then too, and die of the signal as if we had not been here.
  const onSignal = (sig: NodeJS.Signals) => {
    onExit();
    if (process.listenerCount(sig) === 1) {
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    }
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const sig of signals) process.on(sig, onSignal);
  await waitForPort(port, 5000);
  return {
    url: `redis://${bind}:${port}`,
    port,
    process: child,
    async stop() {
      process.removeListener('exit', onExit);
      for (const sig of signals) process.removeListener(sig, onSignal);
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
