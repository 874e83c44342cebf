/**
 * A private redis-server for tests and benchmarks: its own port, its own temp dir, no persistence,
 * killed by PID when the test process ends. Never a mock.
 *
 *   const redis = await startRedis();   // { url, port, stop() }
 *   // AUTH, ACL users and a TLS port (certificates made with openssl in its temp dir):
 *   const r = await startRedis({ password: 'pw', users: ['mapper on >mp ~isthmus:* &isthmus:events -@all +get'], tls: true });
 *   // r.tlsUrl = rediss://127.0.0.1:<tlsPort>, r.caFile = the CA that signed its certificate
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { spawnOwned } from './procs';

export interface RedisHandle {
  url: string;
  port: number;
  /** with `tls`: the TLS port, `rediss://HOST:tlsPort`, and the PEM CA file that signed the server certificate */
  tlsPort?: number;
  tlsUrl?: string;
  caFile?: string;
  /** its temp dir (removed by stop()) */
  dir: string;
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

export interface StartRedisOptions {
  port?: number;
  bind?: string;
  /** `requirepass` (the password of the `default` user) */
  password?: string;
  /** ACL users, each a redis.conf `user` line without the word `user`: `NAME on >PASS ~KEYS ...` */
  users?: string[];
  /** also listen with TLS on a second port (certificate for 127.0.0.1 and localhost, signed by a fresh CA) */
  tls?: boolean;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

/** ca.pem, server.pem, server.key in `dir`; the server certificate names 127.0.0.1 and localhost. */
export function makeTestCertificates(dir: string): { ca: string; cert: string; key: string } {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=isthmus test CA']);
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisHandle> {
  const bin = redisServerPath();
  if (!bin) throw new Error('redis-server not found: apt-get install -y --no-install-recommends redis-server');
  const port = opts.port ?? await freePort();
  const bind = opts.bind ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-redis-'));
  // Secrets go into a config file, not the server's arguments.
  const conf: string[] = [];
  if (opts.password !== undefined) conf.push(`requirepass ${opts.password}`);
  for (const u of opts.users ?? []) conf.push(`user ${u}`);
  let tlsPort: number | undefined;
  let caFile: string | undefined;
  if (opts.tls) {
    const c = makeTestCertificates(dir);
    tlsPort = await freePort();
    caFile = c.ca;
    conf.push(`tls-port ${tlsPort}`, `tls-cert-file ${c.cert}`, `tls-key-file ${c.key}`, `tls-ca-cert-file ${c.ca}`, 'tls-auth-clients no');
  }
  const confFile = join(dir, 'redis.conf');
  writeFileSync(confFile, conf.join('\n') + '\n', { mode: 0o600 });
  // Killed if the owner ends first (a test that crashes past its teardown).
  const child = spawnOwned(bin, [confFile, '--port', String(port), '--bind', bind, '--save', '', '--appendonly', 'no',
    '--dir', dir, '--protected-mode', 'no'], { stdio: 'ignore' });
  await waitForPort(port, 5000);
  if (tlsPort !== undefined) await waitForPort(tlsPort, 5000);
  return {
    url: `redis://${bind}:${port}`,
    port,
    tlsPort,
    tlsUrl: tlsPort !== undefined ? `rediss://${bind}:${tlsPort}` : undefined,
    caFile,
    dir,
    process: child,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
