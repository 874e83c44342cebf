/**
 * Flags from the environment: ISTHMUS_<FLAG> (e.g. ISTHMUS_ADMIN_TOKEN for --admin-token)
 * fills a flag of the command being run when the command line does not give it
 * (cli/settings.ts layers it with the command line and the --config file).
 *
 * yargs' own `.env()` turns every ISTHMUS_* variable into an argument, so with `.strict()`
 * an exported ISTHMUS_REDIS breaks `isthmus keygen`. Only the options the chosen command
 * declares are looked at.
 */
export const ENV_PREFIX = 'ISTHMUS_';

/** --redis-password-file → ISTHMUS_REDIS_PASSWORD_FILE */
export function envName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replace(/-/g, '_');
}

interface Types {
  boolean: string[];
  number: string[];
  array: string[];
}

/** The flag's value from `env`, made its declared type (lists comma-separated); undefined when unset. */
export function fromEnv(env: NodeJS.ProcessEnv, flag: string, types: Types): unknown {
  const value = env[envName(flag)];
  if (value === undefined) return undefined;
  if (types.array.includes(flag)) {
    const list = value.split(',').map((v) => v.trim()).filter(Boolean);
    return types.number.includes(flag) ? list.map(Number) : list;
  }
  if (types.boolean.includes(flag)) return !/^(0|false|no|off|)$/i.test(value);
  if (types.number.includes(flag)) return Number(value);
  return value;
}
