/** The agent's join flags: --tag is gone (members never tag themselves) and says where tags come from. */
import test from 'ava';
import yargs from 'yargs';
import { agentCommand } from '../../../cli/commands/agent';

async function failure(cmd: typeof agentCommand, argv: string[]): Promise<string | undefined> {
  let msg: string | undefined;
  await yargs(argv).command({ ...cmd, handler: () => undefined } as typeof cmd).strict().exitProcess(false)
    .fail((m, e) => { msg = m ?? e?.message; }).parseAsync().catch(() => undefined);
  return msg;
}

const join = ['agent', '--coordinator', 'https://10.0.0.1:7000', '--relay', '10.0.0.1:7000', '--token', 'isj_x'];

test('agent --tag is refused with a pointer to token and admin tags; without it the flags pass', async (t) => {
  const msg = await failure(agentCommand, [...join, '--tag', 'controller']);
  t.regex(msg ?? '', /--tag is no longer accepted/);
  t.regex(msg ?? '', /isthmus token create --tag/);
  t.regex(msg ?? '', /isthmus node tag/);
  t.is(await failure(agentCommand, join), undefined, 'positive control');
});

test('agent: a plain http:// coordinator is refused unless --insecure-coordinator; a bad --coordinator-pubkey is named', async (t) => {
  const plain = ['agent', '--coordinator', 'http://10.0.0.1:7000', '--relay', '10.0.0.1:7000', '--token', 'isj_x'];
  t.regex(await failure(agentCommand, plain) ?? '', /plain http:\/\/.*--insecure-coordinator/);
  t.is(await failure(agentCommand, [...plain, '--insecure-coordinator']), undefined, 'positive control: allowed with the flag');
  t.regex(await failure(agentCommand, [...join, '--coordinator-pubkey', 'not-a-key']) ?? '', /--coordinator-pubkey: not a base64 Ed25519 public key/);
  t.is(await failure(agentCommand, [...join, '--coordinator-pubkey', Buffer.alloc(32, 7).toString('base64')]), undefined, 'positive control');
});
