import type { CommandModule } from 'yargs';
import { join } from 'node:path';
import { requestControlSocket, DEFAULT_STATE_DIR, type ProbeResult } from '../../node-agent';
import { parseDuration } from '../../common';
import { formatProbe } from '../status-format';
import { CliError } from '../shutdown';

interface PingArgs {
  target: string;
  count: number;
  timeout: string;
  interval: string;
  json: boolean;
  'state-dir': string;
  socket?: string;
}

function durationFlag(flag: string, v: string, lo: number, hi: number): number {
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch (err) {
    throw new Error(`--${flag}: ${(err as Error).message}`);
  }
  if (ms < lo || ms > hi) throw new Error(`--${flag} must be between ${lo} ms and ${hi / 1000} s, got ${v}`);
  return ms;
}

/** `isthmus ping TARGET`: the local agent probes a peer through the overlay (node-agent/ping.ts). */
export const pingCommand: CommandModule<object, PingArgs> = {
  command: 'ping <target>',
  describe: 'Probe a peer through the overlay from the local agent: the path (relay, mesh hop), the RTT, or why it fails',
  builder: (y) => y
    .usage('$0 ping <target> [options]\n\n'
      + 'TARGET is a virtual IP, an original IP or a hostname from this member\'s peer map. The local agent sends each '
      + 'probe through its session with the peer (handshake, relay, relay mesh); the peer\'s agent answers it, naming '
      + 'its relay and whether the policy lets this member open flows to it.\n\n'
      + 'Exit code 0 only when every probe is answered and allowed; failures say why: unknown-target, relay-down, '
      + 'no-session, peer-offline, policy (docs/OPERATIONS.md).')
    .positional('target', { type: 'string', demandOption: true, describe: 'Virtual IP, original IP or hostname of the peer' })
    .option('count', { alias: 'c', type: 'number', default: 3, describe: 'Number of probes (1-1000)' })
    .option('timeout', { type: 'string', default: '2s', describe: 'How long to wait for each answer (e.g. 500ms, 1s; 10ms-60s)' })
    .option('interval', { type: 'string', default: '1s', describe: 'Pause between probes (e.g. 200ms; 0-60s)' })
    .option('json', { type: 'boolean', default: false, describe: 'One JSON object per probe, then {"type":"done","ok":…} (docs/OPERATIONS.md)' })
    .option('state-dir', { type: 'string', default: DEFAULT_STATE_DIR, describe: 'The agent\'s --state-dir (its control socket is agent.sock there)' })
    .option('socket', { type: 'string', describe: 'Control socket path (default: <state-dir>/agent.sock)' })
    .check((a) => {
      if (!Number.isInteger(a.count) || a.count < 1 || a.count > 1000) throw new Error('--count must be a whole number from 1 to 1000');
      durationFlag('timeout', a.timeout, 10, 60_000);
      durationFlag('interval', a.interval, 0, 60_000);
      return true;
    }),
  handler: async (args) => {
    const path = args.socket ?? join(args['state-dir'], 'agent.sock');
    const timeoutMs = durationFlag('timeout', args.timeout, 10, 60_000);
    const intervalMs = durationFlag('interval', args.interval, 0, 60_000);
    let ok = false;
    let failures = 0;
    let lastReason = '';
    const overall = args.count * (timeoutMs + intervalMs) + 5000;
    try {
      await requestControlSocket(path, { op: 'ping', target: args.target, count: args.count, timeoutMs, intervalMs }, (o) => {
        const line = o as ProbeResult | { type: 'done'; ok: boolean } | { type: 'error'; message: string };
        if (args.json) process.stdout.write(JSON.stringify(line) + '\n');
        if (line.type === 'done') ok = line.ok;
        else if (line.type === 'error') throw new CliError(`agent: ${line.message}`);
        else if (line.type !== 'probe') throw new CliError('the agent does not answer ping requests (an older version? restart it after the upgrade)');
        else {
          if (!line.ok) {
            failures++;
            lastReason = line.message ?? line.reason ?? 'failed';
          }
          if (!args.json) process.stdout.write(formatProbe(line) + '\n');
        }
      }, overall);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError((err as Error).message);
    }
    if (!ok) throw new CliError(failures ? `ping ${args.target} failed: ${lastReason}` : `ping ${args.target}: the agent gave no verdict`);
  },
};
