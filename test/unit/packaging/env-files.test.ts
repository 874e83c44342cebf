/**
 * The package's /etc/isthmus/<daemon>.env files (packaging/debian/etc/) against the commands'
 * real flags: every ISTHMUS_<FLAG> they show is a flag the daemon declares (a misspelt one
 * would be ignored without a word), and every flag a daemon declares is shown there.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs, { type Argv, type CommandModule } from 'yargs';
import { agentCommand } from '../../../cli/commands/agent';
import { relayCommand } from '../../../cli/commands/relay';
import { coordinatorCommand } from '../../../cli/commands/coordinator';
import { mapperCommand } from '../../../cli/commands/mapper';
import { ENV_PREFIX } from '../../../cli/env-options';

const ETC = join(__dirname, '../../../packaging/debian/etc');
/** Read from the environment directly, not flags (common/logger.ts, native-bindings/udp-socket.ts). */
const NOT_FLAGS = new Set(['ISTHMUS_LOG_LEVEL', 'ISTHMUS_UDP_BUFFER_BYTES']);
/** Declared flags an env file leaves out on purpose. */
const LEFT_OUT: Record<string, string[]> = {
  agent: ['leave'], // a one-off command (`isthmus agent --leave`), not a daemon setting
  coordinator: ['config'], // not read from ISTHMUS_CONFIG; the file explains the --config drop-in
};

function declaredFlags(cmd: CommandModule<object, never>): string[] {
  const y = yargs([]);
  (cmd.builder as (y: Argv) => Argv)(y);
  const o = (y as unknown as { getOptions(): { key: Record<string, unknown>; hiddenOptions: string[] } }).getOptions();
  return Object.keys(o.key).filter((k) => /^[a-z][a-z0-9-]*$/.test(k) && !['help', 'version'].includes(k) && !o.hiddenOptions.includes(k));
}

const envName = (flag: string) => ENV_PREFIX + flag.toUpperCase().replace(/-/g, '_');

for (const [daemon, cmd] of [['agent', agentCommand], ['relay', relayCommand], ['coordinator', coordinatorCommand], ['mapper', mapperCommand]] as const) {
  test(`${daemon}.env shows exactly the flags isthmus ${daemon} declares, as ISTHMUS_<FLAG>`, (t) => {
    const text = readFileSync(join(ETC, `${daemon}.env`), 'utf8');
    const shown = new Set([...text.matchAll(/^#?(ISTHMUS_[A-Z0-9_]+)=/gm)].map((m) => m[1]));
    const flags = declaredFlags(cmd as unknown as CommandModule<object, never>);
    t.true(flags.length > 3, 'positive control: the flags were read');
    const known = new Set(flags.map(envName));
    t.deepEqual([...shown].filter((n) => !known.has(n) && !NOT_FLAGS.has(n)), [], 'names that are no flag');
    t.deepEqual(flags.filter((f) => !shown.has(envName(f)) && !(LEFT_OUT[daemon] ?? []).includes(f)), [], 'flags not shown');
    t.true(shown.has('ISTHMUS_LOG_LEVEL'));
    // Settings only: nothing is set by default, so a fresh install starts nothing half-configured.
    t.deepEqual(text.split('\n').filter((l) => /^[A-Z_]+=/.test(l)), []);
  });
}
