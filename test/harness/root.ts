/**
 * Registering tests that need root or an external tool, so that ava reports them honestly.
 *
 * ava decides at registration whether a test runs: a test registered with `.skip` is counted
 * as skipped in the summary ("N tests skipped"), while a test that returns early with `t.pass`
 * is counted as passed although it checked nothing. So the decision is made here, when the
 * file registers its tests:
 *
 *   - not root: root tests are registered as skipped, and the file says why once;
 *   - root: they run as usual. CI runs as root after scripts/setup.sh, which installs every
 *     tool the tests use, so a tool missing as root is a failure that names it, not a skip.
 *
 * Hooks need no wrapping: ava runs no `before`/`after` hook in a file whose tests are all skipped.
 */
import type { ExecutionContext, SkipFn, TestFn } from 'ava';
import { accessSync, constants } from 'node:fs';
import { delimiter, join, relative } from 'node:path';

/** Root on Linux: network namespaces, veths, nft and TUN devices are available. */
export const isRoot = process.platform === 'linux' && process.getuid?.() === 0;

/** The commands in `tools` that are not an executable file on $PATH. */
export function missingTools(tools: readonly string[]): string[] {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const found = (tool: string) => dirs.some((d) => {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  return tools.filter((tool) => !found(tool));
}

function notInstalled(missing: readonly string[]): string {
  return `not installed: ${missing.join(', ')} (scripts/setup.sh installs what the tests need)`;
}

const told = new Set<string>();
function tell(file: string, why: string): void {
  const key = `${file}\0${why}`;
  if (told.has(key)) return;
  told.add(key);
  console.log(`${relative(process.cwd(), file)}: ${why}`);
}

/** Registers each test (by title; macros are not used here) as one that fails at once with `why`. */
function failing<C>(register: SkipFn<C>, why: string): SkipFn<C> {
  return ((title: unknown) => register(String(title), (t: ExecutionContext<C>) => t.fail(why))) as SkipFn<C>;
}

export interface Needs {
  /** Commands the tests run (scripts/setup.sh installs them), e.g. ['wireguard-go', 'wg']. */
  tools?: readonly string[];
  /** What root is needed for, for the skip message, e.g. 'network namespaces and veths'. */
  why?: string;
}

/**
 * `test.serial` as root, `test.serial.skip` otherwise; `file` is the caller's `__filename`,
 * named in the one line that says why its tests are skipped. As root, a missing tool in
 * `needs.tools` fails each test with a message naming it.
 *
 *   const rootTest = forRoot(test, __filename, { tools: ['wireguard-go', 'wg'] });
 *   rootTest('handshake with wireguard-go', async (t) => { ... });
 */
export function forRoot<C>(test: TestFn<C>, file: string, needs: Needs = {}): SkipFn<C> {
  if (!isRoot) {
    tell(file, `skipped: needs root (${needs.why ?? 'network namespaces, veths, nft'}); run the suite as root to include it`);
    return test.serial.skip;
  }
  const missing = missingTools(needs.tools ?? []);
  if (missing.length === 0) return test.serial;
  return failing(test.serial, notInstalled(missing));
}

/**
 * `test` for tests that need only a tool, not root: they run whenever the tool is there. Not
 * root and missing, they are skipped with one line saying why; root and missing, they fail.
 */
export function withTools<C>(test: TestFn<C>, file: string, tools: readonly string[]): SkipFn<C> {
  const missing = missingTools(tools);
  if (missing.length === 0) return test;
  if (isRoot) return failing(test, notInstalled(missing));
  tell(file, `skipped: ${missing.join(', ')} not installed (scripts/setup.sh installs it)`);
  return test.skip;
}
