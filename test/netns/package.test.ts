/**
 * The Debian package, as an operator gets it: scripts/package.sh builds the .deb into a temp
 * dir, `dpkg-deb -x` unpacks it into a temp root, and only that root's /usr/bin/isthmus runs.
 *
 *   vpc1: a1 100.64.0.1 (root) ──► hub: relay 10.90.0.1:7000 ──► vpc2: s1 100.64.0.2 (nobody + CAP_NET_ADMIN)
 *   hub:  redis-server, coordinator 127.0.0.1:8080, mapper API 127.0.0.1:7070 (all from the package,
 *         the coordinator and mapper from the packaged settings files filled in)
 *
 * s1's agent runs as isthmus-agent.service runs it: not root, CAP_NET_ADMIN and no other
 * capability, no new privileges. The units are checked with `systemd-analyze verify`.
 */
import anyTest, { type TestFn } from 'ava';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTopology, startStaticOverlay, repoRoot, testPrefix, type StaticOverlay, type Topology } from '../harness/netns';
import { run } from '../harness/procs';
import { forRoot } from '../harness/root';

interface Ctx {
  dir: string;
  deb: string;
  root: string;
  isthmus: string;
}

const test = anyTest as TestFn<Ctx>;
const rootTest = forRoot(test, __filename, {
  tools: ['dpkg-deb', 'systemd-analyze', 'setpriv', 'unshare', 'ip', 'nft', 'ping', 'redis-server', 'curl'],
  why: 'network namespaces, TUN devices and setpriv',
});
const UNITS = ['agent', 'relay', 'coordinator', 'mapper'].map((d) => `isthmus-${d}.service`);
const ADMIN_TOKEN = 'package-test-admin-token-0123456789';
// Made inside tests, so kept here: ava gives each test its own copy of t.context.
let topo: Topology | undefined;
let overlay: StaticOverlay | undefined;

test.before(async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-package-test-'));
  t.context.dir = dir;
  chmodSync(dir, 0o755); // the unprivileged agent runs the unpacked files from here
  // --no-build: `npm test` compiled dist/ and the addon a moment ago.
  const built = await run(join(repoRoot(), 'scripts/package.sh'), ['--no-build', '--out', dir], { timeoutMs: 120_000 });
  t.context.deb = built.stdout.trim().split('\n').pop()!;
  t.context.root = join(dir, 'root');
  await run('dpkg-deb', ['-x', t.context.deb, t.context.root]);
  t.context.isthmus = join(t.context.root, 'usr/bin/isthmus');
});

test.after.always(async (t) => {
  await overlay?.stop();
  await topo?.destroy();
  if (t.context.dir) rmSync(t.context.dir, { recursive: true, force: true });
});

rootTest('the package is isthmus_<version>_amd64.deb with the addon, the JavaScript, the entry point, config and units', (t) => {
  const { deb, root } = t.context;
  const { version } = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
  t.is(deb, join(t.context.dir, `isthmus_${version}_amd64.deb`));
  const lib = join(root, 'usr/lib/isthmus');
  for (const f of ['dist/cli/main.js', 'dist/policy/index.js', 'native-bindings/build/Release/isthmus_native.node',
    'coordinator/ui/dashboard.html', 'coordinator/ui/login.html', 'coordinator/ui/dashboard.js', 'coordinator/ui/dashboard.css',
    'node_modules/ioredis/package.json', 'node_modules/fastify/package.json', 'package.json']) {
    t.true(existsSync(join(lib, f)), f);
  }
  // Production dependencies only, and no tests, benchmarks or source maps of ours.
  for (const f of ['node_modules/typescript', 'node_modules/ava', 'node_modules/tsx', 'dist/bench', 'test', 'dist/cli/main.js.map']) {
    t.false(existsSync(join(lib, f)), f);
  }
  t.is(statSync(join(root, 'usr/bin/isthmus')).mode & 0o777, 0o755);
  for (const d of ['agent', 'relay', 'coordinator', 'mapper']) {
    // No secrets in it (they are credential files), and the dynamic user of the unit must read it.
    t.is(statSync(join(root, `etc/isthmus/${d}.yaml`)).mode & 0o777, 0o644, `${d}.yaml`);
  }
  t.deepEqual(readdirSync(join(root, 'lib/systemd/system')).sort(), [...UNITS].sort());
});

