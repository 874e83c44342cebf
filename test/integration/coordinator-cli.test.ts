/**
 * The CLI modules (coordinator, token, node) run as real processes through a tiny entry that
 * wires them like cli/main.ts does (the settings middleware: ISTHMUS_* and --config; strict, fail → exit 2).
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { startEnv, member, ADMIN, type Env } from './coordinator-helpers';
import { spawnOwned } from '../harness/procs';

const root = join(__dirname, '..', '..');
let env: Env;
let dir: string;
let entry: string;

test.before(async () => {
  env = await startEnv(1);
  dir = mkdtempSync(join(tmpdir(), 'isthmus-coord-cli-'));
  entry = join(dir, 'entry.ts');
  writeFileSync(entry, `
import yargs from ${JSON.stringify(require.resolve('yargs'))};
import { coordinatorCommand } from ${JSON.stringify(join(root, 'cli/commands/coordinator'))};
import { tokenCommand } from ${JSON.stringify(join(root, 'cli/commands/token'))};
import { nodeCommand } from ${JSON.stringify(join(root, 'cli/commands/node'))};
import { CliError, installSignalHandlers, shutdown } from ${JSON.stringify(join(root, 'cli/shutdown'))};
import { settingsMiddleware } from ${JSON.stringify(join(root, 'cli/settings'))};
installSignalHandlers();
async function main() {
  await yargs(process.argv.slice(2)).scriptName('isthmus').middleware(settingsMiddleware(process.argv.slice(2)), true).command(coordinatorCommand).command(tokenCommand)
    .command(nodeCommand).demandCommand(1).strict().help()
    .fail((msg, err) => { if (err) throw err; process.stderr.write('isthmus: ' + msg + '\\n'); process.exit(2); })
    .parseAsync();
}
main().catch((err) => { process.stderr.write('isthmus: ' + err.message + '\\n'); void shutdown(err instanceof CliError ? err.exitCode : 1); });
`);
});
test.after.always(async () => {
  await env?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Async on purpose: the coordinator under test lives in this process and must keep serving. */
