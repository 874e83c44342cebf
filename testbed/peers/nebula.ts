/**
 * Stock nebula (Debian package, 1.6) in namespaces, and the "nebula via relay" bench subject:
 *
 *   vpc1  nebula 10.98.0.2 ──UDP──► VIP:4242  hub: lighthouse + relay 10.98.0.1  ◄──UDP── vpc2  nebula 10.98.0.3
 *
 * The members learn each other's underlay address from the lighthouse but cannot reach it (vpc1
 * and vpc2 are isolated), so their handshake falls back to the relay listed in `relay.relays`;
 * the relay forwards without decrypting (end to end, like isthmus). Certificates come from
 * `nebula-cert` in a private temp dir removed at teardown.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, sleep, type ManagedProcess } from '../procs';
import type { BenchSubject, SubjectEndpoints } from '../subject';
import type { Topology } from '../topology';
import type { NsRunner } from './wireguard-go';

export const NEBULA_NET = { hub: '10.98.0.1', m1: '10.98.0.2', m2: '10.98.0.3', prefixLen: 24, port: 4242, mtu: 1380 } as const;

export interface NebulaNodeInit {
  ns: string;
  dir: string;
  /** File stem of name.crt/name.key in dir, also the cert name. */
  name: string;
  ip: string;
  dev: string;
  lighthouse: { am: true } | { am: false; hostIp: string; underlay: string };
  relay: { am: true } | { am: false; via: string };
  listenPort: number;
  mtu?: number;
}

/** The YAML config (JSON is valid YAML, and nebula reads it). */
export function nebulaConfig(n: NebulaNodeInit): string {
  const any = [{ port: 'any', proto: 'any', host: 'any' }];
  return JSON.stringify({
    pki: { ca: join(n.dir, 'ca.crt'), cert: join(n.dir, `${n.name}.crt`), key: join(n.dir, `${n.name}.key`) },
    static_host_map: n.lighthouse.am ? {} : { [n.lighthouse.hostIp]: [n.lighthouse.underlay] },
    lighthouse: n.lighthouse.am ? { am_lighthouse: true } : { am_lighthouse: false, interval: 60, hosts: [n.lighthouse.hostIp] },
    listen: { host: '0.0.0.0', port: n.listenPort },
    punchy: { punch: false },
    relay: n.relay.am ? { am_relay: true, use_relays: false } : { am_relay: false, use_relays: true, relays: [n.relay.via] },
    tun: { disabled: false, dev: n.dev, mtu: n.mtu ?? NEBULA_NET.mtu, drop_local_broadcast: true, drop_multicast: true },
    logging: { level: process.env.ISTHMUS_NEBULA_LOG_LEVEL ?? 'warning', format: 'text' },
    firewall: { conntrack: { tcp_timeout: '12m', udp_timeout: '3m', default_timeout: '10m' }, outbound: any, inbound: any },
  }, null, 2);
}

/** CA plus one signed cert per node, into dir. */
export async function nebulaCerts(dir: string, nodes: ReadonlyArray<{ name: string; ip: string }>): Promise<void> {
  await run('nebula-cert', ['ca', '-name', 'isthmus-bench', '-out-crt', join(dir, 'ca.crt'), '-out-key', join(dir, 'ca.key')]);
  for (const n of nodes) {
    await run('nebula-cert', ['sign', '-ca-crt', join(dir, 'ca.crt'), '-ca-key', join(dir, 'ca.key'), '-name', n.name,
      '-ip', `${n.ip}/${NEBULA_NET.prefixLen}`, '-out-crt', join(dir, `${n.name}.crt`), '-out-key', join(dir, `${n.name}.key`)]);
  }
}

/** Start nebula in n.ns and wait for its TUN device. */
export async function startNebula(env: NsRunner, n: NebulaNodeInit): Promise<ManagedProcess> {
  const cfg = join(n.dir, `${n.name}.yml`);
  writeFileSync(cfg, nebulaConfig(n), { mode: 0o600 });
  const proc = env.spawn(n.ns, 'nebula', ['-config', cfg], { name: `nebula ${n.name}@${n.ns}` });
  for (let waited = 0; ; waited += 50) {
    const r = await env.exec(n.ns, 'ip', ['-br', 'addr', 'show', 'dev', n.dev], { check: false });
    if (r.code === 0 && r.stdout.includes(n.ip)) return proc;
    if (proc.exited || waited > 10_000) {
      await proc.stop();
      throw new Error(`nebula ${n.name} did not bring up ${n.dev}: ${proc.output().slice(-500)}`);
    }
    await sleep(50);
  }
}

export function nebulaRelaySubject(): BenchSubject {
  let procs: ManagedProcess[] = [];
  let dir: string | undefined;
  return {
    name: 'nebula',
    requires: ['nebula', 'nebula-cert'],
    async describe() {
      const v = await run('nebula', ['-version'], { check: false });
      return `nebula ${v.stdout.replace(/^Version:\s*/, '').trim()} via relay (Debian package)`;
    },
    async setup(topo: Topology): Promise<SubjectEndpoints> {
      const N = NEBULA_NET;
      dir = mkdtempSync(join(tmpdir(), 'isthmus-nebula-'));
      await nebulaCerts(dir, [{ name: 'hub', ip: N.hub }, { name: 'm1', ip: N.m1 }, { name: 'm2', ip: N.m2 }]);
      procs.push(await startNebula(topo, {
        ns: topo.ns.hub, dir, name: 'hub', ip: N.hub, dev: `${topo.prefix}-nbh`,
        lighthouse: { am: true }, relay: { am: true }, listenPort: N.port,
      }));
      const member = { am: false as const, hostIp: N.hub, underlay: `${topo.addr.vip}:${N.port}` };
      for (const [ns, name, ip] of [[topo.ns.vpc1, 'm1', N.m1], [topo.ns.vpc2, 'm2', N.m2]] as const) {
        procs.push(await startNebula(topo, {
          ns, dir, name, ip, dev: `${topo.prefix}-nb${name.slice(1)}`,
          lighthouse: member, relay: { am: false, via: N.hub }, listenPort: 0,
        }));
      }
      return { serverAddr: N.m2, clientAddr: N.m1, pids: () => procs.map((p) => p.pid) };
    },
    async teardown() {
      await Promise.all(procs.map((p) => p.stop()));
      procs = [];
      if (dir) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}
