/**
 * Bench subject: stock wireguard-go (Debian), hub-and-spoke; the shape is shared with
 * wireguard-go-current.ts (the same daemon, today's upstream build with offloads).
 *
 *   vpc1  wg 10.99.0.2 ──UDP──► VIP:51820  hub wg 10.99.0.1  ◄──UDP── vpc2  wg 10.99.0.3
 *                                     (decrypt, route wg→wg, encrypt)
 *
 * The hub's peers are the two spokes (AllowedIPs = their /32); each spoke has one peer, the hub,
 * with AllowedIPs = the whole wg subnet and the VIP as endpoint. The hub forwards only from its wg
 * interface back into it (per-device forwarding + one nft accept), never between the vpc veths.
 */
import { run } from '../procs';
import type { BenchSubject, SubjectEndpoints } from '../subject';
import type { Topology } from '../topology';
import { startWireguardGo, wgGenKey, wgPubKey, type WireguardGo } from './wireguard-go';

export const WG_HUB_SUBNET = { hub: '10.99.0.1', spoke1: '10.99.0.2', spoke2: '10.99.0.3', cidr: '10.99.0.0/24', port: 51820 } as const;

export function wireguardGoHubSubject(): BenchSubject {
  return wireguardGoHubShape({
    name: 'wireguard-go',
    binary: () => 'wireguard-go',
    requires: ['wireguard-go', 'wg'],
    async describe() {
      const v = await run('wireguard-go', ['--version'], { check: false });
      return `${v.stdout.split('\n')[0]?.trim() || 'wireguard-go'} hub-and-spoke (Debian package)`;
    },
  });
}

/** What differs between wireguard-go hub-and-spoke subjects: which executable, and how it is named. */
export interface WireguardGoHubShape {
  name: string;
  /** The executable to start, resolved at setup (a PATH command or an absolute path). */
  binary(): string;
  requires: readonly string[];
  describe(): Promise<string>;
  /** Why the subject cannot run here (e.g. its binary is absent), or undefined. */
  unavailable?(): string | undefined;
}

/** The hub-and-spoke subject for any wireguard-go executable (see the diagram above). */
export function wireguardGoHubShape(shape: WireguardGoHubShape): BenchSubject {
  let daemons: WireguardGo[] = [];
  let closeForward: (() => Promise<void>) | undefined;
  return {
    name: shape.name,
    requires: shape.requires,
    describe: shape.describe,
    ...(shape.unavailable ? { unavailable: shape.unavailable } : {}),
    async setup(topo: Topology): Promise<SubjectEndpoints> {
      const why = shape.unavailable?.();
      if (why) throw new Error(`${shape.name}: ${why}`);
      const binary = shape.binary();
      const S = WG_HUB_SUBNET;
      const [kHub, k1, k2] = [await wgGenKey(), await wgGenKey(), await wgGenKey()];
      const [pHub, p1, p2] = [await wgPubKey(kHub), await wgPubKey(k1), await wgPubKey(k2)];
      const hubIf = `${topo.prefix}-wgh`;
      const hub = await startWireguardGo(topo, {
        ns: topo.ns.hub, ifname: hubIf, privateKey: kHub, listenPort: S.port, address: `${S.hub}/24`, binary,
        peers: [
          { publicKey: p1, allowedIps: [`${S.spoke1}/32`] },
          { publicKey: p2, allowedIps: [`${S.spoke2}/32`] },
        ],
      });
      daemons.push(hub);
      closeForward = await topo.allowHubForward(hubIf, hubIf);
      for (const [ns, key, addr, tag] of [[topo.ns.vpc1, k1, S.spoke1, 'wg1'], [topo.ns.vpc2, k2, S.spoke2, 'wg2']] as const) {
        daemons.push(await startWireguardGo(topo, {
          ns, ifname: `${topo.prefix}-${tag}`, privateKey: key, address: `${addr}/24`, binary,
          peers: [{ publicKey: pHub, allowedIps: [S.cidr], endpoint: `${topo.addr.vip}:${S.port}`, persistentKeepalive: 25 }],
        }));
      }
      return { serverAddr: S.spoke2, clientAddr: S.spoke1, pids: () => daemons.map((d) => d.process.pid) };
    },
    async teardown() {
      await closeForward?.();
      closeForward = undefined;
      await Promise.all(daemons.map((d) => d.stop()));
      daemons = [];
    },
  };
}
