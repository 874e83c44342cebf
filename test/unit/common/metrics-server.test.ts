import test from 'ava';
import net from 'node:net';
import { Registry } from 'prom-client';
import { counterFrom, labelledFrom, serveMetrics, serveReadinessPort, redisReadiness, runReadinessChecks } from '../../../common';

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

test('the listener serves /metrics, /healthz and /readyz, and 404 elsewhere', async (t) => {
  const registry = new Registry();
  let n = 0;
  counterFrom(registry, 'isthmus_test_things_total', 'Things', () => n);
  let redisOk = true;
  const s = await serveMetrics({ host: '127.0.0.1', port: 0, registry, checks: { socket: () => true, redis: async () => redisOk } });
  t.teardown(() => s.close());
  const base = `http://127.0.0.1:${s.address.port}`;
  n = 7;
  const m = await fetch(`${base}/metrics`);
  t.is(m.status, 200);
  t.regex(await m.text(), /^isthmus_test_things_total 7$/m, 'read at scrape time');
  t.deepEqual(await (await fetch(`${base}/healthz`)).json(), { ok: true });
  const r = await fetch(`${base}/readyz`);
  t.is(r.status, 200);
  t.deepEqual(await r.json(), { ready: true, checks: { socket: true, redis: true } });
  redisOk = false;
  const nr = await fetch(`${base}/readyz`);
  t.is(nr.status, 503);
  t.deepEqual(await nr.json(), { ready: false, checks: { socket: true, redis: false } });
  t.is((await fetch(`${base}/nope`)).status, 404);
  t.is((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
});

test('a check that throws or hangs counts as not ready', async (t) => {
  const r = await runReadinessChecks({
    fine: () => true,
    throws: () => { throw new Error('x'); },
    rejects: () => Promise.reject(new Error('y')),
    hangs: () => new Promise<boolean>(() => {}),
  }, 50);
  t.deepEqual(r, { ready: false, checks: { fine: true, throws: false, rejects: false, hangs: false } });
  t.deepEqual(await runReadinessChecks({}), { ready: true, checks: {} });
});

test('redisReadiness: not ready unless connected and answering PONG (no PING queued while down)', async (t) => {
  let pings = 0;
  const client = { status: 'reconnecting', ping: async () => { pings++; return 'PONG'; } };
  const check = redisReadiness(client);
  t.false(await check());
  t.is(pings, 0);
  client.status = 'ready';
  t.true(await check());
});

test('labelled series follow what read() yields: gone when the daemon drops them', async (t) => {
  const registry = new Registry();
  let peers: Array<[string, number]> = [['100.64.0.2', 10], ['100.64.0.3', 20]];
  labelledFrom(registry, 'counter', 'isthmus_test_peer_bytes_total', 'Bytes', ['peer'], () => peers.map(([p, v]) => [{ peer: p }, v] as const));
  t.regex(await registry.metrics(), /isthmus_test_peer_bytes_total\{peer="100\.64\.0\.3"\} 20/);
  peers = [['100.64.0.2', 11]];
  const text = await registry.metrics();
  t.regex(text, /isthmus_test_peer_bytes_total\{peer="100\.64\.0\.2"\} 11/);
  t.notRegex(text, /100\.64\.0\.3/);
});

test('the TCP readiness port listens only while ready, on the same port each time', async (t) => {
  let ready = true;
  const changes: boolean[] = [];
  const p = await serveReadinessPort({ host: '127.0.0.1', port: 0, ready: async () => ready, intervalMs: 60_000, onChange: (l) => changes.push(l) });
  t.teardown(() => p.close());
  const port = p.address.port;
  t.true(port > 0);
  t.true(p.listening);
  t.true(await connects(port));
  ready = false;
  await p.update();
  t.false(p.listening);
  t.false(await connects(port), 'refused while not ready');
  ready = true;
  await p.update();
  t.is(p.address.port, port);
  t.true(await connects(port));
  t.deepEqual(changes, [true, false, true]);
});
