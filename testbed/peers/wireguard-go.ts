/**
 * Stock wireguard-go (Debian package) inside a namespace, configured with `wg`: the reference peer
 * for the interop tests and one side of the bench. Re-exported by test/harness/wireguard-go.ts.
 *
 *   const wg = await startWireguardGo(topo, { ns, ifname: `${prefix}-wg0`, privateKey, listenPort,
 *     address: '10.99.0.1/24', peers: [{ publicKey, allowedIps: ['10.99.0.2/32'], endpoint }] });
 *   ... await wg.stop();
 *
 * wireguard-go's UAPI socket is /var/run/wireguard/<ifname>.sock, a path shared by every
 * namespace: interface names must be unique on the machine, hence the prefix in `ifname`.
 * `-f` keeps it in the foreground so the PID we hold is the daemon's own.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, sleep, type ManagedProcess, type RunOptions, type RunResult, type SpawnOptions } from '../procs';

/** What a peer needs from its environment: satisfied by Topology. */
export interface NsRunner {
  exec(ns: string, cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  spawn(ns: string, cmd: string, args: string[], opts?: SpawnOptions): ManagedProcess;
}

export interface WgPeerSpec {
  publicKey: string;
  allowedIps: string[];
  /** host:port */
  endpoint?: string;
  persistentKeepalive?: number;
  presharedKey?: string;
}

export interface WireguardGoInit {
  ns: string;
  /** At most 15 chars and unique on the machine (the UAPI socket path is global). */
  ifname: string;
  privateKey: string;
  listenPort?: number;
  /** CIDR, e.g. 10.99.0.1/24 */
  address: string;
  peers?: WgPeerSpec[];
  /** @default 1420 */
  mtu?: number;
  /** The wireguard-go executable: a command on PATH or an absolute path. @default 'wireguard-go' (Debian's) */
  binary?: string;
}

export interface WireguardGo {
  readonly ns: string;
  readonly ifname: string;
  readonly publicKey: string;
  readonly process: ManagedProcess;
  setPeer(peer: WgPeerSpec): Promise<void>;
  removePeer(publicKey: string): Promise<void>;
  /** `wg show <if> dump` parsed per peer. */
  peers(): Promise<WgPeerState[]>;
  stop(): Promise<void>;
}

export interface WgPeerState {
  publicKey: string;
  endpoint: string | undefined;
  allowedIps: string[];
  /** Unix seconds; 0 when no handshake yet. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export const WG_RUN_DIR = '/var/run/wireguard';

export async function wgGenKey(): Promise<string> {
  return (await run('wg', ['genkey'])).stdout.trim();
}

export async function wgPubKey(privateKey: string): Promise<string> {
  return (await run('wg', ['pubkey'], { input: privateKey + '\n' })).stdout.trim();
}

export async function wgGenPsk(): Promise<string> {
  return (await run('wg', ['genpsk'])).stdout.trim();
}

/** `wg set` arguments for one peer; a preshared key goes through a 0600 file in `dir`. */
function peerArgs(peer: WgPeerSpec, dir: string): string[] {
  const args = ['peer', peer.publicKey, 'allowed-ips', peer.allowedIps.join(',')];
  if (peer.endpoint) args.push('endpoint', peer.endpoint);
  if (peer.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(peer.persistentKeepalive));
  if (peer.presharedKey) {
    const f = join(dir, `psk-${peer.publicKey.replace(/[^A-Za-z0-9]/g, '')}`);
    writeFileSync(f, peer.presharedKey + '\n', { mode: 0o600 });
    args.push('preshared-key', f);
  }
  return args;
}

/** Run `wg set` with secrets in a private temp dir that is removed right after. */
async function wgSet(env: NsRunner, ns: string, ifname: string, build: (dir: string) => string[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-wg-'));
  try {
    await env.exec(ns, 'wg', ['set', ifname, ...build(dir)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startWireguardGo(env: NsRunner, init: WireguardGoInit): Promise<WireguardGo> {
  const { ns, ifname } = init;
  if (ifname.length > 15) throw new Error(`interface name longer than 15 chars: ${ifname}`);
  const sock = join(WG_RUN_DIR, `${ifname}.sock`);
  if (existsSync(sock)) throw new Error(`${sock} exists: another wireguard-go uses ${ifname}`);
  const proc = env.spawn(ns, init.binary ?? 'wireguard-go', ['-f', ifname], {
    name: `wireguard-go ${ifname}@${ns}`,
    env: { ...process.env, LOG_LEVEL: process.env.ISTHMUS_WG_LOG_LEVEL ?? 'error' },
  });
  try {
    for (let waited = 0; !existsSync(sock); waited += 20) {
      if (proc.exited) throw new Error(`wireguard-go exited: ${proc.output().slice(-500)}`);
      if (waited > 5000) throw new Error(`wireguard-go did not create ${sock}: ${proc.output().slice(-500)}`);
      await sleep(20);
    }
    await wgSet(env, ns, ifname, (dir) => {
      const keyFile = join(dir, 'private');
      writeFileSync(keyFile, init.privateKey + '\n', { mode: 0o600 });
      const args = ['private-key', keyFile];
      if (init.listenPort !== undefined) args.push('listen-port', String(init.listenPort));
      for (const p of init.peers ?? []) args.push(...peerArgs(p, dir));
      return args;
    });
    await env.exec(ns, 'ip', ['addr', 'add', init.address, 'dev', ifname]);
    await env.exec(ns, 'ip', ['link', 'set', ifname, 'mtu', String(init.mtu ?? 1420), 'up']);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  const publicKey = await wgPubKey(init.privateKey);
  return {
    ns,
    ifname,
    publicKey,
    process: proc,
    setPeer: (peer) => wgSet(env, ns, ifname, (dir) => peerArgs(peer, dir)),
    removePeer: async (pub) => { await env.exec(ns, 'wg', ['set', ifname, 'peer', pub, 'remove']); },
    async peers() {
      const out = (await env.exec(ns, 'wg', ['show', ifname, 'dump'])).stdout.trim().split('\n').slice(1);
      return out.filter(Boolean).map((l) => {
        const f = l.split('\t');
        return {
          publicKey: f[0]!,
          endpoint: f[2] === '(none)' ? undefined : f[2],
          allowedIps: f[3] === '(none)' ? [] : f[3]!.split(','),
          latestHandshake: Number(f[4]),
          rxBytes: Number(f[5]),
          txBytes: Number(f[6]),
        };
      });
    },
    stop: () => proc.stop(),
  };
}
