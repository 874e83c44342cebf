/**
 * The three-namespace test topology shared by the netns tests, the demo and the bench
 * (in the spirit of wireguard-go's tests/netns.sh):
 *
 *                           <p>-hub  (VIP 10.90.0.1/32 on lo)
 *   <p>-vpc1                ┌───────────────────────────────┐                 <p>-vpc2
 *   eth0 10.91.1.2/24 ──veth── to-vpc1 10.91.1.1/24   to-vpc2 10.92.1.1/24 ──veth── eth0 10.92.1.2/24
 *   route VIP via .1        │  nft table ip <p>: forward policy drop,       │   route VIP via .1
 *                           │  prerouting nat: VIP → relays (when relays>0) │
 *                           └─── to-r<i> 10.93.<i>.1/24 ── veth ── <p>-r<i> eth0 10.93.<i>.2/24
 *                                                                   default via 10.93.<i>.1
 *
 * vpc1 and vpc2 reach only the hub's addresses (the VIP): they have no route to each other, the
 * hub has forwarding off (conf.all.forwarding=0) and its nft forward chain drops by default. A
 * subject that must route through the hub (wireguard-go hub-and-spoke) opens exactly one
 * interface pair with allowHubForward(). With `relays: N` the hub forwards vpc ↔ relay only and
 * DNATs the VIP to the relay set (setVipBackends: the hook for issue 5's load balancer and
 * health check). Interface names live inside the namespaces, so only the namespace names (and
 * wireguard-go's /var/run/wireguard sockets) are global; all carry the per-run prefix.
 *
 * destroy() (and destroySync() from exit/signal handlers, installed on first use) kills every
 * process started through spawn() by PID and deletes the namespaces, which takes the veths,
 * dummies and nft tables with them.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { atProcessEnd, ManagedProcess, run, runSync, killPidSync, systemBin, type RunOptions, type RunResult, type SpawnOptions } from './procs';

export const TOPOLOGY_ADDRS = {
  vip: '10.90.0.1',
  hubVpc1: '10.91.1.1',
  vpc1: '10.91.1.2',
  hubVpc2: '10.92.1.1',
  vpc2: '10.92.1.2',
  vpcPrefixLen: 24,
} as const;

/** Hub and relay address of relay `i` (1-based) on its own /24. */
export function relayAddrs(i: number): { hub: string; relay: string } {
  return { hub: `10.93.${i}.1`, relay: `10.93.${i}.2` };
}

export interface TopologyOptions {
  /** Namespace name prefix, [a-z][a-z0-9]{1,9}. @default 'isth' + 4 random hex chars */
  prefix?: string;
  /** Relay namespaces behind the VIP (phase 2 of issue 5). @default 0 */
  relays?: number;
  /** MTU of every veth. @default 1500 */
  mtu?: number;
}

