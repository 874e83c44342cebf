/**
 * isthmus on the shared topology, static-peer mode: a relay in the hub on the VIP, member
 * `a1` in vpc1 and member `s1` in vpc2, each reaching the other only through the relay.
 * Used by the demo, the netns tests and the benchmark, so all three run the same thing.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { generatePrivateKey, publicKeyFromPrivate, keyToBase64 } from '../../protocol';
import type { Topology } from '../topology';
import type { ManagedProcess } from '../procs';
import type { BenchSubject } from '../subject';

export const RELAY_PORT = 7000;
export const OVERLAY_PREFIX_LEN = 10;

/** The repository root (where package.json is), from compiled dist/ or from sources. */
export function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the isthmus package root');
    dir = up;
  }
  return dir;
}

/** The compiled CLI; `npm run build` (or npm ci) makes it. */
export function cliPath(): string {
  const p = join(repoRoot(), 'dist/cli/main.js');
  if (!existsSync(p)) throw new Error(`${p} is missing: run \`npm run build\` first`);
  return p;
}

export interface Member {
  name: string;
  ns: string;
  vip: string;
  publicKey: string;
  privateKey: string;
  process?: ManagedProcess;
}

export interface StaticOverlay {
  relay: ManagedProcess;
  a1: Member;
  s1: Member;
  dir: string;
  stop(): Promise<void>;
}

export interface StaticOverlayOptions {
  /** Extra agent flags, e.g. ['--rekey-after-time', '5s']. */
  agentArgs?: string[];
  /** Extra relay flags, e.g. ['--busy-poll', '50us']. */
  relayArgs?: string[];
  logLevel?: string;
  mtu?: number;
  /** The command that runs isthmus, e.g. an unpacked package's ['<root>/usr/bin/isthmus']. @default [node, dist/cli/main.js] */
  cli?: readonly string[];
  /**
   * Members whose agent runs as `nobody` with CAP_NET_ADMIN and no other capability (ambient,
   * via setpriv, with no-new-privs), the way isthmus-agent.service runs it. Their config file and
   * state dir are handed to that user. Where the host's /dev/net/tun is root-only (containers;
   * Debian's udev makes it 0666), the agent gets a private 0666 node for it in its own mount
   * namespace: opening the device is then allowed, creating a TUN still takes CAP_NET_ADMIN.
   */
  unprivileged?: readonly ('a1' | 's1')[];
}

/** Runs "$@" as `nobody` with only CAP_NET_ADMIN; $1 is where a private tun node may go. */
const UNPRIVILEGED_SH = `set -e
node=$1; shift
if [ "$(stat -c %a /dev/net/tun)" != 666 ]; then mknod -m 0666 "$node" c 10 200; mount --bind "$node" /dev/net/tun; fi
exec setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --no-new-privs \
  --bounding-set=-all,+net_admin --inh-caps=-all,+net_admin --ambient-caps=+net_admin "$@"`;

