#!/usr/bin/env node
/**
 * The one `isthmus` command. Wiring only: every subcommand lives in cli/commands/.
 * Every flag can also come from the environment as ISTHMUS_<FLAG> (e.g. ISTHMUS_REDIS), and a
 * daemon's from its --config FILE (cli/settings.ts); --help shows each flag's variable.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { agentCommand } from './commands/agent';
import { relayCommand } from './commands/relay';
import { coordinatorCommand } from './commands/coordinator';
import { tokenCommand } from './commands/token';
import { nodeCommand } from './commands/node';
import { policyCommand } from './commands/policy';
import { mapperCommand } from './commands/mapper';
import { statusCommand } from './commands/status';
import { pingCommand } from './commands/ping';
import { keygenCommand, pubkeyCommand } from './commands/keygen';
import { demoCommand } from './commands/demo';
import { proxyUserCommand } from './commands/proxy-user';
import { CliError, installSignalHandlers, shutdown } from './shutdown';
import { LOG_LEVEL_OPTION, SettingsError, settingsMiddleware, withEnvHelp } from './settings';

async function main(): Promise<void> {
  installSignalHandlers();
  const args = hideBin(process.argv);
  await yargs(args)
    .scriptName('isthmus')
    .usage('$0 <command> [options]\n\nIP reachability across isolated VPCs for the members of one system.')
    .option('log-level', { ...LOG_LEVEL_OPTION, global: true })
    .middleware(settingsMiddleware(args), true)
    .command(withEnvHelp(agentCommand))
    .command(withEnvHelp(relayCommand))
    .command(withEnvHelp(coordinatorCommand))
    .command(withEnvHelp(tokenCommand))
    .command(withEnvHelp(nodeCommand))
    .command(withEnvHelp(policyCommand))
    .command(withEnvHelp(mapperCommand))
    .command(withEnvHelp(proxyUserCommand))
    .command(withEnvHelp(statusCommand))
    .command(withEnvHelp(pingCommand))
    .command(withEnvHelp(keygenCommand))
    .command(withEnvHelp(pubkeyCommand))
    .command(withEnvHelp(demoCommand))
    .demandCommand(1, 'Name a command: see `isthmus --help`')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .fail((msg, err) => {
      // Errors thrown by a handler go to main()'s catch; usage errors (bad or missing flags,
      // failed checks) are printed here with exit code 2.
      if (err instanceof SettingsError) msg = err.message;
      else if (err && !msg) throw err;
      process.stderr.write(`isthmus: ${msg}\nRun \`isthmus <command> --help\` for usage.\n`);
      process.exit(2);
    })
    .parseAsync();
}

main().catch((err: unknown) => {
  if (err instanceof SettingsError) {
    // A bad --config file is a usage error, as a bad flag is.
    process.stderr.write(`isthmus: ${err.message}\n`);
    void shutdown(2);
    return;
  }
  if (err instanceof CliError) {
    process.stderr.write(`isthmus: ${err.message}\n`);
    void shutdown(err.exitCode);
    return;
  }
  const e = err as NodeJS.ErrnoException;
  process.stderr.write(`isthmus: ${e.message}${e.code ? ` (${e.code})` : ''}\n`);
  void shutdown(1);
});