export interface Topology {
  readonly prefix: string;
  readonly ns: { readonly hub: string; readonly vpc1: string; readonly vpc2: string; readonly relays: readonly string[] };
  readonly addr: typeof TOPOLOGY_ADDRS & { readonly relays: readonly string[] };
  /** Interface names inside the namespaces. */
  readonly ifaces: { readonly vpc: 'eth0'; readonly hubVpc1: 'to-vpc1'; readonly hubVpc2: 'to-vpc2'; readonly vip: 'lo' };
  /** The nft table (family ip) in the hub. */
  readonly nftTable: string;
  readonly mtu: number;
  /** Run a command inside `ns` and collect its output (rejects on non-zero exit unless check:false). */
  exec(ns: string, cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Start a long-running command inside `ns`; destroy() stops it by PID. */
  spawn(ns: string, cmd: string, args: string[], opts?: SpawnOptions): ManagedProcess;
  /** Resolve when something in `ns` listens on `port` (TCP or UDP). */
  waitForListen(ns: string, port: number, proto?: 'tcp' | 'udp', timeoutMs?: number): Promise<void>;
  /**
   * Let the hub forward packets arriving on `iif` and leaving on `oif` (nft wildcards like 'to-r*'
   * allowed in `oif`): turns on forwarding for device `iif` only and adds one nft accept.
   * Returns the undo.
   */
  allowHubForward(iif: string, oif: string): Promise<() => Promise<void>>;
  /** (Re)write the VIP load balancer: VIP:port → backends by flow hash; [] removes it. */
  setVipBackends(proto: 'udp' | 'tcp', port: number, backends: readonly string[]): Promise<void>;
  /**
   * Start the health checker (testbed/vip-health.ts) in the hub: it probes each backend's relay
   * UDP port (`ip:port`) and keeps the VIP's UDP backend set to the live ones. It prints one
   * JSON line per change: {"event":"down"|"up","backend","live":[...]}. destroy() stops it.
   */
  startVipHealthCheck(port: number, backends: readonly string[], opts?: VipHealthOptions): ManagedProcess;
  destroy(): Promise<void>;
  destroySync(): void;
}

export interface VipHealthOptions {
  /** Probe period per backend, ms. @default 200 */
  intervalMs?: number;
  /** Consecutive failed probes before a backend leaves the set. @default 2 */
  fall?: number;
  /** Consecutive good probes before it returns. @default 2 */
  rise?: number;
}

/**
 * nft commands that make the VIP's `proto` dport `port` DNAT to `backends` by flow hash
 * (jhash of source address and port), so a member's UDP flow stays on one relay until its
 * source port changes; existing flows stay pinned by conntrack when the set changes.
 */
/** The chain that balances one VIP service (proto, port); vip-lb jumps to it. */
export function vipLbChain(proto: 'udp' | 'tcp', port: number): string {
  return `vip-lb-${proto}-${port}`;
}

/** Rewrite one VIP service's backend set (its own chain, so services don't disturb each other). */
export function vipLbCommands(table: string, proto: 'udp' | 'tcp', port: number, backends: readonly string[]): string[] {
  const chain = vipLbChain(proto, port);
  const cmds = [`add chain ip ${table} ${chain}`, `flush chain ip ${table} ${chain}`];
  if (backends.length > 0) {
    const map = backends.map((b, i) => `${i} : ${b}`).join(', ');
    cmds.push(`add rule ip ${table} ${chain} ${proto} dport ${port} dnat to jhash ip saddr . ${proto} sport mod ${backends.length} map { ${map} }`);
  }
  return cmds;
}

export class TopologyError extends Error {
  override readonly name = 'TopologyError';
  constructor(readonly code: 'EPREFIX' | 'EPERM' | 'EEXIST', message: string) {
    super(message);
  }
}

export function randomPrefix(base = 'isth'): string {
  return base + randomBytes(2).toString('hex');
}

const PREFIX_RE = /^[a-z][a-z0-9]{1,9}$/;

class TopologyImpl implements Topology {
  readonly ns: Topology['ns'];
  readonly addr: Topology['addr'];
  readonly ifaces = { vpc: 'eth0', hubVpc1: 'to-vpc1', hubVpc2: 'to-vpc2', vip: 'lo' } as const;
  readonly nftTable: string;
  private readonly procs = new Set<ManagedProcess>();
  private readonly execPids = new Set<number>();
  private readonly created: string[] = [];
  private destroyed = false;
  /** Set by createTopology: drops the destroySync registered for the owner's end. */
  forgetAtEnd: () => void = () => undefined;

  constructor(readonly prefix: string, readonly mtu: number, relays: number) {
    const relayNs = Array.from({ length: relays }, (_, i) => `${prefix}-r${i + 1}`);
    this.ns = { hub: `${prefix}-hub`, vpc1: `${prefix}-vpc1`, vpc2: `${prefix}-vpc2`, relays: relayNs };
    this.addr = { ...TOPOLOGY_ADDRS, relays: relayNs.map((_, i) => relayAddrs(i + 1).relay) };
    this.nftTable = prefix;
  }

