import type { CommandModule } from 'yargs';
import { readFileSync, statSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { forComponent, formatDuration, type Logger, systemClock, isAddr, masked, parseAddr, parsePrefix, type Prefix } from '../../common';
import { parseAgentConfig, parseHostPort, ConfigError, DEFAULT_MTU, type AgentConfig, Agent, RELAY_FAILOVER_TIMING, type AgentComponents, StateDir, DEFAULT_STATE_DIR, detectOriginalIp, MembershipClient, serveControlSocket, registerAgentMetrics, type ControlHandlers } from '../../node-agent';
import { keyToBase64 } from '../../protocol';
import { openTun, openUdpSocket, setBusyPoll } from '../../native-bindings';
import { CliError, onShutdown } from '../shutdown';
import { secretFrom } from '../secret-file';
import { join } from 'node:path';
import { METRICS_OPTION, parseListenFlag, startMetrics } from '../metrics';
import { checkCoordinatorFlags, COORDINATOR_CA_OPTION, coordinatorCa, INSECURE_COORDINATOR_OPTION } from '../coordinator-flags';
import { parseSigningPublicKey } from '../../coordinator';
import { BUSY_POLL_OPTION, busyPollFlag, durationFlag } from '../flag-values';
import { CONFIG_OPTION, onReload } from '../settings';

interface AgentArgs {
  config?: string;
  peers?: string;
  coordinator?: string;
  token?: string;
  'token-file'?: string;
  relay?: string;
  'original-ip'?: string;
  'state-dir': string;
  tag?: string[];
  hostname?: string;
  mtu: number;
  name?: string;
  'route-original': string[];
  leave: boolean;
  'rekey-after-time'?: string;
  'control-socket'?: string;
  'relay-keepalive': string;
  metrics?: string;
  'coordinator-ca'?: string;
  'coordinator-pubkey'?: string;
  'insecure-coordinator': boolean;
  'tun-offload': boolean;
  'busy-poll': string;
}

/** `--metrics`: the agent's metrics; ready while authenticated to its relay (when it has one). */
async function serveAgentMetrics(args: AgentArgs, agent: Agent, log: Logger): Promise<void> {
  if (!args.metrics) return;
  const checks = { relay: () => !agent.relayClient || agent.relayClient.state === 'ready' };
  await startMetrics(args.metrics, log, (r) => registerAgentMetrics(r, agent), checks).catch((err: NodeJS.ErrnoException) => {
    throw new CliError(`cannot listen on --metrics ${args.metrics}: ${err.code ?? err.message}`);
  });
}

/** The local status socket `isthmus status` reads; losing it never stops the data path. */
async function serveStatus(args: AgentArgs, agent: Agent, log: Logger, extra: () => object = () => ({})): Promise<void> {
  const path = args['control-socket'] ?? join(args['state-dir'], 'agent.sock');
  try {
    const server = await serveControlSocket(path, () => ({ ...agent.status(), ...extra() }), { ping: pingHandler(agent) });
    onShutdown(() => new Promise<void>((r) => server.close(() => r())));
  } catch (err) {
    log.warn({ err: (err as Error).message }, '`isthmus status` will not work: no control socket');
  }
}

/** `isthmus ping` requests on the control socket: bounds checked here, the probing in node-agent/ping.ts. */
function pingHandler(agent: Agent): NonNullable<ControlHandlers['ping']> {
  return async (req, write, signal) => {
    const num = (v: unknown, d: number, lo: number, hi: number) => (typeof v === 'number' && v >= lo && v <= hi ? v : d);
    if (typeof req.target !== 'string' || req.target === '') return void write({ type: 'error', message: 'ping: no target' });
    const ok = await agent.ping({
      target: req.target, count: num(req.count, 3, 1, 1000), timeoutMs: num(req.timeoutMs, 2000, 10, 60_000), intervalMs: num(req.intervalMs, 1000, 0, 60_000),
    }, write, signal);
    write({ type: 'done', ok });
  };
}

const run = promisify(execFile);

const components = (log: Logger): AgentComponents => ({
  clock: systemClock, logger: log, openTun, openUdpSocket,
  async addRoute(cidr, device) {
    await run('ip', ['route', 'replace', cidr, 'dev', device]);
  },
});

/** Networks given as flags ('10.1.2.3/8' means 10.0.0.0/8); errors name the flag. */
function parsePrefixFlag(flag: string, values: string[]): Prefix[] {
  return values.map((v) => {
    try {
      return masked(parsePrefix(v.trim()));
    } catch (err) {
      throw new Error(`--${flag}: ${(err as Error).message}`);
    }
  });
}

async function runStatic(args: AgentArgs, log: Logger): Promise<Agent> {
  let text: string;
  try {
    text = readFileSync(args.peers!, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read --peers ${args.peers}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let config: AgentConfig;
  try {
    config = parseAgentConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`${args.peers}: ${err.message}`);
    throw err;
  }
  // The file holds a private key: say so when others can read it (wg-quick does the same).
  const mode = statSync(args.peers!).mode & 0o777;
  if (mode & 0o077) log.warn({ file: args.peers, mode: mode.toString(8) }, 'static-peer file holding a private key is readable by other users: chmod 600 it');
  return new Agent(config, components(log), agentOptions(args));
}

function agentOptions(args: AgentArgs, localAddresses: number[] = []) {
  return {
    timers: args['rekey-after-time'] ? { rekeyAfterTimeMs: durationFlag(args['rekey-after-time'], '--rekey-after-time', { bare: 's', min: 1 }) } : undefined,
    routeOriginal: parsePrefixFlag('route-original', args['route-original']),
    relayKeepaliveMs: relayKeepaliveMs(args),
    localAddresses,
    tunOffload: args['tun-offload'],
  };
}

async function runJoined(args: AgentArgs, log: Logger): Promise<void> {
  const state = new StateDir(args['state-dir']);
  const token = secretFrom(args.token, args['token-file'], 'token');
  if (!token && !state.hasKey()) {
    throw new CliError(`first start: --token-file (or --token) is required to join (no key in ${args['state-dir']} yet); an admin makes one with \`isthmus token create\``);
  }
  const originalIp = args['original-ip'] ?? detectOriginalIp();
  let coordinatorCaPem: Buffer | undefined;
  try {
    coordinatorCaPem = coordinatorCa(args, (msg) => log.warn(msg));
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const membership = new MembershipClient({
    coordinatorUrl: args.coordinator!, token, originalIp, hostname: args.hostname,
    coordinatorCa: coordinatorCaPem, coordinatorPubkey: args['coordinator-pubkey'], insecureCoordinator: args['insecure-coordinator'],
  }, state, log);
  if (args.leave) {
    await membership.leave();
    process.stdout.write(`left: ${membership.publicKey} removed from ${args.coordinator}; key deleted from ${args['state-dir']}\n`);
    return;
  }
  const m = await membership.join().catch((err: Error & { status?: number }) => {
    throw new CliError(`join failed: ${err.message}`);
  });
  const relay = parseHostPort(args.relay!)!;
  const config: AgentConfig = {
    privateKey: keyToBase64(membership.key), address: { addr: parseAddr(m.vip), bits: parsePrefix(m.cidr.trim()).bits },
    mtu: args.mtu, name: args.name, relay, peers: [],
  };
  // Our original IP is ours too: a member in transparent mode dials it, and the packet arrives
  // with it as destination (the kernel accepts it: it is this host's address).
  const agent = new Agent(config, components(log), agentOptions(args, originalIp !== m.vip ? [parseAddr(originalIp)] : []));
  onShutdown(() => agent.stop());
  onShutdown(() => membership.stop());
  membership.applyFull(m.peers, agent);
  await agent.start();
  agent.setDirectory(() => membership.entries);
  const peerMapStatus = () => ({
    coordinator: { ...membership.contact },
    peerMap: { version: membership.mapVersion, entries: membership.entries.length, refusedEntries: membership.refusedPeerEntries, refusedAnswers: membership.client.refusedAnswers },
    record: membership.recordStatus,
  });
  await serveStatus(args, agent, log, peerMapStatus);
  await serveAgentMetrics(args, agent, log);
  log.info({ vip: m.vip, originalIp, peers: agent.peerKeys().length }, 'joined');
  process.on('SIGUSR1', () => log.info({ status: { ...agent.status(), ...peerMapStatus() } }, 'status'));
  void membership.run(m, agent).catch((err: Error) => log.error({ err: err.message }, 'peer map loop stopped'));
}

/** --relay-keepalive in ms (a bare number: ms, as before it took a unit). */
function relayKeepaliveMs(a: AgentArgs): number {
  return durationFlag(a['relay-keepalive'], '--relay-keepalive', { bare: 'ms', min: 50, max: 60_000 });
}

/** `isthmus agent`: the member daemon (root: it creates a TUN device). */
export const agentCommand: CommandModule<object, AgentArgs> = {
  command: 'agent',
  describe: 'Run the member daemon: a TUN device and end-to-end encrypted sessions to the other members through the relay (root)',
  builder: (y) => y
    .usage('$0 agent --coordinator URL --token-file F --relay HOST:PORT [options]\n$0 agent --config /etc/isthmus/agent.yaml\n$0 agent --peers FILE\n\n'
      + 'Joins the overlay through the coordinator (first start needs a join token; the key is kept in --state-dir),\n'
      + 'or runs from a static-peer file (--peers; docs/CONFIG.md).\n\n'
      + '--original-ip must be the address this host reaches the coordinator from, or inside a prefix its join token allows\n'
      + '(isthmus token create --original-cidr). Tags come from the join token (--tag there) or an admin (isthmus node tag).')
    .option('config', CONFIG_OPTION)
    .option('coordinator', { type: 'string', describe: 'Coordinator URL, e.g. https://10.90.0.1:8080', group: 'Join:' })
    .option('coordinator-ca', { ...COORDINATOR_CA_OPTION, group: 'Join:' })
    .option('coordinator-pubkey', { type: 'string', group: 'Join:', describe: 'The coordinator signing key (base64; `isthmus keygen --signing-key` prints it): '
      + 'peer maps must be signed by it. Default: the key pinned in --state-dir, else the one the first join answer is signed with (trust on first use)' })
    .option('insecure-coordinator', { ...INSECURE_COORDINATOR_OPTION, group: 'Join:' })
    .option('token', { type: 'string', describe: 'Join token (first start only; shows in process listings: prefer --token-file)', group: 'Join:' })
    .option('token-file', { type: 'string', describe: 'File holding the join token (first start only; mode 600/640)', group: 'Join:' })
    .option('relay', { type: 'string', describe: 'Relay (or the VIP in front of the relays), HOST:PORT', group: 'Join:' })
    .option('original-ip', { type: 'string', describe: 'This host\'s original IP (default: the address of the default-route interface); '
      + 'the coordinator accepts the address the join comes from or one inside the token\'s --original-cidr', group: 'Join:' })
    .option('state-dir', { type: 'string', default: DEFAULT_STATE_DIR, describe: 'Where the key (0600), the last peer map and the status socket are kept' })
    .option('control-socket', { type: 'string', describe: 'Status socket for `isthmus status` (default: <state-dir>/agent.sock)' })
    .option('tag', { type: 'string', array: true, hidden: true, describe: 'Removed: members cannot tag themselves (see --help text above)' })
    .option('hostname', { type: 'string', describe: 'Name other members and SOCKS5 clients know this member by (default: hostname)', group: 'Join:' })
    .option('leave', { type: 'boolean', default: false, describe: 'Remove this member from the coordinator, delete its key, and exit', group: 'Join:' })
    .option('route-original', { type: 'string', array: true, default: [] as string[], describe: 'Transparent mode: route this original prefix into the overlay (repeatable)' })
    .option('relay-keepalive', { type: 'string', default: formatDuration(RELAY_FAILOVER_TIMING.keepaliveMs), describe: 'Idle keepalive: PING the relay after this long without traffic (50ms-60s; keeps the LB and NAT UDP state). While traffic is in flight the relay is probed after 300ms of silence and declared dead (rebind) after 900ms, whatever this is' })
    .option('mtu', { type: 'number', default: DEFAULT_MTU, describe: 'TUN MTU' })
    .option('name', { type: 'string', describe: 'TUN device name (default: kernel-chosen)' })
    .option('tun-offload', { type: 'boolean', default: true, describe: 'TUN offloads: the kernel hands over 64 KB TCP super-packets, split into MTU-sized segments before sealing, '
      + 'and received TCP segments are coalesced before the kernel sees them (what goes on the wire is unchanged). Off when the kernel refuses; '
      + '--tun-offload=false (or ISTHMUS_NO_TUN_OFFLOAD=1) runs the plain device, for debugging' })
    .option('busy-poll', BUSY_POLL_OPTION)
    .option('peers', { type: 'string', describe: 'Static-peer file (wg-quick style, [Interface]/[Peer]) instead of a coordinator (docs/CONFIG.md). Before 0.2 this was --config, which still reads such a file, with a warning', normalize: true, group: 'Static:' })
    .option('rekey-after-time', { type: 'string', hidden: true, describe: 'Testing: REKEY_AFTER_TIME (spec: 120s)' })
    .option('metrics', METRICS_OPTION)
    .check((a) => {
      if (a.metrics) parseListenFlag(a.metrics, '--metrics');
      if (a.tag !== undefined) {
        throw new Error('--tag is no longer accepted: a member cannot choose its own tags. Put them on the join token '
          + '(isthmus token create --tag T) or have an admin set them (isthmus node tag <vip|hostname> --tag T)');
      }
      if (a.token !== undefined && a['token-file'] !== undefined) throw new Error('give either --token or --token-file, not both');
      if (a.peers && a.coordinator) throw new Error('Give either --peers FILE or --coordinator URL, not both');
      if (!a.peers && !a.coordinator) throw new Error('Missing --coordinator URL (or --peers FILE for static peers)');
      if (a.coordinator) {
        checkCoordinatorFlags(a);
        if (a['coordinator-pubkey'] !== undefined) {
          try { parseSigningPublicKey(a['coordinator-pubkey']); } catch (err) { throw new Error(`--coordinator-pubkey: ${(err as Error).message}`); }
        }
        if (!a.leave && !a.relay) throw new Error('Missing --relay HOST:PORT');
        if (a.relay && !parseHostPort(a.relay)) throw new Error(`--relay: expected HOST:PORT, got "${a.relay}"`);
      }
      if (a['original-ip'] !== undefined && !isAddr(a['original-ip'])) throw new Error('--original-ip must be an IPv4 address');
      if (!(a.mtu >= 576 && a.mtu <= 9000)) throw new Error('--mtu must be between 576 and 9000');
      relayKeepaliveMs(a);
      busyPollFlag(a['busy-poll']);
      if (a['rekey-after-time'] !== undefined) durationFlag(a['rekey-after-time'], '--rekey-after-time', { bare: 's', min: 1 });
      parsePrefixFlag('route-original', a['route-original']);
      return true;
    }),
  handler: async (args) => {
    const log = forComponent('isthmus:agent');
    // SIGHUP: a new log level from --config (the rest: restart).
    onReload(log);
    const busyPollUs = busyPollFlag(args['busy-poll']);
    setBusyPoll(busyPollUs);
    if (busyPollUs > 0) log.info({ busyPollUs }, 'busy-poll on');
    if (args.coordinator) return runJoined(args, log);
    const agent = await runStatic(args, log);
    onShutdown(() => agent.stop());
    await agent.start();
    await serveStatus(args, agent, log);
    await serveAgentMetrics(args, agent, log);
    process.on('SIGUSR1', () => log.info({ status: agent.status() }, 'status'));
  },
};
