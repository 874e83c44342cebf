import test from 'ava';
import yargs from 'yargs';
import { mapperCommand, parseListen } from '../../../cli/commands/mapper';

async function failure(argv: string[]): Promise<string | undefined> {
  let msg: string | undefined;
  await yargs(argv).command({ ...mapperCommand, handler: () => undefined }).strict().exitProcess(false)
    .fail((m, e) => { msg = m ?? e?.message; }).parseAsync().catch(() => undefined);
  return msg;
}

test('validation messages name the flag', async (t) => {
  t.regex((await failure(['mapper', '--redis', 'x', '--api', '1']))!, /--redis/);
  t.regex((await failure(['mapper', '--redis', 'redis://h:1']))!, /--api, --socks, --http-proxy/);
  t.regex((await failure(['mapper', '--redis', 'redis://h:1', '--socks', 'a:b']))!, /--socks must be HOST:PORT .*got "a:b"/);
  t.regex((await failure(['mapper', '--redis', 'redis://h:1', '--socks', '1080', '--socks-user', 'u']))!, /--socks-user and --socks-pass/);
  t.regex((await failure(['mapper', '--redis', 'redis://h:1', '--socks', '1080', '--overlay-cidr', '1.2.3/40']))!, /--overlay-cidr/);
  t.regex((await failure(['mapper', '--redis', 'redis://h:1', '--socks', '1080', '--original-cidr', 'nope']))!, /--original-cidr/);
  t.is(await failure(['mapper', '--redis', 'redis://h:1', '--socks', '1080', '--api', '127.0.0.1:7070', '--original-cidr', '10.0.0.0/8']), undefined);
});

test('listen addresses default to the given host only when none is written', (t) => {
  t.deepEqual(parseListen('socks', '1080', '127.0.0.1'), { host: '127.0.0.1', port: 1080 });
  t.deepEqual(parseListen('socks', ':1080', '0.0.0.0'), { host: '0.0.0.0', port: 1080 });
  t.deepEqual(parseListen('socks', '10.0.0.5:1080', '127.0.0.1'), { host: '10.0.0.5', port: 1080 });
  t.deepEqual(parseListen('socks', '[::1]:1080', '127.0.0.1'), { host: '::1', port: 1080 });
  t.throws(() => parseListen('api', '70000', 'x'), { message: /--api/ });
});
