/**
 * The package's /etc/isthmus/<daemon>.yaml files (packaging/debian/etc/) against the commands'
 * real options: every key they show is one the daemon declares, every shown flag of the daemon is
 * there, and the examples are valid: with every `#key: value` line uncommented, the file passes
 * the same checks `--config` makes (cli/settings.ts). The example Sentinel file too.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs, { type Argv, type CommandModule } from 'yargs';
import { DAEMONS } from '../../../cli/config-doc';
import { LOG_LEVEL_OPTION, declaredOptions, flagNames, readSettingsFile, SettingsError } from '../../../cli/settings';
import { coordinatorCommand } from '../../../cli/commands/coordinator';

const PKG = join(__dirname, '../../../packaging/debian');

function declared(cmd: CommandModule<object, never>) {
  const y = yargs([]).option('log-level', { ...LOG_LEVEL_OPTION, global: true });
  (cmd.builder as (y: Argv) => Argv)(y);
  return declaredOptions(y);
}

for (const [daemon, cmd] of DAEMONS) {
  test(`${daemon}.yaml shows exactly the keys isthmus ${daemon} declares, and its examples are valid settings`, (t) => {
    const file = join(PKG, 'etc', `${daemon}.yaml`);
    const text = readFileSync(file, 'utf8');
    const d = declared(cmd);
    const shown = [...text.matchAll(/^#([a-z][a-z0-9-]*):(?: |$)/gm)].map((m) => m[1]);
    const flags = flagNames(d).filter((f) => !d.hiddenOptions.includes(f) && f !== 'config');
    t.true(flags.length > 5, 'positive control: the flags were read');
    t.deepEqual(shown.filter((k) => !flags.includes(k)), [], 'keys that are no flag');
    // Inline secrets are never shown: the file takes their -file twin.
    t.deepEqual(flags.filter((f) => !shown.includes(f) && d.key[`${f}-file`] === undefined), [], 'flags not shown');
    t.true(shown.includes('log-level'));
    // Settings only: nothing is set by default, so a fresh install starts nothing half-configured.
    t.deepEqual(text.split('\n').filter((l) => /^[a-z]/.test(l)), []);
    t.deepEqual(readSettingsFile(d, file, text).values, {}, 'as shipped: no setting');
    // Every example uncommented: all of them parse and type-check as the daemon reads them.
    const uncommented = text.split('\n').map((l) => l.replace(/^#([a-z][a-z0-9-]*: .*)$/, '$1')).join('\n');
    const { values } = readSettingsFile(d, file, uncommented);
    t.deepEqual(Object.keys(values).sort(), [...new Set(shown)].sort());
    // Negative control: a misspelt key in the same text is refused, naming it and the file.
    t.throws(() => readSettingsFile(d, file, `${uncommented}\nlisen: 1\n`), { instanceOf: SettingsError, message: new RegExp(`${file}: unknown key "lisen"`) });
  });
}

test('the Sentinel example is a valid coordinator settings file without a password in it', (t) => {
  const file = join(PKG, 'examples', 'coordinator-sentinel.yaml');
  const text = readFileSync(file, 'utf8');
  const { values } = readSettingsFile(declared(coordinatorCommand as unknown as CommandModule<object, never>), file, text);
  t.like(values, { redis: { name: 'isthmus' }, 'redis-password-file': '/run/credentials/isthmus-coordinator.service/redis-password' });
  t.notRegex(text, /^\s*(password|sentinelPassword):/m);
});

test('the README\'s "Running it" settings files are valid for their daemons', (t) => {
  const readme = readFileSync(join(__dirname, '../../../README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n# \/etc\/isthmus\/(\w+)\.yaml[^\n]*\n([\s\S]*?)```/g)];
  t.deepEqual(blocks.map((b) => b[1]).sort(), ['agent', 'coordinator', 'mapper', 'relay']);
  for (const [, daemon, text] of blocks) {
    const cmd = DAEMONS.find(([n]) => n === daemon)![1];
    const { values } = readSettingsFile(declared(cmd), `README ${daemon}.yaml`, text);
    t.true(Object.keys(values).length >= 4, daemon);
  }
});
