/**
 * docs/CONFIG.md's reference against the daemons' real option definitions: the generated part
 * must be exactly what `npm run docs:config` makes now, so a flag added, renamed or redescribed
 * without regenerating fails here. Also: every daemon flag that is shown appears in it.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BEGIN, DAEMONS, END, commandOptions, renderConfigReference, withReference } from '../../../cli/config-doc';
import { envName } from '../../../cli/settings';

const DOC = join(__dirname, '../../../docs/CONFIG.md');

test('docs/CONFIG.md reference is what the option definitions generate (npm run docs:config)', (t) => {
  const doc = readFileSync(DOC, 'utf8');
  const generated = renderConfigReference();
  t.is(doc.slice(doc.indexOf(BEGIN), doc.indexOf(END) + END.length), generated, 'run `npm run docs:config` and commit docs/CONFIG.md');
  t.is(withReference(doc, generated), doc);
});

test('the reference names every shown flag of every daemon with its variable; a changed description would show', (t) => {
  const generated = renderConfigReference();
  for (const [name, cmd] of DAEMONS) {
    const { d, flags, descriptions } = commandOptions(cmd);
    const shown = flags.filter((f) => !d.hiddenOptions.includes(f));
    t.true(shown.length > 5, name);
    for (const f of shown) t.true(generated.includes(`| \`--${f}\` | \`${envName(f)}\` |`), `${name} --${f}`);
    // Negative control: the check is sensitive to a description edit.
    const f = shown.find((x) => descriptions[x]);
    t.truthy(f);
    const edited = generated.replace(descriptions[f!]!.replace(/\|/g, '\\|'), 'something else');
    t.not(edited, generated, `${name}: the description of --${f} is in the reference`);
  }
  t.regex(generated, /\| `isthmus coordinator --prefix` \| `--redis-prefix` \|/, 'renamed flags are listed');
  t.regex(generated, /\| `--admin-token` \| `ISTHMUS_ADMIN_TOKEN` \| \(secret: `admin-token-file`\)/, 'inline secrets point at their file');
});
