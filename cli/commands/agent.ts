import type { CommandModule } from 'yargs';
import { readFileSync } from 'node:fs';
import { forComponent } from '../../common/logger';
import { systemClock } from '../../common/clock';
import { parseAgentConfig, ConfigError } from '../../node-agent/config';
import { Agent } from '../../node-agent/agent';
import { openTun, openUdpSocket } from '../../native-bindings';
import { CliError, onShutdown } from '../shutdown';

interface AgentArgs {
  config?: string;
  'rekey-after-time'?: number;
}

/** `isthmus agent`: the member daemon (root: it creates a TUN device). */
export const agentCommand: CommandModule<object, AgentArgs> = {
  command: 'agent',
  describe: 'Run the member daemon: a TUN device and WireGuard-protocol sessions to peers, directly or through a relay',
  builder: (y) => y
    .option('config', { type: 'string', describe: 'Static-peer config file (wg-quick style, see docs/CONFIG.md)', normalize: true })
    .option('rekey-after-time', { type: 'number', hidden: true, describe: 'Testing: REKEY_AFTER_TIME in seconds (spec: 120)' })
    .check((a) => {
      if (!a.config) throw new Error('Missing --config FILE (the static-peer config)');
      if (a['rekey-after-time'] !== undefined && !(a['rekey-after-time'] > 0)) throw new Error('--rekey-after-time must be a positive number of seconds');
      return true;
    }),
  handler: async (args) => {
    const log = forComponent('isthmus:agent');
    let text: string;
    try {
      text = readFileSync(args.config!, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read --config ${args.config}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let config;
    try {
      config = parseAgentConfig(text);
    } catch (err) {
      if (err instanceof ConfigError) throw new CliError(`${args.config}: ${err.message}`);
      throw err;
    }
    const timers = args['rekey-after-time'] ? { rekeyAfterTimeMs: args['rekey-after-time'] * 1000 } : undefined;
    const agent = new Agent(config, { clock: systemClock, logger: log, openTun, openUdpSocket }, { timers });
    onShutdown(() => agent.stop());
    await agent.start();
    process.on('SIGUSR1', () => log.info({ status: agent.status() }, 'status'));
  },
};
