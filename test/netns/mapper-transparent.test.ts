/**
 * Unmodified applications on S reach an agent by its ORIGINAL IP, over the real overlay:
 * by virtual IP, through the mapper's SOCKS5 and HTTP proxy fronts (curl), and in
 * transparent mode, where S's agent routes vpc1's original prefix into the overlay.
 *
 *   vpc1: a1 (original 10.91.1.2) runs an HTTP server and a UDP echo on 0.0.0.0
 *   vpc2: s1 (original 10.92.1.2) runs its agent with --route-original 10.91.1.0/24
 *         and `isthmus mapper` (SOCKS5 127.0.0.1:1080, HTTP proxy 127.0.0.1:3128, API :7070)
 *   hub:  redis · coordinator · relay
 */
import anyTest, { type TestFn } from 'ava';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createTopology, testPrefix, type Topology } from '../harness/netns';
import { startJoinedOverlay, type JoinedOverlay, type JoinedMember, cliPath } from '../../testbed';
import type { ManagedProcess } from '../harness/procs';
import { forRoot } from '../harness/root';

interface Ctx { topo: Topology; overlay: JoinedOverlay; a1: JoinedMember; s1: JoinedMember; mapper: ManagedProcess; dir: string; blobSha: string }
const test = anyTest as TestFn<Ctx>;
const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'curl', 'python3'] });
const FIX = join(__dirname, 'fixtures');
const BLOB = 32 * 2 ** 20;

test.before(async (t) => {
  const topo = await createTopology({ prefix: testPrefix('itmp') });
  t.context.topo = topo;
  const dir = mkdtempSync(join(tmpdir(), 'itmp-www-'));
  t.context.dir = dir;
  const blob = Buffer.alloc(BLOB);
  for (let i = 0; i < BLOB; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(dir, 'blob'), blob);
  writeFileSync(join(dir, 'index.html'), 'hello from a1\n');
  t.context.blobSha = createHash('sha256').update(blob).digest('hex');

  const overlay = await startJoinedOverlay(topo);
  t.context.overlay = overlay;
  const token = await overlay.createToken();
  t.context.a1 = await overlay.join('a1', topo.ns.vpc1, topo.addr.vpc1, { token });
  t.context.s1 = await overlay.join('s1', topo.ns.vpc2, topo.addr.vpc2, { token, extraArgs: ['--route-original', '10.91.1.0/24'] });
  const www = topo.spawn(topo.ns.vpc1, 'python3', ['-m', 'http.server', '8000', '--bind', '0.0.0.0', '--directory', dir], { name: 'http-server' });
  void www;
  await topo.waitForListen(topo.ns.vpc1, 8000, 'tcp');
  const echo = topo.spawn(topo.ns.vpc1, process.execPath, [join(FIX, 'udp-echo.js'), '0.0.0.0', '9001'], { name: 'udp-echo' });
  await echo.waitForLine(/listening/);
  t.context.mapper = topo.spawn(topo.ns.vpc2, process.execPath, [cliPath(), 'mapper', '--redis', overlay.redisUrl,
    '--api', '127.0.0.1:7070', '--socks', '127.0.0.1:1080', '--http-proxy', '127.0.0.1:3128'], { name: 'mapper' });
  await topo.waitForListen(topo.ns.vpc2, 1080, 'tcp');
  await topo.waitForListen(topo.ns.vpc2, 7070, 'tcp');
});
test.after.always(async (t) => {
  await t.context.mapper?.stop();
  await t.context.overlay?.stop();
  await t.context.topo?.destroy();
  if (t.context.dir) rmSync(t.context.dir, { recursive: true, force: true });
});

const curl = (t: { context: Ctx }, args: string[]) =>
  t.context.topo.exec(t.context.topo.ns.vpc2, 'curl', ['-sS', '--max-time', '20', ...args], { check: false, timeoutMs: 30_000 });

rootTest('S reaches the agent\'s HTTP server by virtual IP', async (t) => {
  const r = await curl(t, [`http://${t.context.a1.vip}:8000/`]);
  t.is(r.stdout, 'hello from a1\n', r.stderr);
});

