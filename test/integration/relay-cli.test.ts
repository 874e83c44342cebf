import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { CliError } from '../../cli/shutdown';
import { parseHostPort, relayCommand } from '../../cli/commands/relay';
import { DgramSocket } from '../../native-bindings';
import { fakeWg, identity, startMember, until } from './relay-harness';
import { spawnOwned } from '../harness/procs';

const root = resolve(__dirname, '../..');

test('parseHostPort names the flag on bad input', (t) => {
  t.deepEqual(parseHostPort('127.0.0.1:51820', '--listen'), { host: '127.0.0.1', port: 51820 });
  t.deepEqual(parseHostPort('0.0.0.0:0', '--listen'), { host: '0.0.0.0', port: 0 });
  for (const bad of ['51820', 'localhost:1', '1.2.3.4:', '1.2.3.4:70000', '1.2.3:5', ':5', '1.2.3.4:5x']) {
    t.throws(() => parseHostPort(bad, '--listen'), { message: /^--listen/ }, bad);
  }
});

async function parseFailure(argv: string[]): Promise<string> {
  try {
    await yargs(argv).command(relayCommand).fail((m, e) => { throw e ?? new Error(m); }).exitProcess(false).parseAsync();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('parsed without failure');
}

test('flag validation messages', async (t) => {
  t.regex(await parseFailure(['relay', '--members', 'm']), /--listen/);
  t.regex(await parseFailure(['relay', '--listen', 'nope', '--members', 'm']), /--listen must be HOST:PORT/);
  t.regex(await parseFailure(['relay', '--listen', '127.0.0.1:1']), /--members/);
  t.regex(await parseFailure(['relay', '--listen', '127.0.0.1:1', '--members', 'm', '--redis', 'redis://x']), /either --members or --redis/);
  t.regex(await parseFailure(['relay', '--listen', '127.0.0.1:1', '--redis', 'http://x']), /--redis must be/);
  t.regex(await parseFailure(['relay', '--listen', '127.0.0.1:1', '--members', 'm', '--advertise', 'vip']), /^--advertise/);
  t.regex(await parseFailure(['relay', '--listen', '127.0.0.1:1', '--members', 'm', '--keepalive', '0']), /--keepalive/);
});

test('a bad members file is a CliError naming the line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-relay-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'members');
  writeFileSync(f, '# x\nbogus line here\n');
  const run = relayCommand.handler as (a: object) => Promise<void>;
  const e = await t.throwsAsync(run({ listen: '127.0.0.1:0', members: f, keepalive: 10, 'stats-interval': 0 }), { instanceOf: CliError });
  t.regex(e!.message, /--members: .*members:2:/);
  await t.throwsAsync(run({ listen: '127.0.0.1:0', members: join(dir, 'missing'), keepalive: 10, 'stats-interval': 0 }), { message: /ENOENT/ });
});

test('`isthmus relay` serves a member and exits cleanly on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-relay-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = identity('100.64.0.7');
  const f = join(dir, 'members');
  writeFileSync(f, `${Buffer.from(a.kp.publicKey).toString('base64')} 100.64.0.7\n`);
  const probe = await DgramSocket.open({ host: '127.0.0.1' });
  const port = probe.localAddress.port;
  probe.close();
  const script = `require('./cli/shutdown').installSignalHandlers();
require('yargs')(process.argv.slice(1)).command(require('./cli/commands/relay').relayCommand).parseAsync()
  .catch((e) => { process.stderr.write('FAILED ' + e.message + '\\n'); process.exit(1); });`;
  const child = spawnOwned(process.execPath, ['--import', 'tsx', '-e', script, 'relay', '--listen', `127.0.0.1:${port}`, '--members', f, '--id', 'cli-relay', '--keepalive', '2s'],
    { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await until(() => stderr.includes('relay ready') || stderr.includes('FAILED'), 'relay ready', 20_000);
  t.notRegex(stderr, /FAILED/);
  const m = await startMember(a, port);
  t.teardown(() => m.close());
  await until(() => m.client.isReady, 'member authenticated via the CLI relay', 5000);
  t.is(m.client.relayId, 'cli-relay');
  child.kill('SIGTERM');
  t.is(await exited, 143);
  t.regex(stderr, /relay stopped/);
});

for (const fastPath of [undefined, 'false'] as const) {
  test(`\`isthmus relay\`${fastPath ? ' with ISTHMUS_FAST_PATH=false' : ''}: the fast path is ${fastPath ? 'off' : 'on'}, DATA is forwarded and counted either way`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'isthmus-relay-cli-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const a = identity('100.64.0.7');
    const b = identity('100.64.0.8');
    const f = join(dir, 'members');
    writeFileSync(f, [a, b].map((m, i) => `${Buffer.from(m.kp.publicKey).toString('base64')} 100.64.0.${7 + i}\n`).join(''));
    const probe = await DgramSocket.open({ host: '127.0.0.1' });
    const port = probe.localAddress.port;
    probe.close();
    const env: NodeJS.ProcessEnv = { ...process.env, ISTHMUS_LOG_LEVEL: 'info' };
    if (fastPath) env.ISTHMUS_FAST_PATH = fastPath;
    else delete env.ISTHMUS_FAST_PATH;
    const child = spawnOwned(process.execPath, [join(root, 'dist/cli/main.js'), 'relay', '--listen', `127.0.0.1:${port}`, '--members', f], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    await until(() => out.includes('relay ready'), 'relay ready', 20_000);
    const ready = JSON.parse(out.split('\n').find((l) => l.includes('relay ready'))!) as { socket: string; fastPath: boolean };
    t.is(ready.socket, 'native');
    t.is(ready.fastPath, !fastPath);
    const ma = await startMember(a, port);
    const mb = await startMember(b, port);
    t.teardown(() => { ma.close(); mb.close(); });
    await until(() => ma.client.isReady && mb.client.isReady, 'both members authenticated', 5000);
    for (let i = 0; i < 5; i++) ma.sendData(b.vip, fakeWg(100));
    await until(() => mb.received.length === 5, 'five frames a → b');
    t.true(mb.received.every((r) => r.srcVip === a.vip));
    child.kill('SIGTERM');
    t.is(await exited, 143);
    const stopped = JSON.parse(out.split('\n').find((l) => l.includes('relay stopped'))!) as { framesForwarded: number; bytesForwarded: number };
    t.is(stopped.framesForwarded, 5, 'counted whether C or JS forwarded them');
    t.is(stopped.bytesForwarded, 5 * 108);
  });
}
