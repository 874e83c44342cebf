import test from 'ava';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readControlSocket, requestControlSocket, serveControlSocket, REQUEST_WAIT_MS } from '../../../node-agent/control-socket';

async function serve(t: import('ava').ExecutionContext): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-ctl-'));
  const path = join(dir, 'agent.sock');
  const server = await serveControlSocket(path, () => ({ vip: '100.64.0.1' }), {
    async ping(req, write) {
      for (let i = 1; i <= Number(req.count); i++) write({ type: 'probe', seq: i });
      write({ type: 'done', ok: true });
    },
  });
  t.teardown(() => new Promise<void>((r) => server.close(() => { rmSync(dir, { recursive: true, force: true }); r(); })));
  return path;
}

/** Connect, send `text` (maybe nothing), collect everything until the agent closes. */
function raw(path: string, text?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const c = net.connect(path, () => { if (text !== undefined) c.write(text); });
    c.setEncoding('utf8');
    c.on('data', (d: string) => { out += d; });
    c.on('end', () => resolve(out));
    c.on('error', reject);
  });
}

test('status: by request, and (older clients) when nothing is sent', async (t) => {
  const path = await serve(t);
  t.deepEqual(await readControlSocket(path), { vip: '100.64.0.1' });
  const start = Date.now();
  t.deepEqual(JSON.parse(await raw(path)), { vip: '100.64.0.1' });
  t.true(Date.now() - start >= REQUEST_WAIT_MS - 20, 'silent client: answered after the wait');
});

test('ping streams one line per probe, then done', async (t) => {
  const path = await serve(t);
  const lines: unknown[] = [];
  await requestControlSocket(path, { op: 'ping', target: 'x', count: 3 }, (o) => lines.push(o), 3000);
  t.deepEqual(lines, [{ type: 'probe', seq: 1 }, { type: 'probe', seq: 2 }, { type: 'probe', seq: 3 }, { type: 'done', ok: true }]);
});

test('bad requests get an error line, not a status document', async (t) => {
  const path = await serve(t);
  t.deepEqual(JSON.parse(await raw(path, '{"op":"status"}\n')), { vip: '100.64.0.1' }, 'positive control');
  t.regex(JSON.parse(await raw(path, 'not json\n')).message, /not a JSON object/);
  t.regex(JSON.parse(await raw(path, '[1]\n')).message, /not a JSON object/);
  t.regex(JSON.parse(await raw(path, '{"op":"reboot"}\n')).message, /unknown request op "reboot" \(this agent answers: status, ping\)/);
});