function run(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawnOwned(process.execPath, ['--import', 'tsx', entry, ...args], {
      cwd: root, env: cleanEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => { out += String(d); });
    child.stderr!.on('data', (d) => { err += String(d); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

/** The parent's environment without ISTHMUS_* (an unknown one is an "Unknown argument" under strict). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ISTHMUS_')) e[k] = v;
  return { ...e, ...extra };
}

// In-process coordinators on plain HTTP: the flag says so (coordinator-tls.test.ts covers HTTPS).
const admin = () => ['--coordinator', env.urls[0], '--insecure-coordinator', '--admin-token', ADMIN];

test.serial('token create/list/revoke and node list/remove', async (t) => {
  const c = await run(['token', 'create', ...admin(), '--uses', '2', '--tag', 'a', '--tag', 'b', '--ttl', '1h', '--original-cidr', '10.20.0.0/16']);
  t.is(c.code, 0, c.err);
  const token = c.out.trim();
  t.regex(token, /^isj_[A-Za-z0-9_-]{43}$/);
  t.false(c.err.includes(token), 'the token is printed once, on stdout only');
  const l = await run(['token', 'list', ...admin(), '--json']);
  t.is(l.code, 0, l.err);
  const tokens = JSON.parse(l.out) as Array<{ id: string; tags: string[]; usesLeft: number }>;
  t.is(tokens.length, 1);
  t.deepEqual(tokens[0].tags, ['a', 'b']);
  t.false(l.out.includes(token));

  const j = await env.client().join({ ...member('10.20.0.1'), token });
  const nl = await run(['node', 'list', ...admin()]);
  t.is(nl.code, 0, nl.err);
  t.true(nl.out.includes(j.vip) && nl.out.includes('10.20.0.1'), nl.out);
  t.is((await run(['node', 'remove', j.vip, ...admin()])).code, 0);
  t.is((await run(['node', 'remove', j.vip, ...admin()])).code, 1, 'second remove: not found');

  const rv = await run(['token', 'revoke', tokens[0].id], { ISTHMUS_COORDINATOR: env.urls[0], ISTHMUS_INSECURE_COORDINATOR: 'true', ISTHMUS_ADMIN_TOKEN: ADMIN });
  t.is(rv.code, 0, rv.err);
  t.deepEqual(JSON.parse((await run(['token', 'list', ...admin(), '--json'])).out), []);
});

test.serial('node tag / remove (key refused) / removed-keys / allow-key; refusals print the reason', async (t) => {
  const c = await run(['token', 'create', ...admin(), '--uses', '-1', '--tag', 'agent', '--original-cidr', '10.21.0.0/16', '--json']);
  t.is(c.code, 0, c.err);
  const tok = JSON.parse(c.out) as { token: string; originalCidrs: string[] };
  t.deepEqual(tok.originalCidrs, ['10.21.0.0/16']);
  const m = member('10.21.0.1', 'cli-tagged');
  const j = await env.client().join({ ...m, token: tok.token });

  const tg = await run(['node', 'tag', 'cli-tagged', ...admin(), '--tag', 'web', '--remove-tag', 'agent']);
  t.is(tg.code, 0, tg.err);
  t.regex(tg.out, new RegExp(`${j.vip.replace(/\./g, '\\.')} tags: web`));
  const none = await run(['node', 'tag', j.vip, ...admin()]);
  t.not(none.code, 0);
  t.regex(none.err, /--tag T and\/or --remove-tag T/);

  t.is((await run(['node', 'remove', j.vip, ...admin()])).code, 0);
  const refused = await env.client().join({ ...m, token: tok.token }).catch((e: Error) => e);
  t.regex(String(refused), /key-removed/);
  const rk = await run(['node', 'removed-keys', ...admin(), '--json']);
  t.is(rk.code, 0, rk.err);
  t.true((JSON.parse(rk.out) as { publicKey: string }[]).some((k) => k.publicKey === m.pub));
  const allow = await run(['node', 'allow-key', m.pub, ...admin()]);
  t.is(allow.code, 0, allow.err);
  const again = await run(['node', 'allow-key', m.pub, ...admin()]);
  t.is(again.code, 1);
  t.regex(again.err, /404 not-found removed key .* not found/, 'the CLI prints the reason');
  t.truthy((await env.client().join({ ...m, token: tok.token })).vip);

  const bad = await run(['token', 'create', ...admin(), '--original-cidr', '10.21.0.1/16']);
  t.not(bad.code, 0);
  t.regex(bad.err, /--original-cidr.*host bits/);
});

test.serial('bad flags name the flag (non-zero exit); wrong admin token is a clear error without secrets', async (t) => {
  const u = await run(['token', 'create', ...admin(), '--uses', 'abc']);
  t.not(u.code, 0);
  t.regex(u.err, /--uses/);
  const ttl = await run(['token', 'create', ...admin(), '--ttl', 'soon']);
  t.not(ttl.code, 0);
  t.regex(ttl.err, /--ttl/);
  const unknown = await run(['token', 'list', ...admin(), '--bogus', '1']);
  t.not(unknown.code, 0);
  t.regex(unknown.err, /bogus/);
  const wrong = await run(['token', 'list', '--coordinator', env.urls[0], '--insecure-coordinator', '--admin-token', 'wrong-admin-token-xyz']);
  t.is(wrong.code, 1);
  t.regex(wrong.err, /401/);
  t.false(wrong.err.includes('wrong-admin-token-xyz'));
  const cidr = await run(['coordinator', '--redis', env.redis.url, '--cidr', '10.0.0.0/33']);
  t.not(cidr.code, 0);
  t.regex(cidr.err, /--cidr/);
  const redis = await run(['coordinator', '--redis', 'http://nope']);
  t.not(redis.code, 0);
  t.regex(redis.err, /--redis/);
  const q = await run(['coordinator', '--redis', env.redis.url, '--quarantine', 'forever']);
  t.not(q.code, 0);
  t.regex(q.err, /--quarantine/);
  for (const [flag, value, why] of [['--reassert-grace', 'a-while', 'must be a duration'], ['--record-ttl', '90d', 'at most 30d'], ['--record-ttl', '0s', 'more than 0']]) {
    const r = await run(['coordinator', '--redis', env.redis.url, flag, value]);
    t.not(r.code, 0);
    t.regex(r.err, new RegExp(`${flag} ${why}|${flag} must be .*${why}`));
  }
  for (const [flag, value] of [['--rate-limit-join', '-1'], ['--rate-limit-challenge', 'lots'], ['--admin-auth-failures', '2.5']]) {
    const rl = await run(['coordinator', '--redis', env.redis.url, flag, value]);
    t.not(rl.code, 0);
    t.regex(rl.err, new RegExp(`${flag} must be a whole number`));
  }
});

test.serial('coordinator command: flags from env and --config, serves, stops on SIGTERM', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
  const cfg = join(dir, 'coord.json');
  writeFileSync(cfg, JSON.stringify({ listen: `127.0.0.1:${port}`, prefix: 'clitest:' }));
  const child = spawnOwned(process.execPath, ['--import', 'tsx', entry, 'coordinator', '--config', cfg], {
    cwd: root, env: cleanEnv({ ISTHMUS_REDIS: env.redis.url, ISTHMUS_ADMIN_TOKEN: ADMIN }), stdio: ['ignore', 'ignore', 'pipe'],
  });
  let logs = '';
  child.stderr!.on('data', (d) => { logs += String(d); });
  try {
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      const ok = await fetch(url + '/v1/health').then((r) => r.ok, () => false);
      if (ok) break;
      if (i > 100 || child.exitCode !== null) throw new Error('coordinator did not come up: ' + logs);
      await new Promise((r) => setTimeout(r, 100));
    }
    const tok = await run(['token', 'create', '--coordinator', url, '--insecure-coordinator', '--admin-token', ADMIN]);
    t.is(tok.code, 0, tok.err);
    t.truthy(await env.r.get('clitest:ipam:cidr'), 'the --config prefix is used');
    t.false(logs.includes(ADMIN), 'the admin token is never logged');
    t.false(logs.includes(tok.out.trim()), 'join tokens are never logged');
  } finally {
    if (child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
  }
  t.regex(logs, /coordinator listening/);
});
