/**
 * `isthmus proxy-user create|list|revoke`: the credentials callers give a gateway
 * (`isthmus mapper --gateway`), kept hashed in Redis by the coordinator (docs/GATEWAY.md).
 * Same --coordinator / --admin-token(-file) flags as `isthmus token`.
 */
import type { Argv, CommandModule } from 'yargs';
import { PROXY_USER_NAME } from '../../coordinator';
import { TAG_NAME } from '../../policy';
import { adminCall, adminClient, adminOptions, table, type AdminArgs } from './token';

function when(ms: number): string {
  return ms ? new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z') : '-';
}

function checkName(name: unknown): void {
  if (typeof name !== 'string' || !PROXY_USER_NAME.test(name)) {
    throw new Error(`proxy user name ${JSON.stringify(name)}: 1-64 characters of A-Z a-z 0-9 _ . @ - (no ':'), starting with a letter or digit`);
  }
}

interface CreateArgs extends AdminArgs { name: string; tag: string[] }

const create: CommandModule<object, CreateArgs> = {
  command: 'create <name>',
  describe: 'Create a proxy user with the given tags; prints its generated password once, as the last line (only a salted scrypt hash is stored)',
  builder: (y) => adminOptions(y)
    .positional('name', { type: 'string', demandOption: true, describe: 'User name (the SOCKS5 / HTTP Basic username)' })
    .option('tag', { type: 'string', array: true, default: [] as string[],
      describe: 'Tag the policy sees as the source of this user\'s connections (repeatable, at least one)' })
    .check((a) => {
      checkName(a.name);
      if (a.tag.length === 0) throw new Error('Missing --tag: a proxy user reaches what its tags may reach under the policy (give at least one)');
      for (const t of a.tag) if (!TAG_NAME.test(String(t))) throw new Error(`--tag ${JSON.stringify(t)}: 1-64 characters of A-Z a-z 0-9 _ . : / = -`);
      return true;
    }) as Argv<CreateArgs>,
  handler: async (a) => {
    const u = await adminCall(a, () => adminClient(a).createProxyUser({ name: a.name, tags: [...new Set(a.tag.map(String))] }));
    if (a.json) return void process.stdout.write(JSON.stringify(u) + '\n');
    process.stderr.write(`proxy user ${u.name}: tags ${u.tags.join(',')} (password shown once)\n`);
    process.stdout.write(u.password + '\n');
  },
};

const list: CommandModule<object, AdminArgs> = {
  command: 'list',
  describe: 'List proxy users (names, tags, creation time; never passwords or hashes)',
  builder: (y) => adminOptions(y),
  handler: async (a) => {
    const users = await adminCall(a, () => adminClient(a).listProxyUsers());
    if (a.json) return void process.stdout.write(JSON.stringify(users) + '\n');
    process.stdout.write(table([['NAME', 'TAGS', 'CREATED'], ...users.map((u) => [u.name, u.tags.join(','), when(u.createdAt)])]));
  },
};

const revoke: CommandModule<object, AdminArgs & { name: string }> = {
  command: 'revoke <name>',
  describe: 'Revoke a proxy user: every gateway refuses it within a second (open connections stay)',
  builder: (y) => adminOptions(y)
    .positional('name', { type: 'string', demandOption: true, describe: 'User name' })
    .check((a) => { checkName(a.name); return true; }) as Argv<AdminArgs & { name: string }>,
  handler: async (a) => {
    await adminCall(a, () => adminClient(a).revokeProxyUser(a.name));
    process.stderr.write(`revoked proxy user ${a.name}\n`);
  },
};

/** `isthmus proxy-user create|list|revoke`. */
export const proxyUserCommand: CommandModule = {
  command: 'proxy-user <command>',
  describe: 'Manage gateway proxy users (SOCKS5 / HTTP proxy credentials) on a coordinator',
  builder: (y) => y.command(create).command(list).command(revoke).demandCommand(1, 'Name a proxy-user command: create, list or revoke'),
  handler: () => undefined,
};
