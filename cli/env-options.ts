/**
 * Flags from the environment: ISTHMUS_<FLAG> (e.g. ISTHMUS_ADMIN_TOKEN for --admin-token)
 * fills a flag of the command being run when the command line does not give it.
 *
 * yargs' own `.env()` turns every ISTHMUS_* variable into an argument, so with `.strict()`
 * an exported ISTHMUS_REDIS breaks `isthmus keygen`. This middleware only looks at the
 * options the chosen command declares.
 */
import type { Arguments, Argv } from 'yargs';

export const ENV_PREFIX = 'ISTHMUS_';

interface DeclaredOptions {
  key: Record<string, unknown>;
  boolean: string[];
  number: string[];
  array: string[];
}

function givenOnCommandLine(flag: string, argv: string[]): boolean {
  return argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`) || a === `--no-${flag}`);
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export function envToFlags(commandLine: string[], env: NodeJS.ProcessEnv = process.env) {
  // yargs passes its instance as a second argument, which its typings do not declare.
  return (argv: Arguments, y?: Argv): void => {
    if (!y) return;
    const opts = (y as unknown as { getOptions(): DeclaredOptions }).getOptions();
    for (const flag of Object.keys(opts.key)) {
      if (!/^[a-z][a-z0-9-]*$/.test(flag) || flag === 'help' || flag === 'version') continue;
      const value = env[ENV_PREFIX + flag.toUpperCase().replace(/-/g, '_')];
      if (value === undefined || givenOnCommandLine(flag, commandLine)) continue;
      let parsed: unknown = value;
      if (opts.boolean.includes(flag)) parsed = !/^(0|false|no|off|)$/i.test(value);
      else if (opts.number.includes(flag)) parsed = Number(value);
      if (opts.array.includes(flag)) parsed = value.split(',').map((v) => v.trim()).filter(Boolean);
      argv[flag] = parsed;
      argv[camel(flag)] = parsed;
    }
  };
}