  async build(): Promise<void> {
    const { hub, vpc1, vpc2, relays } = this.ns;
    const A = TOPOLOGY_ADDRS;
    for (const ns of [hub, vpc1, vpc2, ...relays]) {
      await run('ip', ['netns', 'add', ns]);
      this.created.push(ns);
      await this.ip(ns, 'link', 'set', 'lo', 'up');
      await this.exec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1',
        'net.ipv4.conf.all.forwarding=0', 'net.ipv4.conf.default.forwarding=0']);
    }
    const link = async (nsA: string, ifA: string, addrA: string, nsB: string, ifB: string, addrB: string) => {
      await this.ip(nsA, 'link', 'add', ifA, 'mtu', String(this.mtu), 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB, 'mtu', String(this.mtu));
      await this.ip(nsA, 'addr', 'add', `${addrA}/24`, 'dev', ifA);
      await this.ip(nsB, 'addr', 'add', `${addrB}/24`, 'dev', ifB);
      await this.ip(nsA, 'link', 'set', ifA, 'up');
      await this.ip(nsB, 'link', 'set', ifB, 'up');
    };
    await link(vpc1, 'eth0', A.vpc1, hub, 'to-vpc1', A.hubVpc1);
    await link(vpc2, 'eth0', A.vpc2, hub, 'to-vpc2', A.hubVpc2);
    // On lo, not a dummy: containers often lack the dummy module.
    await this.ip(hub, 'addr', 'add', `${A.vip}/32`, 'dev', 'lo');
    await this.ip(vpc1, 'route', 'add', `${A.vip}/32`, 'via', A.hubVpc1);
    await this.ip(vpc2, 'route', 'add', `${A.vip}/32`, 'via', A.hubVpc2);
    for (const [i, ns] of relays.entries()) {
      const r = relayAddrs(i + 1);
      await link(ns, 'eth0', r.relay, hub, `to-r${i + 1}`, r.hub);
      await this.ip(ns, 'route', 'add', 'default', 'via', r.hub);
    }
    const T = this.nftTable;
    await this.nft([
      `add table ip ${T}`,
      `add chain ip ${T} forward { type filter hook forward priority 0; policy drop; }`,
      `add rule ip ${T} forward ct state established,related accept`,
      `add chain ip ${T} prerouting { type nat hook prerouting priority -100; }`,
      `add chain ip ${T} vip-lb`,
      `add rule ip ${T} prerouting ip daddr ${A.vip} jump vip-lb`,
    ]);
    if (relays.length > 0) {
      // vpc ↔ relay only (replies ride the established rule); never vpc ↔ vpc.
      for (const vpcIf of ['to-vpc1', 'to-vpc2']) await this.allowHubForward(vpcIf, 'to-r*');
      for (let i = 1; i <= relays.length; i++) await this.exec(hub, 'sysctl', ['-qw', `net.ipv4.conf.to-r${i}.forwarding=1`]);
    }
  }

  exec(ns: string, cmd: string, args: string[], opts?: RunOptions): Promise<RunResult> {
    // Tracked too: a bench interrupted mid-iperf3 must not leave the client running.
    const track = (pid: number, exited: boolean) => { if (exited) this.execPids.delete(pid); else this.execPids.add(pid); };
    return run('ip', ['netns', 'exec', ns, systemBin(cmd), ...args], { ...opts, track });
  }

  spawn(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ManagedProcess {
    if (this.destroyed) throw new Error('topology already destroyed');
    const p = new ManagedProcess('ip', ['netns', 'exec', ns, systemBin(cmd), ...args], { name: `${cmd}@${ns}`, ...opts });
    this.procs.add(p);
    p.child.once('exit', () => this.procs.delete(p));
    return p;
  }

  async waitForListen(ns: string, port: number, proto: 'tcp' | 'udp' = 'tcp', timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.exec(ns, 'ss', ['-Hn', proto === 'tcp' ? '-lt' : '-lu', `sport = :${port}`], { check: false });
      if (r.stdout.trim() !== '') return;
      if (Date.now() > until) throw new Error(`nothing listens on ${proto}/${port} in ${ns} after ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  async allowHubForward(iif: string, oif: string): Promise<() => Promise<void>> {
    const T = this.nftTable;
    const comment = `fwd-${iif}-${oif}`.replace(/[^a-zA-Z0-9-]/g, '_');
    // Forwarding is a per-input-device switch in IPv4; conf.all stays 0.
    if (!iif.includes('*')) await this.exec(this.ns.hub, 'sysctl', ['-qw', `net.ipv4.conf.${iif}.forwarding=1`]);
    await this.nft([`add rule ip ${T} forward iifname "${iif}" oifname "${oif}" accept comment "${comment}"`]);
    return async () => {
      const list = await this.exec(this.ns.hub, 'nft', ['-a', 'list', 'chain', 'ip', T, 'forward'], { check: false });
      const m = list.stdout.split('\n').find((l) => l.includes(`"${comment}"`))?.match(/# handle (\d+)/);
      if (m) await this.nft([`delete rule ip ${T} forward handle ${m[1]}`]);
      if (!iif.includes('*')) await this.exec(this.ns.hub, 'sysctl', ['-qw', `net.ipv4.conf.${iif}.forwarding=0`], { check: false });
    };
  }

  /** VIP services that have their chain and the jump to it from vip-lb. */
  private readonly vipServices = new Set<string>();

  private async ensureVipService(proto: 'udp' | 'tcp', port: number): Promise<void> {
    const chain = vipLbChain(proto, port);
    if (this.vipServices.has(chain)) return;
    await this.nft([`add chain ip ${this.nftTable} ${chain}`, `add rule ip ${this.nftTable} vip-lb ${proto} dport ${port} jump ${chain}`]);
    this.vipServices.add(chain);
  }

  async setVipBackends(proto: 'udp' | 'tcp', port: number, backends: readonly string[]): Promise<void> {
    await this.ensureVipService(proto, port);
    await this.nft(vipLbCommands(this.nftTable, proto, port, backends));
  }

  /** The checker only rewrites its own chain: call setVipBackends('udp', port, …) first, which
   *  creates the chain and the jump to it. */
  startVipHealthCheck(port: number, backends: readonly string[], opts: VipHealthOptions = {}): ManagedProcess {
    const script = join(__dirname, existsSync(join(__dirname, 'vip-health.js')) ? 'vip-health.js' : 'vip-health.ts');
    const node = script.endsWith('.ts') ? [process.execPath, '--import', 'tsx', script] : [process.execPath, script];
    return this.spawn(this.ns.hub, node[0], [...node.slice(1), '--table', this.nftTable, '--port', String(port),
      '--backends', backends.join(','), '--interval', String(opts.intervalMs ?? 200), '--fall', String(opts.fall ?? 2),
      '--rise', String(opts.rise ?? 2)], { name: 'vip-health' });
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.forgetAtEnd();
    await Promise.all([...this.procs].map((p) => p.stop()));
    for (const pid of this.execPids) killPidSync(pid, 500);
    for (const ns of this.created.reverse()) await run('ip', ['netns', 'del', ns], { check: false });
    removeWgSockets(this.prefix);
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.forgetAtEnd();
    for (const p of this.procs) p.stopSync();
    for (const pid of this.execPids) killPidSync(pid, 500);
    for (const ns of this.created.reverse()) runSync('ip', ['netns', 'del', ns]);
    removeWgSockets(this.prefix);
  }

  private ip(ns: string, ...args: string[]): Promise<RunResult> {
    return run('ip', ['-n', ns, ...args]);
  }

  private nft(cmds: string[]): Promise<RunResult> {
    return this.exec(this.ns.hub, 'nft', ['-f', '-'], { input: cmds.join('\n') + '\n' });
  }
}

function removeWgSockets(prefix: string): void {
  const dir = '/var/run/wireguard';
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) if (f.startsWith(prefix)) rmSync(`${dir}/${f}`, { force: true });
}

/** Build the topology; on any failure, whatever was made is removed before the error is thrown. */
export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const prefix = opts.prefix ?? randomPrefix();
  if (!PREFIX_RE.test(prefix)) throw new TopologyError('EPREFIX', `prefix must match ${PREFIX_RE} (interface names are at most 15 chars): ${prefix}`);
  if (process.getuid?.() !== 0) throw new TopologyError('EPERM', 'building network namespaces needs root (CAP_NET_ADMIN)');
  const existing = (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
  if (existing.length > 0) throw new TopologyError('EEXIST', `namespaces with prefix ${prefix} already exist: ${existing.join(', ')}`);
  const topo = new TopologyImpl(prefix, opts.mtu ?? 1500, opts.relays ?? 0);
  topo.forgetAtEnd = atProcessEnd(() => topo.destroySync());
  try {
    await topo.build();
  } catch (err) {
    await topo.destroy();
    throw err;
  }
  return topo;
}

export async function listNamespaces(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list'], { check: false });
  return r.stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n !== '');
}

/**
 * Safety net: kill every process inside namespaces named `<prefix>-*` (by PID) and delete those
 * namespaces. Returns the namespaces it removed.
 */
export async function destroyAllWithPrefix(prefix: string): Promise<string[]> {
  if (!PREFIX_RE.test(prefix)) throw new TopologyError('EPREFIX', `refusing a prefix that does not match ${PREFIX_RE}: ${prefix}`);
  const victims = (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
  for (const ns of victims) {
    const pids = (await run('ip', ['netns', 'pids', ns], { check: false })).stdout.split(/\s+/).filter(Boolean).map(Number);
    for (const pid of pids) killPidSync(pid);
    await run('ip', ['netns', 'del', ns], { check: false });
  }
  removeWgSockets(prefix);
  return victims;
}
