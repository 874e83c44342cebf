/**
 * Where a daemon's settings come from, for every option a command declares (nothing here names
 * a particular flag, so a flag added with `.option(...)` gets all of it):
 *
 *   command line  >  environment (ISTHMUS_<FLAG>)  >  --config FILE (YAML)  >  defaults
 *
 * The file is YAML (JSON is YAML too), keys are the long flag names:
 *   listen: 0.0.0.0:7000
 *   redis-sentinel: [10.0.0.5:26379, 10.0.0.6:26379]
 * A key the command does not declare is an error naming the key and the file (a typo must not
 * silently drop a setting), and so is an inline secret (`admin-token`): the file names the
 * secret's file instead (`admin-token-file`).
 *
 * A flag renamed keeps its old name for one release as a hidden option marked
 * `deprecated: 'use --NEW'` (deprecatedFlag() below): given anywhere, it warns and fills --NEW.
 *
 * SIGHUP (onReload): the file is read again; settings the daemon can change live are applied
 * and logged, the others are named in a log line ("listen changed in FILE; restart to apply").
 */
import type { Arguments, Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { LOG_LEVELS, type LogLevel, type Logger, setLogLevel } from '../common';
import { ENV_PREFIX, envName, fromEnv } from './env-options';

export { ENV_PREFIX, envName };

export interface Declared {
  key: Record<string, unknown>;
  boolean: string[];
  number: string[];
  string: string[];
  array: string[];
  hiddenOptions: string[];
  deprecatedOptions: Record<string, string | boolean>;
  default: Record<string, unknown>;
  choices: Record<string, unknown[]>;
}

export type Source = 'command line' | 'environment' | 'file' | 'default';
const RANK: Record<Source, number> = { 'command line': 3, environment: 2, file: 1, default: 0 };

/** The options a yargs instance declares (yargs' getOptions, which its typings leave out). */
export function declaredOptions(y: Argv): Declared {
  return (y as unknown as { getOptions(): Declared }).getOptions();
}

/** Option names a user can give (long, kebab-case), without yargs' own. */
export function flagNames(d: Declared): string[] {
  return Object.keys(d.key).filter((k) => /^[a-z][a-z0-9-]*$/.test(k) && k !== 'help' && k !== 'version');
}

function givenOnCommandLine(flag: string, argv: string[]): boolean {
  return argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`) || a === `--no-${flag}`);
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The flag a deprecated one was renamed to (`deprecated: 'use --NEW'`), if any. */
function renamedTo(d: Declared, flag: string): string | undefined {
  const m = /^use --([a-z][a-z0-9-]*)/.exec(String(d.deprecatedOptions[flag] ?? ''));
  return m && d.key[m[1]] !== undefined ? m[1] : undefined;
}

/**
 * An old flag name kept for one release: hidden from --help, warns when given, fills `newFlag`
 * (unless that is given with higher precedence). Give it the old option's `type`.
 */
export function deprecatedFlag<T extends 'string' | 'number' | 'boolean' = 'string'>(newFlag: string, type: T = 'string' as T) {
  return { type, hidden: true, deprecated: `use --${newFlag}`, describe: `Renamed to --${newFlag} (the old name goes away in the next release)` } as const;
}

/** A config-file or reload error: it names the file and the key. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/** One value from the file, made the declared option's type; errors name `where` (file and key). */
function coerce(d: Declared, key: string, value: unknown, where: string): unknown {
  const scalar = (v: unknown): string => {
    if (v === null || typeof v === 'object') throw new SettingsError(`${where}: want a single value, got ${JSON.stringify(v)}`);
    return String(v);
  };
  if (d.array.includes(key)) {
    const list = Array.isArray(value) ? value : [value];
    return list.map((v) => (d.number.includes(key) ? Number(scalar(v)) : scalar(v)));
  }
  if (d.boolean.includes(key)) {
    if (typeof value === 'boolean') return value;
    const s = scalar(value);
    if (/^(true|yes|on|1)$/i.test(s)) return true;
    if (/^(false|no|off|0)$/i.test(s)) return false;
    throw new SettingsError(`${where}: want true or false, got ${JSON.stringify(value)}`);
  }
  if (d.number.includes(key)) {
    const n = typeof value === 'number' ? value : Number(scalar(value));
    if (!Number.isFinite(n) || (typeof value === 'string' && value.trim() === '')) throw new SettingsError(`${where}: want a number, got ${JSON.stringify(value)}`);
    return n;
  }
  if (d.string.includes(key)) return scalar(value);
  // An untyped option (the coordinator's `redis`, which may be ioredis options): as written.
  return value;
}

/**
 * The settings in `file` (text `text`), checked against the declared options: keys and types.
 * Deprecated keys come back under their new name (the old names in `renamed`).
 */
export function readSettingsFile(d: Declared, file: string, text: string): { values: Record<string, unknown>; renamed: Array<[string, string]> } {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new SettingsError(`--config ${file}: not YAML: ${(err as Error).message.split('\n')[0]} (quote a value that ends in ":" or holds ": ", e.g. redis-prefix: "myapp:")`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new SettingsError(`--config ${file}: want "key: value" lines (the long flag names), got ${Array.isArray(doc) ? 'a list' : typeof doc}`);
  const known = flagNames(d).filter((k) => k !== 'config');
  const values: Record<string, unknown> = {};
  const renamed: Array<[string, string]> = [];
  for (const [key, raw] of Object.entries(doc as Record<string, unknown>)) {
    if (!known.includes(key)) {
      const shown = known.filter((k) => !d.hiddenOptions.includes(k));
      throw new SettingsError(`--config ${file}: unknown key "${key}" (known keys: ${shown.join(', ')})`);
    }
    if (d.key[`${key}-file`] !== undefined) {
      throw new SettingsError(`--config ${file}: "${key}" is a secret: put it in a file of its own (mode 600) and give "${key}-file: PATH"`);
    }
    const to = renamedTo(d, key);
    if (to) {
      renamed.push([key, to]);
      if (key in values || (doc as Record<string, unknown>)[to] !== undefined) continue;
    }
    const value = coerce(d, to ?? key, raw, `--config ${file}: ${key}`);
    const choices = d.choices[to ?? key];
    if (choices && !choices.includes(value)) throw new SettingsError(`--config ${file}: ${key} must be one of ${choices.join(', ')}, got ${JSON.stringify(raw)}`);
    values[to ?? key] = value;
  }
  return { values, renamed };
}

/** A file given as the agent's --config that is a static-peer file (the old meaning of --config). */
function isStaticPeerFile(text: string): boolean {
  return /^\s*\[Interface\]\s*$/m.test(text);
}

interface Layers {
  declared: Declared;
  file?: string;
  sources: Record<string, Source>;
  argv: Arguments;
}

let layers: Layers | undefined;

function warn(msg: string): void {
  process.stderr.write(`isthmus: warning: ${msg}\n`);
}

function set(argv: Arguments, key: string, value: unknown): void {
  argv[key] = value;
  argv[camel(key)] = value;
}

/**
 * The middleware (before validation) that fills the chosen command's options from the
 * environment and its --config file, forwards deprecated names, and sets the log level.
 */
export function settingsMiddleware(commandLine: string[], env: NodeJS.ProcessEnv = process.env) {
  // yargs passes its instance as a second argument, which its typings do not declare.
  return (argv: Arguments, y?: Argv): void => {
    if (!y) return;
    const d = declaredOptions(y);
    const flags = flagNames(d);
    const sources: Record<string, Source> = {};
    for (const flag of flags) {
      if (givenOnCommandLine(flag, commandLine)) { sources[flag] = 'command line'; continue; }
      const value = fromEnv(env, flag, d);
      if (value !== undefined) {
        set(argv, flag, value);
        sources[flag] = 'environment';
      } else {
        sources[flag] = 'default';
      }
    }
    let file: string | undefined;
    if (flags.includes('config') && typeof argv.config === 'string' && argv.config !== '') {
      file = argv.config;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new SettingsError(`cannot read --config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (flags.includes('peers') && isStaticPeerFile(text)) {
        // The agent's --config used to be the static-peer file: still read as --peers, for one release.
        warn(`--config ${file} is a static-peer file ([Interface]): that is --peers FILE now; --config is the YAML settings file (docs/CONFIG.md)`);
        if (RANK[sources.peers] === 0) { set(argv, 'peers', file); sources.peers = sources.config; }
        set(argv, 'config', undefined);
        file = undefined;
      } else {
        const { values, renamed } = readSettingsFile(d, file, text);
        for (const [old, to] of renamed) warn(`--config ${file}: "${old}" is deprecated: use "${to}"`);
        for (const [key, value] of Object.entries(values)) {
          if (RANK[sources[key]] > RANK.file) continue;
          set(argv, key, value);
          sources[key] = 'file';
        }
      }
    }
    for (const old of Object.keys(d.deprecatedOptions)) {
      const to = renamedTo(d, old);
      if (!to || sources[old] === undefined || sources[old] === 'default') continue;
      const shown = sources[old] === 'environment' ? envName(old) : `--${old}`;
      warn(`${shown} is deprecated: use ${sources[old] === 'environment' ? envName(to) : `--${to}`} (the old name goes away in the next release)`);
      if (RANK[sources[old]] > RANK[sources[to]]) {
        set(argv, to, argv[old]);
        sources[to] = sources[old];
      }
    }
    const level = argv['log-level'];
    if (typeof level === 'string' && (LOG_LEVELS as readonly string[]).includes(level)) setLogLevel(level as LogLevel);
    layers = { declared: d, file, sources, argv };
  };
}

