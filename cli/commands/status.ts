import type { CommandModule } from 'yargs';
import { join } from 'node:path';
import { readControlSocket, DEFAULT_STATE_DIR } from '../../node-agent';
import { formatStatus, type AgentStatus } from '../status-format';
import { CliError } from '../shutdown';

interface StatusArgs {
  'state-dir': string;
  socket?: string;
  json: boolean;
}

/** `isthmus status`: what the local agent is doing, from its control socket. */
export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'Show the local agent: its relay, the coordinator connection, the peer-map version, each peer (hostname, original IP, path, handshake, traffic, what it may open) and drops',
  builder: (y) => y
    .option('state-dir', { type: 'string', default: DEFAULT_STATE_DIR, describe: 'The agent\'s --state-dir (its control socket is agent.sock there)' })
    .option('socket', { type: 'string', describe: 'Control socket path (default: <state-dir>/agent.sock)' })
    .option('json', { type: 'boolean', default: false, describe: 'Print the status document (fields: docs/OPERATIONS.md, "isthmus status --json")' }),
  handler: async (args) => {
    const path = args.socket ?? join(args['state-dir'], 'agent.sock');
    let status: unknown;
    try {
      status = await readControlSocket(path);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    process.stdout.write(args.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status as AgentStatus, Date.now()));
  },
};