rootTest('dpkg-deb -I: it depends on nodejs (>= 20), libc6 and iproute2, nothing a build or a test needs', async (t) => {
  const info = (await run('dpkg-deb', ['-I', t.context.deb])).stdout;
  const depends = /^ Depends: (.*)$/m.exec(info)?.[1] ?? '';
  t.deepEqual(depends.split(',').map((d) => d.trim().split(' ')[0]).sort(), ['iproute2', 'libc6', 'nodejs']);
  t.regex(depends, /nodejs \(>= 20\)/);
  // Every relationship field, not just Depends: apt installs Recommends by default.
  const relations = [...info.matchAll(/^ (Pre-Depends|Depends|Recommends|Suggests|Enhances): (.*)$/gm)].map((m) => m[2]).join(', ');
  t.is(relations, depends, 'Depends is the only relationship');
  t.notRegex(relations, /redis|iperf3|nebula|wireguard|gcc|g\+\+|make|python|node-gyp|build-essential/i);
  t.regex((await run('dpkg-deb', ['-f', t.context.deb, 'Architecture'])).stdout, /^amd64$/m);
  // The settings files survive upgrades and removal (dpkg asks before replacing an edited one).
  const conffiles = (await run('dpkg-deb', ['-I', t.context.deb, 'conffiles'])).stdout.trim().split('\n').sort();
  t.deepEqual(conffiles, ['agent', 'coordinator', 'mapper', 'relay'].map((d) => `/etc/isthmus/${d}.yaml`));
});

rootTest('the units pass systemd-analyze verify, hardened (offline security exposure below 3)', async (t) => {
  const { root, dir } = t.context;
  // verify needs ExecStart's binary: point the units at the unpacked root (with --root it would
  // look for sysinit.target and the rest of systemd inside the package instead).
  const units = join(dir, 'units');
  await run('mkdir', ['-p', units]);
  for (const u of UNITS) {
    const text = readFileSync(join(root, 'lib/systemd/system', u), 'utf8');
    const d = /^isthmus-(\w+)\.service$/.exec(u)![1];
    t.regex(text, new RegExp(`^ExecStart=/usr/bin/isthmus ${d} --config /etc/isthmus/${d}\\.yaml$`, 'm'));
    t.regex(text, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    t.regex(text, /^Restart=always$/m);
    t.regex(text, /^DynamicUser=yes$/m);
    writeFileSync(join(units, u), text.replaceAll('/usr/bin/isthmus', join(root, 'usr/bin/isthmus'))
      .replaceAll('/etc/isthmus/', join(root, 'etc/isthmus/')));
  }
  const r = await run('systemd-analyze', ['verify', '--man=no', ...UNITS.map((u) => join(units, u))], { check: false });
  t.is(r.code, 0, r.stderr);
  t.is((r.stdout + r.stderr).trim(), '', 'no warnings');
  const agent = readFileSync(join(units, 'isthmus-agent.service'), 'utf8');
  t.regex(agent, /^AmbientCapabilities=CAP_NET_ADMIN$/m);
  t.regex(agent, /^CapabilityBoundingSet=CAP_NET_ADMIN$/m);
  t.regex(agent, /^StateDirectory=isthmus$/m);
  for (const u of UNITS) {
    const s = await run('systemd-analyze', ['security', '--offline=yes', join(units, u)], { check: false });
    const level = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(s.stdout)?.[1]);
    t.true(level < 3, `${u}: exposure ${level}`);
  }
});

