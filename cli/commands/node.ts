import type { Argv, CommandModule } from 'yargs';
import { adminCall, adminClient, adminOptions, table, type AdminArgs } from './token';

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

const list: CommandModule<object, AdminArgs> = {
  command: 'list',
  describe: 'List members: virtual IP, original IP, hostname, tags, relay session',
  builder: (y) => adminOptions(y),
  handler: async (a) => {
    const nodes = await adminCall(a, () => adminClient(a).listNodes());
    if (a.json) return void process.stdout.write(JSON.stringify(nodes) + '\n');
    const rows = [['VIP', 'ORIGINAL IP', 'HOSTNAME', 'TAGS', 'RELAY', 'LAST SEEN', 'KEY'],
      ...nodes.map((n) => [n.vip, n.originalIp, n.hostname, n.tags.join(',') || '-',
        n.session ? `${n.session.relayId ?? '?'} ${n.session.agentIp ?? ''}:${n.session.agentPort ?? ''}` : '-',
        ago(n.lastSeen) + (n.ephemeral ? ' (ephemeral)' : ''), n.publicKey.slice(0, 8) + '…'])];
    process.stdout.write(table(rows));
  },
};

const remove: CommandModule<object, AdminArgs & { vip: string }> = {
  command: 'remove <vip>',
  describe: 'Remove a member (its virtual IP is quarantined, its key must join again with a token)',
  builder: (y) => adminOptions(y).positional('vip', { type: 'string', demandOption: true, describe: 'Virtual IP of the member' }) as Argv<AdminArgs & { vip: string }>,
  handler: async (a) => {
    await adminCall(a, () => adminClient(a).removeNode(a.vip));
    process.stderr.write(`removed ${a.vip}\n`);
  },
};

/** `isthmus node list|remove`. */
export const nodeCommand: CommandModule = {
  command: 'node <command>',
  describe: 'List or remove members on a coordinator',
  builder: (y) => y.command(list).command(remove).demandCommand(1, 'Name a node command: list or remove'),
  handler: () => undefined,
};
