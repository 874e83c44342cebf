import type { CommandModule } from 'yargs';
import { createTopology, randomPrefix, type Topology } from '../../bench/topology';
import { startStaticOverlay, type StaticOverlay } from '../../bench/peers/isthmus';
import { CliError, onShutdown } from '../shutdown';

interface DemoArgs {
  seconds: number;
}

function say(line: string): void {
  process.stdout.write(line + '\n');
}

async function waitForPing(topo: Topology, ns: string, addr: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await topo.exec(ns, 'ping', ['-c', '1', '-W', '1', addr], { check: false });
    if (r.code === 0) return;
    if (Date.now() > until) throw new CliError(`no answer from ${addr} within ${timeoutMs / 1000} s`);
  }
}

/** `isthmus demo`: the whole data path on this machine, in network namespaces, then gone. */
export const demoCommand: CommandModule<object, DemoArgs> = {
  command: 'demo',
  describe: 'Build two isolated VPCs and a hub in network namespaces, start a relay and two members, show ping and a TCP transfer through the overlay, tear everything down (root)',
  builder: (y) => y.option('seconds', { type: 'number', default: 5, describe: 'Length of the TCP transfer' })
    .check((a) => {
      if (!(a.seconds >= 1 && a.seconds <= 600)) throw new Error('--seconds must be between 1 and 600');
      return true;
    }),
  handler: async (args) => {
    if (process.getuid?.() !== 0) throw new CliError('the demo creates network namespaces and TUN devices: run it as root');
    let topo: Topology | undefined;
    let overlay: StaticOverlay | undefined;
    const teardown = async () => {
      await overlay?.stop();
      await topo?.destroy();
    };
    onShutdown(teardown);
    try {
      topo = await createTopology({ prefix: randomPrefix('isd') });
      const { vpc1, vpc2 } = topo.ns;
      say(`isthmus demo: two isolated VPCs and a hub, in network namespaces ${topo.prefix}-*`);
      say(`  vpc1 ${topo.addr.vpc1}   vpc2 ${topo.addr.vpc2}   hub VIP ${topo.addr.vip}`);
      const direct = await topo.exec(vpc1, 'ping', ['-c', '1', '-W', '1', topo.addr.vpc2], { check: false });
      say(`  vpc1 → vpc2 directly: ${direct.code === 0 ? 'REACHABLE (the topology is wrong!)' : 'unreachable, as intended'}`);

      overlay = await startStaticOverlay(topo);
      const { a1, s1 } = overlay;
      say(`\nrelay on the VIP ${topo.addr.vip}:7000; members a1 ${a1.vip} (vpc1) and s1 ${s1.vip} (vpc2)`);
      await waitForPing(topo, vpc1, s1.vip, 15_000);

      const ping = await topo.exec(vpc1, 'ping', ['-c', '5', '-i', '0.2', s1.vip]);
      const rtt = /= [\d.]+\/([\d.]+)\//.exec(ping.stdout)?.[1];
      say(`\nping a1 → s1 (${s1.vip}) through the relay: 5/5 answered, average RTT ${rtt} ms`);

      const server = topo.spawn(vpc2, 'iperf3', ['-s', '-1', '-B', s1.vip], { name: 'iperf3-server' });
      await topo.waitForListen(vpc2, 5201, 'tcp');
      const client = await topo.exec(vpc1, 'iperf3', ['-c', s1.vip, '-t', String(args.seconds), '-J'], { timeoutMs: (args.seconds + 20) * 1000 });
      const result = JSON.parse(client.stdout) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
      await server.waitForExit(5000).catch(() => server.stop());
      const r = result.end.sum_received;
      say(`TCP a1 → s1 for ${args.seconds} s (iperf3): ${(r.bytes / 2 ** 20).toFixed(0)} MiB at ${(r.bits_per_second / 1e6).toFixed(0)} Mbit/s, encrypted end to end; the relay saw only ciphertext`);
    } finally {
      await teardown();
      overlay = undefined;
      topo = undefined;
      say('\nteardown: namespaces, TUN devices and processes removed');
    }
  },
};
