/** --busy-poll on `isthmus agent` and `isthmus relay`: bad values refused naming the flag, good ones pass. */
import test from 'ava';
import yargs, { type CommandModule } from 'yargs';
import { agentCommand } from '../../../cli/commands/agent';
import { relayCommand } from '../../../cli/commands/relay';

async function failure<A>(cmd: CommandModule<object, A>, argv: string[]): Promise<string | undefined> {
  let msg: string | undefined;
  await yargs(argv).command({ ...cmd, handler: () => undefined } as CommandModule<object, A>).strict().exitProcess(false)
    .fail((m, e) => { msg = m ?? e?.message; }).parseAsync().catch(() => undefined);
  return msg;
}

const agent = ['agent', '--coordinator', 'https://10.0.0.1:7000', '--relay', '10.0.0.1:7000', '--token', 'isj_x'];
const relay = ['relay', '--listen', '127.0.0.1:7000', '--members', '/dev/null'];

for (const [name, cmd, argv] of [['agent', agentCommand, agent], ['relay', relayCommand, relay]] as const) {
  test(`${name} --busy-poll: a bad or too long budget is refused naming the flag; 50us, 0.1ms and 0 pass`, async (t) => {
    const c = cmd as CommandModule<object, unknown>;
    t.regex(await failure(c, [...argv, '--busy-poll', 'soon']) ?? '', /--busy-poll must be a duration like 50us/);
    t.regex(await failure(c, [...argv, '--busy-poll', '50']) ?? '', /--busy-poll must be a duration like 50us/, 'a unit is required');
    t.regex(await failure(c, [...argv, '--busy-poll', '5ms']) ?? '', /--busy-poll must be at most 1ms/);
    for (const ok of ['50us', '0.1ms', '0']) t.is(await failure(c, [...argv, '--busy-poll', ok]), undefined, `positive control: ${ok}`);
    t.is(await failure(c, argv), undefined, 'positive control: the default');
  });
}
