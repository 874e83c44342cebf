/**
 * The import boundaries (eslint.config.mjs; `npm run lint`, part of `npm test`, lints the tree):
 * the rule does fail on a deep import across parts and on an upward one (each next to the import
 * that is allowed, so a rule that fails everything, or nothing, is caught).
 */
import test from 'ava';
import path from 'node:path';
import { ESLint } from 'eslint';

const ROOT = path.resolve(__dirname, '../../..');
const eslint = new ESLint({ cwd: ROOT });

async function lint(file: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return r.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

test('a part imports another part through its front door; a deep import is refused', async (t) => {
  t.deepEqual(await lint('relay/probe.ts', "import { parseAddr } from '../common';\nexport const x = parseAddr;\n"), []);
  const deep = await lint('relay/probe.ts', "import { parseAddr } from '../common/ipv4';\nexport const x = parseAddr;\n");
  t.is(deep.length, 1);
  t.regex(deep[0], /no-restricted-paths: .*front door/);
});

test('imports go down the layers: an upward import is refused, also through a front door', async (t) => {
  t.deepEqual(await lint('node-agent/probe.ts', "import { CoordinatorClient } from '../coordinator';\nexport const x = CoordinatorClient;\n"), []);
  const up = await lint('common/probe.ts', "import { Agent } from '../node-agent';\nexport const x = Agent;\n");
  t.is(up.length, 1);
  t.regex(up[0], /common\/ may not depend on node-agent\//);
  const sideways = await lint('relay/probe.ts', "import { Agent } from '../node-agent';\nexport const x = Agent;\n");
  t.regex(sideways.join('\n'), /relay\/ may not depend on node-agent\//);
});

test('the product never imports test/ or bench/; tests use the testbed through its front door', async (t) => {
  t.regex((await lint('cli/probe.ts', "import { startRedis } from '../test/harness/redis';\nexport const x = startRedis;\n")).join('\n'), /never imports test\//);
  t.regex((await lint('mapper/probe.ts', "import { formatReport } from '../bench/report';\nexport const x = formatReport;\n")).join('\n'), /may not depend on bench\//);
  t.deepEqual(await lint('test/unit/probe.test.ts', "import { startRedis } from '../../testbed';\nexport const x = startRedis;\n"), []);
  t.regex((await lint('test/unit/probe.test.ts', "import { startRedis } from '../../testbed/redis-server';\nexport const x = startRedis;\n")).join('\n'), /testbed\/index\.ts/);
});