function nobody(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

function member(name: string, ns: string, vip: string): Member {
  const priv = generatePrivateKey();
  return { name, ns, vip, privateKey: keyToBase64(priv), publicKey: keyToBase64(publicKeyFromPrivate(priv)) };
}

function agentConfig(self: Member, peer: Member, mtu: number, relay: string): string {
  return [
    '[Interface]',
    `PrivateKey = ${self.privateKey}`,
    `Address = ${self.vip}/${OVERLAY_PREFIX_LEN}`,
    `MTU = ${mtu}`,
    `Relay = ${relay}`,
    '',
    '[Peer]',
    `PublicKey = ${peer.publicKey}`,
    `AllowedIPs = ${peer.vip}/32`,
    'Endpoint = relay',
    '',
  ].join('\n');
}

export async function startStaticOverlay(topo: Topology, opts: StaticOverlayOptions = {}): Promise<StaticOverlay> {
  const [cmd, ...cliArgs] = opts.cli ?? [process.execPath, cliPath()];
  const dir = mkdtempSync(join(tmpdir(), `${topo.prefix}-isthmus-`));
  const unprivileged = new Set(opts.unprivileged ?? []);
  if (unprivileged.size > 0) chmodSync(dir, 0o711);
  // Readiness is read from the info-level log lines, so never log less than info here.
  const env = { ...process.env, ISTHMUS_LOG_LEVEL: opts.logLevel ?? 'info' };
  const a1 = member('a1', topo.ns.vpc1, '100.64.0.1');
  const s1 = member('s1', topo.ns.vpc2, '100.64.0.2');
  const relayAddr = `${topo.addr.vip}:${RELAY_PORT}`;
  const mtu = opts.mtu ?? 1420;

  const membersFile = join(dir, 'members');
  writeFileSync(membersFile, `${a1.publicKey} ${a1.vip}\n${s1.publicKey} ${s1.vip}\n`, { mode: 0o600 });
  const relay = topo.spawn(topo.ns.hub, cmd, [...cliArgs, 'relay', '--listen', relayAddr, '--members', membersFile, ...(opts.relayArgs ?? [])], { name: 'relay', env });
  await topo.waitForListen(topo.ns.hub, RELAY_PORT, 'udp');

  for (const [self, peer] of [[a1, s1], [s1, a1]] as const) {
    const file = join(dir, `${self.name}.conf`);
    writeFileSync(file, agentConfig(self, peer, mtu, relayAddr), { mode: 0o600 });
    const stateDir = join(dir, `state-${self.name}`);
    const argv = [...cliArgs, 'agent', '--peers', file, '--state-dir', stateDir, ...(opts.agentArgs ?? [])];
    if (unprivileged.has(self.name as 'a1' | 's1')) {
      const { uid, gid } = nobody();
      mkdirSync(stateDir, { mode: 0o700 });
      for (const f of [file, stateDir]) chownSync(f, uid, gid);
      self.process = topo.spawn(self.ns, 'unshare', ['-m', '--', 'sh', '-c', UNPRIVILEGED_SH, 'sh', join(dir, `tun-${self.name}`), cmd, ...argv],
        { name: `agent-${self.name}`, env });
    } else {
      self.process = topo.spawn(self.ns, cmd, argv, { name: `agent-${self.name}`, env });
    }
  }
  // Both members hold a relay session before anyone sends: no first packet waits for a retry.
  for (const m of [a1, s1]) await m.process!.waitForLine(/authenticated to relay/, 15_000);

  return {
    relay, a1, s1, dir,
    async stop() {
      for (const p of [a1.process, s1.process, relay]) await p?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface IsthmusSubjectOptions {
  /** `--busy-poll` for the agents and the relay (undefined: their default). */
  busyPoll?: string;
  /** @default 'isthmus' */
  name?: string;
}

/** The bench subject: isthmus via its relay in the hub, static-peer mode. */
export function isthmusRelaySubject(o: IsthmusSubjectOptions = {}): BenchSubject {
  let overlay: StaticOverlay | undefined;
  const bp = o.busyPoll !== undefined ? ['--busy-poll', o.busyPoll] : [];
  return {
    name: o.name ?? 'isthmus',
    requires: [],
    async describe() {
      const { version } = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
      return `isthmus ${version} via one relay (static peers, native batched UDP/TUN${o.busyPoll !== undefined ? `, --busy-poll ${o.busyPoll}` : ''})`;
    },
    async setup(topo) {
      overlay = await startStaticOverlay(topo, { agentArgs: bp, relayArgs: bp });
      const o = overlay;
      // One ping so the handshake is not inside the first measurement.
      await topo.exec(topo.ns.vpc1, 'ping', ['-c', '3', '-i', '0.2', '-w', '10', o.s1.vip], { check: false });
      return { serverAddr: o.s1.vip, clientAddr: o.a1.vip, pids: () => [o.relay.pid, o.a1.process!.pid, o.s1.process!.pid] };
    },
    async teardown() {
      await overlay?.stop();
      overlay = undefined;
    },
  };
}