/** Where each setting of the running command came from (for tests and diagnostics). */
export function settingSources(): Readonly<Record<string, Source>> {
  return layers?.sources ?? {};
}

/**
 * The running command's settings that are not defaults, and where each came from: for a debug
 * line. Inline secrets (an option with a `-file` twin) and the Redis URL (it may carry a password)
 * show only their source.
 */
export function settingsInForce(): Record<string, { value?: unknown; from: Source }> {
  const out: Record<string, { value?: unknown; from: Source }> = {};
  if (!layers) return out;
  const { declared: d, sources, argv } = layers;
  for (const [key, from] of Object.entries(sources)) {
    if (from === 'default' || d.deprecatedOptions[key] !== undefined) continue;
    const secret = d.key[`${key}-file`] !== undefined || key === 'redis';
    out[key] = secret ? { from } : { value: argv[key], from };
  }
  return out;
}

/** Applies a new value of one setting live; returns what to log as its new value, or throws. */
export type Applier = (value: unknown) => unknown;

/** What one reload did. */
export interface ReloadReport {
  reloaded: Record<string, unknown>;
  /** Changed in the file, but only a restart applies them. */
  restart: string[];
  /** Changed in the file, but set on the command line or in the environment, which win. */
  overridden: string[];
}

const sameValue = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Read the --config file again and apply what changed: keys with an applier change live, the
 * others are reported as needing a restart. A key set on the command line or in the environment
 * keeps that value. Throws SettingsError (the running settings stay) on a bad file.
 */
