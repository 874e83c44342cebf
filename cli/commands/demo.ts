import type { CommandModule } from 'yargs';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology, randomPrefix, startJoinedOverlay, cliPath, run, type Topology, type JoinedOverlay } from '../../testbed';
import { DEFAULT_PREFIX, redisKeys } from '../../common';
import { CliError, onShutdown } from '../shutdown';

interface DemoArgs {
  seconds: number;
}

function say(line = ''): void {
  process.stdout.write(line + '\n');
}

function requireTool(name: string, pkg: string): void {
  if (!['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(`${d}/${name}`))) {
    throw new CliError(`the demo needs ${name}: apt-get install -y --no-install-recommends ${pkg} (or run ./scripts/demo.sh, which installs it)`);
  }
}

async function waitForPing(topo: Topology, ns: string, addr: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await topo.exec(ns, 'ping', ['-c', '1', '-W', '1', addr], { check: false });
    if (r.code === 0) return;
    if (Date.now() > until) throw new CliError(`no answer from ${addr} within ${timeoutMs / 1000} s`);
  }
}

/** The demo's ports: ping, iperf3, the HTTP server the mapper reaches. */
const DEMO_PORTS = ['icmp', 'tcp/5201', 'tcp/8000'];
/** The mission's policy: controllers reach agents, agents reach no one. */
const MISSION_POLICY = { rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: DEMO_PORTS }] };

/** A member's `policy` drop counter: `isthmus status --json` on its control socket. */
async function policyDrops(stateDir: string): Promise<number> {
  const r = await run(process.execPath, [cliPath(), 'status', '--state-dir', stateDir, '--json']);
  return (JSON.parse(r.stdout) as { drops?: Record<string, number> }).drops?.policy ?? 0;
}