rootTest('the unpacked isthmus runs a relay and two agents, one as nobody with only CAP_NET_ADMIN; ping crosses both ways', async (t) => {
  topo = await createTopology({ prefix: testPrefix('itpk') });
  overlay = await startStaticOverlay(topo, { cli: [t.context.isthmus], unprivileged: ['s1'] });
  // s1 really is unprivileged: the agent process (the wrapper exec'd node) runs as nobody with CAP_NET_ADMIN alone.
  const status = readFileSync(`/proc/${overlay.s1.process!.pid}/status`, 'utf8');
  t.regex(readFileSync(`/proc/${overlay.s1.process!.pid}/cmdline`, 'utf8'), /usr\/lib\/isthmus\/dist\/cli\/main\.js\0agent/);
  const nobodyUid = (await run('id', ['-u', 'nobody'])).stdout.trim();
  t.regex(status, new RegExp(`^Uid:\\s+${nobodyUid}\\s+${nobodyUid}\\s`, 'm'));
  t.regex(status, /^CapEff:\s+0000000000001000$/m);
  t.regex(status, /^CapBnd:\s+0000000000001000$/m);
  t.regex(readFileSync(`/proc/${overlay.a1.process!.pid}/cmdline`, 'utf8'), new RegExp(`^[^\\0]*node\\0${t.context.root}/usr/lib/isthmus/dist/cli/main\\.js\\0agent`));
  const there = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '10', '-i', '0.3', '-w', '10', overlay.s1.vip], { check: false });
  t.regex(there.stdout, / 0% packet loss|[1-9] received/);
  const back = await topo.exec(topo.ns.vpc2, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', overlay.a1.vip]);
  t.regex(back.stdout, /3 received/);
});

rootTest('the unpacked coordinator and mapper run on Redis: health check, a join token, a lookup', async (t) => {
  topo ??= await createTopology({ prefix: testPrefix('itpk') });
  const hub = topo.ns.hub;
  const redisDir = join(t.context.dir, 'redis');
  await run('mkdir', ['-p', redisDir]);
  topo.spawn(hub, 'redis-server', ['--port', '6379', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], { name: 'redis' });
  await topo.waitForListen(hub, 6379, 'tcp');
  const env = { ...process.env, ISTHMUS_ADMIN_TOKEN: ADMIN_TOKEN };
  const { isthmus, root } = t.context;
  // The packaged settings files as an operator fills them in: the shipped text plus the keys set.
  const settings = (d: string, lines: string[]) => {
    const f = join(t.context.dir, `${d}.yaml`);
    writeFileSync(f, `${readFileSync(join(root, `etc/isthmus/${d}.yaml`), 'utf8')}\n${lines.join('\n')}\n`);
    return f;
  };
  const coordinator = topo.spawn(hub, isthmus, ['coordinator', '--config', settings('coordinator', ['listen: 127.0.0.1:8080', 'redis: redis://127.0.0.1:6379'])],
    { name: 'coordinator', env });
  const mapper = topo.spawn(hub, isthmus, ['mapper', '--config', settings('mapper', ['api: 127.0.0.1:7070', 'redis: redis://127.0.0.1:6379'])], { name: 'mapper', env });
  await topo.waitForListen(hub, 8080, 'tcp', 20_000).catch((err: Error) => { throw new Error(`${err.message}: ${coordinator.output()}`); });
  await topo.waitForListen(hub, 7070, 'tcp', 20_000).catch((err: Error) => { throw new Error(`${err.message}: ${mapper.output()}`); });
  const health = await topo.exec(hub, 'curl', ['-sS', 'http://127.0.0.1:8080/v1/health']);
  t.deepEqual(JSON.parse(health.stdout), { ok: true });
  // The dashboard's files came with the package: its login page and script are served.
  const ui = await topo.exec(hub, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:8080/ui/login']);
  t.is(ui.stdout, '200');
  const uiScript = await topo.exec(hub, 'curl', ['-sS', 'http://127.0.0.1:8080/ui/assets/dashboard.js']);
  t.regex(uiScript.stdout, /EventSource\('\/ui\/events'\)/);
  const token = await topo.exec(hub, isthmus, ['token', 'create', '--coordinator', 'http://127.0.0.1:8080', '--insecure-coordinator', '--uses', '2', '--ttl', '10m'], { env });
  t.regex(token.stdout, /isj_/);
  const lookup = await topo.exec(hub, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:7070/v1/map/10.91.1.2']);
  t.is(lookup.stdout, '404', 'nobody joined yet: not mapped');
});
