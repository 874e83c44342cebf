import { readFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { CoordinatorHttpError } from '../../coordinator';
import { CliError } from '../shutdown';
import { adminCall, adminClient, adminOptions, type AdminArgs } from './token';

const FORMAT = 'The file is JSON: { "rules": [ { "from": ["tag:controller"], "to": ["tag:agent"], "ports": ["tcp/22", "tcp/8000-9000", "icmp"] } ] }. '
  + '"from"/"to" entries are tag:NAME or *; "ports" entries are tcp/N, tcp/N-M, udp/N, udp/N-M, icmp or *. '
  + 'A rule lets "from" open flows to "to" on those ports, and their replies come back; it does not let "to" open flows to "from". '
  + 'With no policy, every member reaches every member';

interface SetArgs extends AdminArgs { file: string }

const set: CommandModule<object, SetArgs> = {
  command: 'set <file>',
  describe: 'Set the access policy from FILE (- reads stdin); running members follow within a second',
  builder: (y) => adminOptions(y).epilogue(`${FORMAT}. A bad file is refused whole (the policy in force stays), naming the line and the reason; `
    + 'a tag no member or token carries is allowed, with a warning.').positional('file', { type: 'string', demandOption: true, describe: 'Policy file (JSON), or - for stdin' }) as Argv<SetArgs>,
  handler: async (a) => {
    // yargs hands a lone `-` over as ''.
    const stdin = a.file === '-' || a.file === '';
    let text: string;
    try {
      text = readFileSync(stdin ? 0 : a.file, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read policy file ${a.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const name = stdin ? '<stdin>' : a.file;
    const r = await adminCall(a, async () => {
      try {
        return await adminClient(a).setPolicy(text);
      } catch (err) {
        if (!(err instanceof CoordinatorHttpError) || err.code !== 'invalid-policy') throw err;
        const b = err.body as { path?: string; line?: number | null; column?: number | null; reason?: string };
        const where = b.line ? `${name}:${b.line}:${b.column}` : name;
        throw new CliError(`policy refused, nothing changed: ${where}: ${b.path || 'policy'}: ${b.reason ?? err.message}`);
      }
    });
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    if (a.json) return void process.stdout.write(JSON.stringify(r) + '\n');
    process.stderr.write(r.changed ? `policy set: ${r.rules} rule${r.rules === 1 ? '' : 's'} (version ${r.version})\n` : 'policy unchanged (already in force)\n');
  },
};

const get: CommandModule<object, AdminArgs> = {
  command: 'get',
  describe: 'Print the policy in force (or say that none is: every member reaches every member)',
  builder: (y) => adminOptions(y),
  handler: async (a) => {
    const v = await adminCall(a, () => adminClient(a).getPolicy());
    if (a.json) return void process.stdout.write(JSON.stringify(v) + '\n');
    if (v.text !== null) process.stdout.write(v.text.endsWith('\n') ? v.text : v.text + '\n');
    process.stderr.write(`${v.note}\n`);
    for (const t of v.unknownTags) process.stderr.write(`warning: tag:${t} is carried by no member and no valid token\n`);
  },
};

const clear: CommandModule<object, AdminArgs> = {
  command: 'clear',
  describe: 'Remove the policy: every member reaches every member again',
  builder: (y) => adminOptions(y),
  handler: async (a) => {
    const r = await adminCall(a, () => adminClient(a).clearPolicy());
    if (a.json) return void process.stdout.write(JSON.stringify(r) + '\n');
    process.stderr.write(`${r.changed ? 'policy cleared' : 'no policy was set'}: ${r.note}\n`);
  },
};

interface CheckArgs extends AdminArgs { from: string; to: string; port: string }

const check: CommandModule<object, CheckArgs> = {
  command: 'check',
  describe: 'May member --from open a flow to member --to on --port? Names the rule that allows it, or says none does. '
    + 'Exit status 0: allowed, 1: denied',
  builder: (y) => adminOptions(y)
    .option('from', { type: 'string', demandOption: true, describe: 'Member opening the flow: virtual IP, original IP or hostname' })
    .option('to', { type: 'string', demandOption: true, describe: 'Member it goes to: virtual IP, original IP or hostname' })
    .option('port', { type: 'string', demandOption: true, describe: 'tcp/N, udp/N or icmp' })
    .check((a) => {
      if (!/^(tcp|udp)\/[1-9][0-9]{0,4}$/.test(a.port) && a.port !== 'icmp') throw new Error(`--port must be tcp/N, udp/N (N 1-65535) or icmp; got ${JSON.stringify(a.port)}`);
      if (a.port !== 'icmp' && Number(a.port.split('/')[1]) > 65535) throw new Error(`--port ${a.port}: N must be 1-65535`);
      if (!a.from.trim()) throw new Error('--from names no member');
      if (!a.to.trim()) throw new Error('--to names no member');
      return true;
    }) as Argv<CheckArgs>,
  handler: async (a) => {
    const r = await adminCall(a, async () => {
      try {
        return await adminClient(a).checkPolicy({ from: a.from, to: a.to, port: a.port });
      } catch (err) {
        if (!(err instanceof CoordinatorHttpError) || err.status !== 404 || err.code !== 'not-found') throw err;
        const side = /^to:/.test(String(err.body.message)) ? 'to' : 'from';
        throw new CliError(`--${side} ${JSON.stringify(side === 'to' ? a.to : a.from)}: no member has this virtual IP, original IP or hostname`);
      }
    });
    if (a.json) process.stdout.write(JSON.stringify(r) + '\n');
    else process.stdout.write(`${r.reason}\n`);
    if (!r.allowed) throw new CliError('denied', 1);
  },
};

/** `isthmus policy set|get|clear|check`. */
export const policyCommand: CommandModule = {
  command: 'policy <command>',
  describe: 'Set, show, clear or test the access policy between members (tags → tags on ports)',
  builder: (y) => y.command(set).command(get).command(clear).command(check)
    .demandCommand(1, 'Name a policy command: set, get, clear or check'),
  handler: () => undefined,
};
