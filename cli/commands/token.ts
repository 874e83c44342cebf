import type { Argv, CommandModule } from 'yargs';
import { CoordinatorClient, CoordinatorHttpError, CoordinatorTlsError, parseOriginalCidrs } from '../../coordinator';
import { parseDuration } from '../../common';
import { CliError } from '../shutdown';
import { secretFrom } from '../secret-file';
import { checkCoordinatorFlags, COORDINATOR_CA_OPTION, coordinatorCa, INSECURE_COORDINATOR_OPTION, type CoordinatorTlsArgs } from '../coordinator-flags';

/** Flags shared by the admin commands (`token`, `node`; node.ts imports these). */
export interface AdminArgs extends CoordinatorTlsArgs {
  coordinator?: string;
  'admin-token'?: string;
  'admin-token-file'?: string;
  json: boolean;
}

export function adminOptions<T>(y: Argv<T>): Argv<T & AdminArgs> {
  return y
    .option('coordinator', { type: 'string', describe: 'Coordinator URL, e.g. https://10.0.0.1:8080' })
    .option('coordinator-ca', COORDINATOR_CA_OPTION)
    .option('insecure-coordinator', INSECURE_COORDINATOR_OPTION)
    .option('admin-token', { type: 'string', describe: 'Admin bearer token of the coordinator (shows in process listings: prefer --admin-token-file or ISTHMUS_ADMIN_TOKEN)' })
    .option('admin-token-file', { type: 'string', describe: 'File holding the admin bearer token (mode 600/640)' })
    .option('json', { type: 'boolean', default: false, describe: 'Print JSON' })
    .check((a) => {
      if (!a.coordinator) throw new Error('Missing --coordinator URL');
      if (!/^https?:\/\/[^/\s]+\/?$/.test(a.coordinator)) throw new Error(`--coordinator must be https://HOST:PORT, got ${JSON.stringify(a.coordinator)}`);
      checkCoordinatorFlags(a);
      if (a['admin-token'] !== undefined && a['admin-token-file'] !== undefined) throw new Error('give either --admin-token or --admin-token-file, not both');
      if (!a['admin-token'] && !a['admin-token-file']) throw new Error('Missing --admin-token-file (or --admin-token)');
      return true;
    }) as unknown as Argv<T & AdminArgs>;
}

export function adminClient(a: AdminArgs): CoordinatorClient {
  let ca: Buffer | undefined;
  try {
    ca = coordinatorCa(a, (msg) => process.stderr.write(`warning: ${msg}\n`));
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  return new CoordinatorClient({ url: a.coordinator!, adminToken: secretFrom(a['admin-token'], a['admin-token-file'], 'admin-token'), ca, insecure: a['insecure-coordinator'] });
}

/** Turn HTTP and network failures into one-line CLI errors (no secrets in them). */
export async function adminCall<T>(a: AdminArgs, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CliError) throw err;
    if (err instanceof CoordinatorHttpError) throw new CliError(`coordinator refused: ${err.message}`);
    if (err instanceof CoordinatorTlsError) throw new CliError(`--coordinator ${err.message}`);
    const cause = (err as { cause?: { code?: string } }).cause;
    throw new CliError(`cannot reach --coordinator ${a.coordinator}: ${cause?.code ?? (err as Error).message}`);
  }
}

function when(ms: number): string {
  return ms ? new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z') : 'never';
}

interface CreateArgs extends AdminArgs { uses: number; ttl?: string; tag: string[]; 'original-cidr': string[]; ephemeral: boolean }