async function admin(overlay: JoinedOverlay, args: string[]): Promise<string> {
  const r = await overlay.admin(args);
  if (r.code !== 0) throw new CliError(`isthmus ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

async function hgetall(topo: Topology, key: string): Promise<Record<string, string>> {
  const out = (await topo.exec(topo.ns.hub, 'redis-cli', ['-h', topo.addr.vip, '-p', '6379', 'HGETALL', key])).stdout.trim().split('\n');
  const r: Record<string, string> = {};
  for (let i = 0; i + 1 < out.length; i += 2) r[out[i]] = out[i + 1];
  return r;
}

/** `isthmus demo`: the whole system on this machine, in network namespaces, then gone. */
export const demoCommand: CommandModule<object, DemoArgs> = {
  command: 'demo',
  describe: 'Build two isolated VPCs and a hub in network namespaces; start Redis, two coordinators and two relays behind a VIP, and two members that join with tagged tokens under the policy "controllers reach agents"; show ping, a TCP transfer, a relay failover, the mapper (SOCKS5, HTTP proxy), transparent mode and the agent refused when it dials the controller; tear everything down (root)',
  builder: (y) => y.option('seconds', { type: 'number', default: 5, describe: 'Length of the TCP transfer' })
    .check((a) => {
      if (!(a.seconds >= 1 && a.seconds <= 600)) throw new Error('--seconds must be between 1 and 600');
      return true;
    }),
  handler: async (args) => {
    if (process.getuid?.() !== 0) throw new CliError('the demo creates network namespaces and TUN devices: run it as root');
    requireTool('redis-server', 'redis-server');
    requireTool('iperf3', 'iperf3');
    requireTool('nft', 'nftables');
    let topo: Topology | undefined;
    let overlay: JoinedOverlay | undefined;
    const teardown = async () => {
      const o = overlay;
      const tp = topo;
      overlay = undefined;
      topo = undefined;
      await o?.stop();
      await tp?.destroy();
    };
    onShutdown(teardown);
    try {
      topo = await createTopology({ prefix: randomPrefix('isd'), relays: 2 });
      const { vpc1, vpc2 } = topo.ns;
      say(`isthmus demo: two isolated VPCs and a hub, in network namespaces ${topo.prefix}-*`);
      say(`  vpc1 ${topo.addr.vpc1}   vpc2 ${topo.addr.vpc2}   hub VIP ${topo.addr.vip}`);
      const direct = await topo.exec(vpc1, 'ping', ['-c', '1', '-W', '1', topo.addr.vpc2], { check: false });
      say(`  vpc1 → vpc2 directly: ${direct.code === 0 ? 'REACHABLE (the topology is wrong!)' : 'unreachable, as intended'}`);

      overlay = await startJoinedOverlay(topo, { cluster: true });
      say(`\nhub: redis-server on the VIP; relays r1 ${topo.addr.relays[0]} and r2 ${topo.addr.relays[1]} behind VIP:7000/udp`);
      say(`  (nftables flow-hash DNAT, health-checked, meshed through Redis); a coordinator beside each behind VIP:8080/tcp`);
      say(`  coordinators serve HTTPS (certificate from a throwaway CA) and sign peer maps with one key; members pin it: ${overlay.tls.signingPublicKey}`);
      // Tags come from the token (members never choose their own); each member claims the
      // address it joins from as its original IP.
      const agentToken = await overlay.createToken(['--uses', '1', '--ttl', '10m', '--tag', 'agent']);
      const controllerToken = await overlay.createToken(['--uses', '1', '--ttl', '10m', '--tag', 'controller']);
      say(`admin: isthmus token create --uses 1 --ttl 10m --tag agent|controller  →  ${agentToken.slice(0, 6)}…, ${controllerToken.slice(0, 6)}… (stored hashed in Redis)`);
      // The mission's policy, before anyone joins: each peer map holds only what it allows.
      const policyFile = join(overlay.dir, 'policy.json');
      writeFileSync(policyFile, JSON.stringify(MISSION_POLICY) + '\n');
      await admin(overlay, ['policy', 'set', policyFile]);
      say(`admin: isthmus policy set policy.json  →  ${JSON.stringify(MISSION_POLICY)}`);
      say(`  controllers reach agents on ${DEMO_PORTS.join(', ')}; agents reach no one`);
      const a1 = await overlay.join('a1', vpc1, topo.addr.vpc1, { token: agentToken });
      // S routes vpc1's original prefix into the overlay: transparent mode.
      const s1 = await overlay.join('s1', vpc2, topo.addr.vpc2, { token: controllerToken, extraArgs: ['--route-original', '10.91.1.0/24'] });
      say(`a1 (vpc1, original ${a1.originalIp}) joined: virtual IP ${a1.vip}`);
      say(`s1 (vpc2, original ${s1.originalIp}) joined: virtual IP ${s1.vip}`);
      const keys = redisKeys(DEFAULT_PREFIX);
      const session = await hgetall(topo, keys.session(a1.vip));
      const sSession = await hgetall(topo, keys.session(s1.vip));
      say(`Redis: ${keys.orig(a1.originalIp)} → ${a1.vip}; relay 4-tuple (${session.relayIp}, ${session.relayPort}, ${session.agentIp}, ${session.agentPort}) on ${session.relayId}`);
      say(`  s1 landed on ${sSession.relayId}${sSession.relayId === session.relayId ? ' too' : `: their packets take one mesh hop ${session.relayId} ↔ ${sSession.relayId}`}`);

      await waitForPing(topo, vpc2, a1.vip, 15_000);
      const ping = await topo.exec(vpc2, 'ping', ['-c', '5', '-i', '0.2', a1.vip]);
      const rtt = /= [\d.]+\/([\d.]+)\//.exec(ping.stdout)?.[1];
      say(`\nping s1 → a1 (${a1.vip}) through the relay: 5/5 answered, average RTT ${rtt} ms`);

      const server = topo.spawn(vpc1, 'iperf3', ['-s', '-1', '-B', a1.vip], { name: 'iperf3-server' });
      await topo.waitForListen(vpc1, 5201, 'tcp');
      // s1 pulls from a1, as the controller pulls from its agents.
      const client = await topo.exec(vpc2, 'iperf3', ['-c', a1.vip, '-R', '-t', String(args.seconds), '-J'], { timeoutMs: (args.seconds + 20) * 1000 });
      const result = JSON.parse(client.stdout) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
      await server.waitForExit(5000).catch(() => server.stop());
      const r = result.end.sum_received;
      say(`TCP a1 → s1 for ${args.seconds} s (iperf3 -R): ${(r.bytes / 2 ** 20).toFixed(0)} MiB at ${(r.bits_per_second / 1e6).toFixed(0)} Mbit/s, encrypted end to end; the relay saw only ciphertext`);

      // Failover: kill a1's relay while s1 pings a1.
      const home = Number(session.relayId.slice(1));
      const pinging = topo.exec(vpc2, 'ping', ['-c', '40', '-i', '0.1', a1.vip], { check: false, timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 1000));
      await overlay.cluster!.killRelay(home);
      const lost = await pinging;
      const got = Number(/(\d+) received/.exec(lost.stdout)?.[1] ?? 0);
      const moved = await hgetall(topo, keys.session(a1.vip));
      say(`\nkill -9 ${session.relayId} while s1 pings a1 every 100 ms: ${got}/40 answered; a1 rebound to ${moved.relayId ?? '?'} (the health check took ${session.relayId} out of the VIP)`);
      await overlay.cluster!.startRelay(home);

      // Unmodified apps on S reach a1's HTTP server by a1's ORIGINAL IP.
      const orig = a1.originalIp;
      topo.spawn(vpc1, 'python3', ['-m', 'http.server', '8000', '--bind', '0.0.0.0', '--directory', '/usr/share/doc/iperf3'], { name: 'http-server' });
      await topo.waitForListen(vpc1, 8000, 'tcp');
      topo.spawn(vpc2, process.execPath, [cliPath(), 'mapper', '--redis', overlay.redisUrl, '--api', '127.0.0.1:7070',
        '--socks', '127.0.0.1:1080', '--http-proxy', '127.0.0.1:3128'], { name: 'mapper' });
      await topo.waitForListen(vpc2, 1080, 'tcp');
      await topo.waitForListen(vpc2, 7070, 'tcp');
      say(`
a1 serves HTTP on :8000; s1 runs \`isthmus mapper\` (API 127.0.0.1:7070, SOCKS5 127.0.0.1:1080, HTTP proxy 127.0.0.1:3128)`);
      const ways: Array<[string, string[]]> = [
        ['by virtual IP', [`http://${a1.vip}:8000/`]],
        ['SOCKS5, original IP', ['--socks5-hostname', '127.0.0.1:1080', `http://${orig}:8000/`]],
        ['HTTP proxy, original IP', ['-x', 'http://127.0.0.1:3128', `http://${orig}:8000/`]],
        ['transparent, original IP', [`http://${orig}:8000/`]],
      ];
      const lookup = await topo.exec(vpc2, 'curl', ['-sS', `http://127.0.0.1:7070/v1/map/${orig}`], { check: false });
      say(`  GET /v1/map/${orig} → ${lookup.stdout.trim()}`);
      for (const [label, curlArgs] of ways) {
        const c = await topo.exec(vpc2, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download}B %{time_total}s', '--max-time', '10', ...curlArgs], { check: false });
        say(`  curl ${curlArgs.join(' ').padEnd(60)} ${label.padEnd(25)} → ${c.code === 0 ? c.stdout : 'FAILED ' + c.stderr.trim()}`);
      }

      // The other way: the agent dials the controller, which serves HTTP too.
      topo.spawn(vpc2, 'python3', ['-m', 'http.server', '8000', '--bind', '0.0.0.0', '--directory', '/usr/share/doc/iperf3'], { name: 'http-server-s1' });
      await topo.waitForListen(vpc2, 8000, 'tcp');
      const dropsBefore = await policyDrops(s1.stateDir);
      const dial = await topo.exec(vpc1, 'curl', ['-sS', '-o', '/dev/null', '--connect-timeout', '2', `http://${s1.vip}:8000/`], { check: false });
      const back = await topo.exec(vpc1, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', s1.vip], { check: false });
      const pong = Number(/(\d+) received/.exec(back.stdout)?.[1] ?? 0);
      const dropped = (await policyDrops(s1.stateDir)) - dropsBefore;
      say(`
policy: a1 (tag:agent) dials s1 (tag:controller) ${s1.vip}: tcp/8000 ${dial.code === 0 ? 'CONNECTED (the policy is not enforced!)' : 'no connection in 2 s'}, ping ${pong}/2 answered`);
      say(`  s1's agent dropped ${dropped} packets from a1 (drop reason policy, \`isthmus status\`); s1's own flows to a1 all worked above`);
      for (const [from, to] of [['s1', 'a1'], ['a1', 's1']]) {
        const check = await overlay.admin(['policy', 'check', '--from', from, '--to', to, '--port', 'tcp/8000']);
        say(`  isthmus policy check --from ${from} --to ${to} --port tcp/8000  →  ${(check.stdout.trim() || check.stderr.trim()).split('\n')[0]}`);
      }
    } finally {
      await teardown();
      say('\nteardown: namespaces, TUN devices, Redis and every process removed');
    }
  },
};