export function reloadSettings(appliers: Record<string, Applier>): ReloadReport {
  const report: ReloadReport = { reloaded: {}, restart: [], overridden: [] };
  if (!layers?.file) return report;
  const { declared: d, file, sources, argv } = layers;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SettingsError(`cannot read --config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const { values } = readSettingsFile(d, file, text);
  const keys = new Set([...Object.keys(values), ...Object.entries(sources).filter(([, s]) => s === 'file').map(([k]) => k)]);
  // Validate every changed live setting first, so a bad file changes nothing.
  const changes: Array<[string, unknown]> = [];
  for (const key of keys) {
    const next = key in values ? values[key] : d.default[key];
    if (sameValue(next, argv[key])) continue;
    if (RANK[sources[key]] > RANK.file) { report.overridden.push(key); continue; }
    changes.push([key, next]);
  }
  for (const [key, next] of changes) {
    const apply = appliers[key];
    if (!apply) { report.restart.push(key); continue; }
    report.reloaded[key] = apply(next) ?? next;
    set(argv, key, next);
    sources[key] = key in values ? 'file' : 'default';
  }
  return report;
}

/** The live setting every daemon has: the log level. */
export const LOG_LEVEL_APPLIER: Applier = (value) => {
  const level = value === undefined ? 'info' : String(value);
  setLogLevel(level as LogLevel);
  return level;
};

/**
 * SIGHUP for a daemon: reload (see reloadSettings) with the log level and `appliers`, and log
 * what changed. A daemon without --config logs that there is nothing to reload.
 */
export function onReload(log: Logger, appliers: Record<string, Applier> = {}): void {
  log.debug({ settings: settingsInForce() }, 'settings in force');
  process.on('SIGHUP', () => {
    if (!layers?.file) {
      log.info('SIGHUP: no --config file, nothing to reload');
      return;
    }
    const file = layers.file;
    let report: ReloadReport;
    try {
      report = reloadSettings({ 'log-level': LOG_LEVEL_APPLIER, ...appliers });
    } catch (err) {
      log.error({ err: (err as Error).message, file }, 'SIGHUP: reload failed; the running settings stay');
      return;
    }
    for (const key of report.restart) log.warn({ key, file }, `${key} changed in ${file}; restart to apply`);
    for (const key of report.overridden) log.info({ key, file }, `${key} changed in ${file}, but the command line or environment sets it`);
    log.info({ reloaded: report.reloaded, file }, `SIGHUP: reloaded ${file}${Object.keys(report.reloaded).length ? `: ${Object.keys(report.reloaded).join(', ')}` : ' (no live setting changed)'}`);
    log.debug({ settings: settingsInForce() }, 'settings in force');
  });
}

/** `--config FILE`, declared the same way by every daemon. */
export const CONFIG_OPTION = {
  type: 'string',
  describe: 'YAML settings file: keys are the long flag names (listen: 0.0.0.0:7000); flags and ISTHMUS_* variables win over it. SIGHUP reads it again (docs/CONFIG.md)',
} as const;

/** `--log-level`, on every command. */
export const LOG_LEVEL_OPTION = {
  type: 'string',
  choices: LOG_LEVELS as unknown as string[],
  describe: 'Log level of the JSON lines on stderr (default: info); SIGHUP applies a new one from --config',
} as const;

/** Appends ` [env: ISTHMUS_X]` to each shown option's --help text, in this command and its subcommands. */
export function withEnvHelp<M extends { builder?: unknown }>(module: M): M {
  const inner = module.builder;
  if (typeof inner !== 'function' || (inner as { envHelp?: boolean }).envHelp) return module;
  const builder = (y: Argv, ...rest: unknown[]) => {
    const out = (inner as (y: Argv, ...r: unknown[]) => Argv | undefined)(y, ...rest) ?? y;
    decorateEnvHelp(out);
    const handlers = (out as unknown as { getInternalMethods(): { getCommandInstance(): { getCommandHandlers(): Record<string, { builder?: unknown }> } } })
      .getInternalMethods().getCommandInstance().getCommandHandlers();
    for (const h of Object.values(handlers)) Object.assign(h, { builder: withEnvHelp(h).builder });
    return out;
  };
  builder.envHelp = true;
  return { ...module, builder };
}

function decorateEnvHelp(y: Argv): void {
  const d = declaredOptions(y);
  const descriptions = (y as unknown as { getInternalMethods(): { getUsageInstance(): { getDescriptions(): Record<string, string | undefined> } } })
    .getInternalMethods().getUsageInstance().getDescriptions();
  for (const flag of flagNames(d)) {
    if (d.hiddenOptions.includes(flag)) continue;
    const text = descriptions[flag] ?? '';
    if (text.includes('[env: ')) continue;
    y.describe(flag, `${text}${text ? ' ' : ''}[env: ${envName(flag)}]`);
  }
}
