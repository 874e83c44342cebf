/**
 * `isthmus policy set|get|clear|check` as real processes (`node dist/cli/main.js`; build first:
 * `npx tsc -p tsconfig.json`) against an in-process coordinator on a private redis-server.
 */
import test from 'ava';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEnv, member, ADMIN, LAN, type Env } from './coordinator-helpers';
import type { JoinResponse } from '../../coordinator/types';
import { spawnOwned } from '../harness/procs';

const root = join(__dirname, '..', '..');
const main = join(root, 'dist', 'cli', 'main.js');
let env: Env;
let dir: string;
let ctl: JoinResponse;
let agt: JoinResponse;

test.before(async () => {
  env = await startEnv(1);
  dir = mkdtempSync(join(tmpdir(), 'isthmus-policy-cli-'));
  const c = await env.admin.createToken({ originalCidrs: LAN, tags: ['controller'] });
  const a = await env.admin.createToken({ originalCidrs: LAN, tags: ['agent'] });
  ctl = await env.client().join({ ...member('10.60.0.1', 'ctl-1'), token: c.token });
  agt = await env.client().join({ ...member('10.60.0.2', 'agent-1'), token: a.token });
});
test.after.always(async () => {
  await env?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], stdin?: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const e: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ISTHMUS_')) e[k] = v;
    const child = spawnOwned(process.execPath, [main, ...args], { cwd: root, env: e, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => { out += String(d); });
    child.stderr!.on('data', (d) => { err += String(d); });
    child.stdin!.end(stdin ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

// In-process coordinators on plain HTTP: the flag says so (coordinator-tls.test.ts covers HTTPS).
const admin = () => ['--coordinator', env.urls[0], '--insecure-coordinator', '--admin-token', ADMIN];

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

test.serial('the CLI is built', (t) => {
  t.true(existsSync(main), `${main} missing: run npx tsc -p tsconfig.json`);
});

test.serial('policy get (none) → set → get → check (allowed names the rule; reverse denied) → clear', async (t) => {
  const none = await run(['policy', 'get', ...admin()]);
  t.is(none.code, 0, none.err);
  t.is(none.out, '');
  t.regex(none.err, /no policy: every member reaches every member/);

  const f = file('mission.json', '{\n  "rules": [\n    { "from": ["tag:controller"], "to": ["tag:agent", "tag:typo-tag"], "ports": ["tcp/22", "tcp/8000-9000", "icmp"] }\n  ]\n}\n');
  const set = await run(['policy', 'set', f, ...admin()]);
  t.is(set.code, 0, set.err);
  t.regex(set.err, /policy set: 1 rule/);
  t.regex(set.err, /warning: tag:typo-tag/);

  const get = await run(['policy', 'get', ...admin()]);
  t.is(get.code, 0, get.err);
  t.deepEqual(JSON.parse(get.out), { rules: [{ from: ['tag:controller'], to: ['tag:agent', 'tag:typo-tag'], ports: ['tcp/22', 'tcp/8000-9000', 'icmp'] }] });
  t.regex(get.err, /1 rule/);

  // By hostname, original IP and vip.
  const ok = await run(['policy', 'check', ...admin(), '--from', 'ctl-1', '--to', '10.60.0.2', '--port', 'tcp/8080']);
  t.is(ok.code, 0, ok.err);
  t.regex(ok.out, /allowed by rule 0: .*tag:controller/);
  const rev = await run(['policy', 'check', ...admin(), '--from', agt.vip, '--to', ctl.vip, '--port', 'tcp/22']);
  t.is(rev.code, 1);
  t.regex(rev.out, /denied: no rule lets tag:agent open it/);
  const json = await run(['policy', 'check', ...admin(), '--from', ctl.vip, '--to', agt.vip, '--port', 'icmp', '--json']);
  t.is(json.code, 0, json.err);
  t.like(JSON.parse(json.out), { allowed: true, rule: 0, fromTags: ['controller'], toTags: ['agent'] });

  // From stdin, the same policy: unchanged.
  const again = await run(['policy', 'set', '-', ...admin()], '{"rules": [{"from": ["tag:controller"], "to": ["tag:agent", "tag:typo-tag"], "ports": ["tcp/22", "tcp/8000-9000", "icmp"]}]}');
  t.is(again.code, 0, again.err);
  t.regex(again.err, /unchanged/);

  const clear = await run(['policy', 'clear', ...admin()]);
  t.is(clear.code, 0, clear.err);
  t.regex(clear.err, /policy cleared: no policy: every member reaches every member/);
  const after = await run(['policy', 'check', ...admin(), '--from', agt.vip, '--to', ctl.vip, '--port', 'tcp/22']);
  t.is(after.code, 0, 'with no policy the reverse flow is allowed');
  t.regex(after.out, /allowed \(no policy/);
});

test.serial('a malformed file is refused whole with file:line:column, path and reason; the policy in force stays', async (t) => {
  const good = file('good.json', '{"rules": [{"from": ["*"], "to": ["tag:agent"], "ports": ["tcp/22"]}]}');
  t.is((await run(['policy', 'set', good, ...admin()])).code, 0);
  const bad = file('bad.json', '{\n  "rules": [\n    { "from": ["tag:controller"], "to": ["tag:agent"],\n      "ports": ["tcp/22", "tcp/9000-8000"] }\n  ]\n}\n');
  const r = await run(['policy', 'set', bad, ...admin()]);
  t.is(r.code, 1);
  t.regex(r.err, new RegExp(`policy refused, nothing changed: ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:4:\\d+: rules\\[0\\]\\.ports\\[1\\]: .*backwards`));
  const typo = file('typo.json', '{"rules": [{"form": ["*"], "to": ["*"], "ports": ["*"]}]}');
  const r2 = await run(['policy', 'set', typo, ...admin()]);
  t.is(r2.code, 1);
  t.regex(r2.err, /rules\[0\]\.form: unknown field "form"/);
  const get = await run(['policy', 'get', ...admin()]);
  t.deepEqual(JSON.parse(get.out).rules[0].from, ['*'], 'the policy set before is still in force');
  await run(['policy', 'clear', ...admin()]);
});

test.serial('bad flags name the flag; unknown members name the side; unreadable file is clear', async (t) => {
  const port = await run(['policy', 'check', ...admin(), '--from', 'a', '--to', 'b', '--port', 'tcp/99999']);
  t.is(port.code, 2);
  t.regex(port.err, /--port/);
  const port2 = await run(['policy', 'check', ...admin(), '--from', 'a', '--to', 'b', '--port', 'http']);
  t.is(port2.code, 2);
  t.regex(port2.err, /--port/);
  const missing = await run(['policy', 'check', ...admin(), '--from', ctl.vip, '--port', 'tcp/22']);
  t.is(missing.code, 2);
  t.regex(missing.err, /to/);
  const unknownTo = await run(['policy', 'check', ...admin(), '--from', ctl.vip, '--to', 'nobody-here', '--port', 'tcp/22']);
  t.is(unknownTo.code, 1);
  t.regex(unknownTo.err, /--to "nobody-here": no member/);
  const unknownFrom = await run(['policy', 'check', ...admin(), '--from', '10.99.0.1', '--to', ctl.vip, '--port', 'tcp/22']);
  t.is(unknownFrom.code, 1);
  t.regex(unknownFrom.err, /--from "10\.99\.0\.1": no member/);
  const nofile = await run(['policy', 'set', join(dir, 'nope.json'), ...admin()]);
  t.is(nofile.code, 1);
  t.regex(nofile.err, /cannot read policy file .*ENOENT/);
  const noCoord = await run(['policy', 'get', '--admin-token', ADMIN]);
  t.is(noCoord.code, 2);
  t.regex(noCoord.err, /--coordinator/);
  const wrong = await run(['policy', 'get', '--coordinator', env.urls[0], '--insecure-coordinator', '--admin-token', 'wrong-admin-token-xyz']);
  t.is(wrong.code, 1);
  t.regex(wrong.err, /401/);
  t.false(wrong.err.includes('wrong-admin-token-xyz'));
});
