/** Secrets from files: --token-file, --admin-token-file, --redis-password-file, --socks-pass-file. */
import test from 'ava';
import yargs, { type CommandModule } from 'yargs';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentCommand } from '../../../cli/commands/agent';
import { mapperCommand } from '../../../cli/commands/mapper';
import { readSecretFile, secretFrom } from '../../../cli/secret-file';

const dir = mkdtempSync(join(tmpdir(), 'isthmus-secret-files-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string, mode: number): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
}

async function failure(cmd: CommandModule<object, any>, argv: string[]): Promise<string | undefined> {
  let msg: string | undefined;
  await yargs(argv).command({ ...cmd, handler: () => undefined }).strict().exitProcess(false)
    .fail((m, e) => { msg = m ?? e?.message; }).parseAsync().catch(() => undefined);
  return msg;
}

test('a secret file: one line, trailing newline dropped; refused when every user may read it, empty, or missing', (t) => {
  t.is(readSecretFile(file('ok', 's3cret\n', 0o600), '--x-file'), 's3cret');
  t.is(readSecretFile(file('group', 's3cret', 0o640), '--x-file'), 's3cret', 'group-readable is fine (a service group)');
  t.throws(() => readSecretFile(file('world', 's3cret\n', 0o644), '--x-file'), { message: /--x-file .* is accessible to every user \(mode 644\): chmod 600/ });
  t.throws(() => readSecretFile(file('worldw', 's3cret\n', 0o602), '--x-file'), { message: /accessible to every user/ });
  t.throws(() => readSecretFile(file('empty', '\n', 0o600), '--x-file'), { message: /is empty/ });
  t.throws(() => readSecretFile(file('two', 'a\nb\n', 0o600), '--x-file'), { message: /one line/ });
  t.throws(() => readSecretFile(join(dir, 'missing'), '--x-file'), { message: /cannot read --x-file .*ENOENT/ });
  const e = t.throws(() => readSecretFile(file('world2', 'hunter2-secret\n', 0o644), '--x-file'));
  t.false(e!.message.includes('hunter2-secret'));
  t.is(secretFrom('inline', undefined, 'token'), 'inline');
  t.is(secretFrom(undefined, file('ok2', 'from-file\n', 0o600), 'token'), 'from-file');
  t.is(secretFrom(undefined, undefined, 'token'), undefined);
  t.throws(() => secretFrom('a', file('ok3', 'b', 0o600), 'token'), { message: /either --token or --token-file/ });
});

test('agent --token-file is accepted; with --token as well it is refused', async (t) => {
  const base = ['agent', '--coordinator', 'http://10.0.0.1:7000', '--relay', '10.0.0.1:7000', '--insecure-coordinator'];
  const f = file('join', 'isj_x\n', 0o600);
  t.is(await failure(agentCommand, [...base, '--token-file', f]), undefined, 'positive control');
  t.regex((await failure(agentCommand, [...base, '--token-file', f, '--token', 'isj_y'])) ?? '', /either --token or --token-file/);
});

test('mapper flags: Redis shape checked, proxy password from a file, beyond loopback only with credentials', async (t) => {
  const pass = file('socks', 'pw\n', 0o600);
  const r = ['mapper', '--redis', 'redis://h:1'];
  t.is(await failure(mapperCommand, [...r, '--socks', '0.0.0.0:1080', '--socks-user', 'u', '--socks-pass-file', pass]), undefined, 'positive control');
  t.is(await failure(mapperCommand, [...r, '--api', '127.0.0.1:7070', '--socks', '1080']), undefined, 'loopback without credentials');
  t.regex((await failure(mapperCommand, [...r, '--socks', '0.0.0.0:1080'])) ?? '', /--socks 0\.0\.0\.0: the mapper listens beyond loopback only with credentials/);
  t.regex((await failure(mapperCommand, [...r, '--api', '10.0.0.1:7070'])) ?? '', /--api 10\.0\.0\.1: the mapper listens beyond loopback only/);
  t.regex((await failure(mapperCommand, [...r, '--api', '1', '--socks-user', 'u', '--socks-pass', 'a', '--socks-pass-file', pass])) ?? '', /either --socks-pass or --socks-pass-file/);
  t.regex((await failure(mapperCommand, ['mapper', '--api', '1'])) ?? '', /Missing --redis/);
  t.regex((await failure(mapperCommand, ['mapper', '--redis-sentinel', 's:1', '--api', '1'])) ?? '', /--redis-sentinel-name/);
  t.is(await failure(mapperCommand, ['mapper', '--redis-sentinel', 's:1', '--redis-sentinel', 's2:2', '--redis-sentinel-name', 'm', '--api', '1']), undefined);
  t.regex((await failure(mapperCommand, [...r, '--redis-sentinel', 's:1', '--redis-sentinel-name', 'm', '--api', '1'])) ?? '', /either --redis URL or --redis-sentinel/);
});