rootTest('the lookup API maps the original IP to the virtual IP and the relay 4-tuple', async (t) => {
  const r = await curl(t, [`http://127.0.0.1:7070/v1/map/${t.context.topo.addr.vpc1}`]);
  const m = JSON.parse(r.stdout) as { virtualIp: string; online: boolean; relay: { ip: string; port: number } };
  t.is(m.virtualIp, t.context.a1.vip);
  t.true(m.online);
  t.deepEqual(m.relay, { ip: t.context.topo.addr.vip, port: 7000 });
  const unknown = await curl(t, ['-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:7070/v1/map/10.91.1.99']);
  t.is(unknown.stdout, '404');
});

rootTest('curl --socks5-hostname with the original IP, and with the member\'s hostname', async (t) => {
  const byIp = await curl(t, ['--socks5-hostname', '127.0.0.1:1080', `http://${t.context.topo.addr.vpc1}:8000/`]);
  t.is(byIp.stdout, 'hello from a1\n', byIp.stderr);
  const byName = await curl(t, ['--socks5-hostname', '127.0.0.1:1080', 'http://a1:8000/']);
  t.is(byName.stdout, 'hello from a1\n', byName.stderr);
  const unknown = await curl(t, ['--socks5-hostname', '127.0.0.1:1080', 'http://10.91.1.99:8000/']);
  t.not(unknown.code, 0);
  // SOCKS5 reply 0x04: host unreachable.
  t.regex(unknown.stderr, /\(4\)/, unknown.stderr);
});

rootTest('curl -x through the HTTP proxy (forward and CONNECT) with the original IP', async (t) => {
  const fwd = await curl(t, ['-x', 'http://127.0.0.1:3128', `http://${t.context.topo.addr.vpc1}:8000/`]);
  t.is(fwd.stdout, 'hello from a1\n', fwd.stderr);
  const tunnel = await curl(t, ['-p', '-x', 'http://127.0.0.1:3128', `http://${t.context.topo.addr.vpc1}:8000/`]);
  t.is(tunnel.stdout, 'hello from a1\n', tunnel.stderr);
});

rootTest('32 MiB through SOCKS5 arrives intact (SHA-256)', async (t) => {
  const r = await t.context.topo.exec(t.context.topo.ns.vpc2, 'sh', ['-c',
    `curl -sS --max-time 60 --socks5-hostname 127.0.0.1:1080 http://${t.context.topo.addr.vpc1}:8000/blob | sha256sum`], { timeoutMs: 70_000 });
  t.is(r.stdout.split(' ')[0], t.context.blobSha);
});

rootTest('transparent mode: S dials the original IP with no proxy (TCP)', async (t) => {
  const r = await curl(t, [`http://${t.context.topo.addr.vpc1}:8000/`]);
  t.is(r.stdout, 'hello from a1\n', r.stderr);
  const blob = await t.context.topo.exec(t.context.topo.ns.vpc2, 'sh', ['-c',
    `curl -sS --max-time 60 http://${t.context.topo.addr.vpc1}:8000/blob | sha256sum`], { timeoutMs: 70_000 });
  t.is(blob.stdout.split(' ')[0], t.context.blobSha);
});

rootTest('transparent mode: UDP by original IP', async (t) => {
  const r = await t.context.topo.exec(t.context.topo.ns.vpc2, process.execPath, [join(FIX, 'udp-probe.js'), t.context.topo.addr.vpc1, '9001', '50', '800']);
  const { echoed } = JSON.parse(r.stdout.trim()) as { echoed: number };
  t.true(echoed >= 48, `echoed ${echoed} of 50`);
});

rootTest('transparent mode: an unknown original IP gets ICMP unreachable, not a hang', async (t) => {
  const r = await curl(t, ['--connect-timeout', '15', 'http://10.91.1.99:8000/']);
  t.not(r.code, 0);
  // curl reports the ICMP error (no route / unreachable), not a connect timeout.
  t.notRegex(r.stderr, /timed out/i);
  t.regex(r.stderr, /No route to host|unreachable|Couldn't connect/i, r.stderr);
});