const create: CommandModule<object, CreateArgs> = {
  command: 'create',
  describe: 'Create a join token; prints it once (only its hash is stored). A member joining with it may claim as its original IP '
    + 'the address it joins from, or one inside an --original-cidr',
  builder: (y) => adminOptions(y)
    .option('uses', { type: 'number', default: 1, describe: 'How many joins it allows (-1: unlimited)' })
    .option('ttl', { type: 'string', describe: 'Lifetime, e.g. 30m, 24h, 7d (default: no expiry)' })
    .option('tag', { type: 'string', array: true, default: [] as string[], describe: 'Tag granted to members joining with it (repeatable)' })
    .option('original-cidr', { type: 'string', array: true, default: [] as string[],
      describe: 'Prefix (repeatable) members joining with it may claim their original IP in, besides the address they join from (e.g. hosts behind NAT)' })
    .option('ephemeral', { type: 'boolean', default: false, describe: 'Members are removed once their relay session is gone for a while' })
    .check((a) => {
      if (!Number.isInteger(a.uses) || a.uses < -1 || a.uses === 0 || a.uses > 1_000_000) throw new Error('--uses must be a whole number 1..1000000, or -1 for unlimited');
      if (a.ttl !== undefined) {
        try { parseDuration(a.ttl); } catch { throw new Error(`--ttl must be a duration like 30m, 24h, 7d; got ${JSON.stringify(a.ttl)}`); }
      }
      try { parseOriginalCidrs(a['original-cidr'].map(String)); } catch (err) { throw new Error(`--original-cidr: ${(err as Error).message}`); }
      for (const t of a.tag) if (!/^[A-Za-z0-9_.:/=-]{1,64}$/.test(String(t))) throw new Error(`--tag ${JSON.stringify(t)}: 1-64 characters of A-Z a-z 0-9 _ . : / = -`);
      return true;
    }) as Argv<CreateArgs>,
  handler: async (a) => {
    let originalCidrs: string[];
    try {
      originalCidrs = parseOriginalCidrs(a['original-cidr'].map(String));
    } catch (err) {
      throw new CliError(`--original-cidr: ${(err as Error).message}`);
    }
    const t = await adminCall(a, () => adminClient(a).createToken({
      uses: a.uses, ...(a.ttl ? { ttl: a.ttl } : {}), tags: [...new Set(a.tag.map(String))], originalCidrs, ephemeral: a.ephemeral,
    }));
    if (a.json) process.stdout.write(JSON.stringify(t) + '\n');
    else {
      process.stdout.write(t.token + '\n');
      process.stderr.write(`token ${t.id}: uses ${t.usesLeft < 0 ? 'unlimited' : t.usesLeft}, expires ${when(t.expiresAt)}` +
        `${t.tags.length ? `, tags ${t.tags.join(',')}` : ''}${t.originalCidrs.length ? `, original IPs in ${t.originalCidrs.join(',')}` : ''}${t.ephemeral ? ', ephemeral' : ''} (shown once)\n`);
    }
  },
};

const list: CommandModule<object, AdminArgs> = {
  command: 'list',
  describe: 'List join tokens (ids and state, never the secrets)',
  builder: (y) => adminOptions(y),
  handler: async (a) => {
    const tokens = await adminCall(a, () => adminClient(a).listTokens());
    if (a.json) return void process.stdout.write(JSON.stringify(tokens) + '\n');
    const rows = [['ID', 'STATE', 'USES LEFT', 'EXPIRES', 'TAGS', 'ORIGINAL CIDRS', 'EPHEMERAL'],
      ...tokens.map((t) => [t.id, t.state, t.usesLeft < 0 ? 'unlimited' : String(t.usesLeft), when(t.expiresAt), t.tags.join(',') || '-',
        (t.originalCidrs ?? []).join(',') || '-', t.ephemeral ? 'yes' : 'no'])];
    process.stdout.write(table(rows));
  },
};

const revoke: CommandModule<object, AdminArgs & { id: string }> = {
  command: 'revoke <id>',
  describe: 'Revoke a join token by id (members already joined stay)',
  builder: (y) => adminOptions(y).positional('id', { type: 'string', demandOption: true, describe: 'Token id (tok_…) from `token list`' }) as Argv<AdminArgs & { id: string }>,
  handler: async (a) => {
    await adminCall(a, () => adminClient(a).revokeToken(a.id));
    process.stderr.write(`revoked ${a.id}\n`);
  },
};

/** Aligned columns for list output. */
export function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()).join('\n') + '\n';
}

/** `isthmus token create|list|revoke`. */
export const tokenCommand: CommandModule = {
  command: 'token <command>',
  describe: 'Manage join tokens on a coordinator',
  builder: (y) => y.command(create).command(list).command(revoke).demandCommand(1, 'Name a token command: create, list or revoke'),
  handler: () => undefined,
};
