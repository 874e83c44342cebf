import type { Argv, CommandModule } from 'yargs';
import { adminCall, adminClient, adminOptions, table, type AdminArgs } from './token';
import { TAG_NAME } from '../../policy';

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

interface ListArgs extends AdminArgs { tag: string[]; online?: boolean; offline?: boolean; relay?: string; original?: string }

const list: CommandModule<object, ListArgs> = {
  command: 'list',
  describe: 'List members: virtual IP, original IP, hostname, tags, relay session; filtered by the coordinator',
  builder: (y) => adminOptions(y)
    .option('tag', { type: 'string', array: true, default: [] as string[], describe: 'Only members carrying tag T (repeatable: all must match)' })
    .option('online', { type: 'boolean', describe: 'Only members holding a relay session now' })
    .option('offline', { type: 'boolean', describe: 'Only members without a relay session' })
    .option('relay', { type: 'string', describe: 'Only members whose session is on this relay: its id (r1) or address (IP or IP:PORT)' })
    .option('original', { type: 'string', describe: 'Only members whose original IP lies in this network (CIDR, e.g. 10.1.0.0/16; an IP means /32)' })
    .check((a) => {
      if (a.online && a.offline) throw new Error('give --online or --offline, not both');
      for (const f of ['relay', 'original'] as const) if (Array.isArray(a[f])) throw new Error(`--${f}: give it once`);
      return true;
    }) as Argv<ListArgs>,
  handler: async (a) => {
    const online = a.online ? true : a.offline ? false : undefined;
    const nodes = await adminCall(a, () => adminClient(a).listNodes({ tags: a.tag.map(String), online, relay: a.relay, original: a.original }));
    if (a.json) return void process.stdout.write(JSON.stringify(nodes) + '\n');
    const rows = [['VIP', 'ORIGINAL IP', 'HOSTNAME', 'TAGS', 'RELAY', 'LAST SEEN', 'KEY'],
      ...nodes.map((n) => [n.vip, n.originalIp, n.hostname, n.tags.join(',') || '-',
        n.session ? `${n.session.relayId ?? '?'} ${n.session.agentIp ?? ''}:${n.session.agentPort ?? ''}` : '-',
        ago(n.lastSeen) + (n.ephemeral ? ' (ephemeral)' : ''), n.publicKey.slice(0, 8) + '…'])];
    process.stdout.write(table(rows));
  },
};


const remove: CommandModule<object, AdminArgs & { vip: string; 'allow-rejoin': boolean }> = {
  command: 'remove <vip>',
  describe: 'Remove a member: frees its original IP and hostname, quarantines its virtual IP, and refuses its key '
    + 'from then on (even with a valid token) until `isthmus node allow-key` — unless --allow-rejoin',
  builder: (y) => adminOptions(y)
    .positional('vip', { type: 'string', demandOption: true, describe: 'Virtual IP of the member' })
    .option('allow-rejoin', { type: 'boolean', default: false, describe: 'Do not refuse its key: it may join again with a token' }) as
    Argv<AdminArgs & { vip: string; 'allow-rejoin': boolean }>,
  handler: async (a) => {
    const r = await adminCall(a, () => adminClient(a).removeNode(a.vip, { allowRejoin: a['allow-rejoin'] }));
    process.stderr.write(`removed ${a.vip}${r.keyRefused ? '; its key is refused from now on (undo: isthmus node allow-key <key>)' : ''}\n`);
  },
};

interface TagArgs extends AdminArgs { member: string; tag: string[]; 'remove-tag': string[] }

const tag: CommandModule<object, TagArgs> = {
  command: 'tag <member>',
  describe: 'Add or remove tags of a member (members never choose their own); its peers see the change',
  builder: (y) => adminOptions(y)
    .positional('member', { type: 'string', demandOption: true, describe: 'Virtual IP or hostname of the member' })
    .option('tag', { type: 'string', array: true, default: [] as string[], describe: 'Tag to add (repeatable)' })
    .option('remove-tag', { type: 'string', array: true, default: [] as string[], describe: 'Tag to remove (repeatable)' })
    .check((a) => {
      if (a.tag.length === 0 && a['remove-tag'].length === 0) throw new Error('Give --tag T and/or --remove-tag T');
      for (const t of [...a.tag, ...a['remove-tag']]) if (!TAG_NAME.test(String(t))) throw new Error(`tag ${JSON.stringify(t)}: 1-64 characters of A-Z a-z 0-9 _ . : / = -`);
      return true;
    }) as Argv<TagArgs>,
  handler: async (a) => {
    const r = await adminCall(a, () => adminClient(a).setNodeTags(a.member, {
      add: [...new Set(a.tag.map(String))], remove: [...new Set(a['remove-tag'].map(String))],
    }));
    if (a.json) return void process.stdout.write(JSON.stringify(r) + '\n');
    process.stdout.write(`${r.vip} tags: ${r.tags.join(',') || '-'}\n`);
  },
};

const allowKey: CommandModule<object, AdminArgs & { key: string }> = {
  command: 'allow-key <key>',
  describe: 'Let a key removed by `node remove` join again (it still needs a valid join token)',
  builder: (y) => adminOptions(y).positional('key', { type: 'string', demandOption: true, describe: 'The member\'s public key (base64), see `node removed-keys`' }) as
    Argv<AdminArgs & { key: string }>,
  handler: async (a) => {
    await adminCall(a, () => adminClient(a).allowKey(a.key));
    process.stderr.write(`allowed ${a.key}: it may join again with a token\n`);
  },
};

const removedKeys: CommandModule<object, AdminArgs> = {
  command: 'removed-keys',
  describe: 'List keys removed by `node remove` (their joins are refused)',
  builder: (y) => adminOptions(y),
  handler: async (a) => {
    const keys = await adminCall(a, () => adminClient(a).listRemovedKeys());
    if (a.json) return void process.stdout.write(JSON.stringify(keys) + '\n');
    const rows = [['KEY', 'WAS VIP', 'HOSTNAME', 'REMOVED'], ...keys.map((k) => [k.publicKey, k.vip, k.hostname || '-', ago(k.removedAt)])];
    process.stdout.write(table(rows));
  },
};

/** `isthmus node list|remove|tag|allow-key|removed-keys`. */
export const nodeCommand: CommandModule = {
  command: 'node <command>',
  describe: 'List, remove or tag members on a coordinator; allow a removed key again',
  builder: (y) => y.command(list).command(remove).command(tag).command(allowKey).command(removedKeys)
    .demandCommand(1, 'Name a node command: list, remove, tag, allow-key or removed-keys'),
  handler: () => undefined,
};
