/**
 * The coordinator's dashboard (/ui, issue 14 item 5) against a real redis-server and a real
 * coordinator over real sockets. Hostile and honest: every refusal sits next to the same
 * request that works — no login → 303/401 next to a login that works; a wrong token, a
 * tampered or foreign cookie refused next to the real one; guessing locks the source out;
 * token secrets and the admin token appear in no answer (page, snapshot, stream, headers)
 * while the token ids do; the stream delivers a member's join as it happens.
 */
import test from 'ava';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeTestCertificates } from '../harness/redis';
import { startEnv, member, ADMIN, LAN, type Env } from './coordinator-helpers';
import { createCoordinator } from '../../coordinator/server';
import { RedisRelayStatsPublisher, type RelayStatsSnapshot } from '../../relay';
import { silentLogger } from '../../common';
import type { DashboardSnapshot } from '../../coordinator/dashboard';

interface Res { status: number; headers: Headers; text: string }

async function req(url: string, path: string, o: { method?: string; cookie?: string; bearer?: string; form?: Record<string, string>; json?: unknown } = {}): Promise<Res> {
  const headers: Record<string, string> = {};
  if (o.cookie) headers.cookie = o.cookie;
  if (o.bearer) headers.authorization = `Bearer ${o.bearer}`;
  let body: string | undefined;
  if (o.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(o.form).toString();
  } else if (o.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(o.json);
  }
  const r = await fetch(url + path, { method: o.method ?? (body !== undefined ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

/** Log in with `token`; the `name=value` cookie pair on success. */
async function login(url: string, token: string): Promise<{ res: Res; cookie?: string }> {
  const res = await req(url, '/ui/login', { form: { token } });
  const set = res.headers.get('set-cookie');
  return { res, cookie: set ? set.split(';')[0] : undefined };
}

/** A live /ui/events stream: its events as they arrive. */
async function openStream(url: string, auth: { cookie?: string; bearer?: string }) {
  const ac = new AbortController();
  const headers: Record<string, string> = {};
  if (auth.cookie) headers.cookie = auth.cookie;
  if (auth.bearer) headers.authorization = `Bearer ${auth.bearer}`;
  const r = await fetch(url + '/ui/events', { headers, signal: ac.signal });
  const events: { event: string; data: string }[] = [];
  let raw = '';
  let wake: (() => void) | undefined;
  const pump = (async () => {
    if (!r.body) return;
    const dec = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
        const text = dec.decode(chunk, { stream: true });
        raw += text;
        buf += text;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data !== undefined) events.push({ event: ev, data });
          wake?.();
        }
      }
    } catch { /* aborted */ }
  })();
  return {
    status: r.status,
    headers: r.headers,
    events,
    get raw() { return raw; },
    /** Resolves when the stream ends (either side). */
    ended: pump,
    /** Waits for an event matching `pred` (seen before or later). */
    async until(pred: (e: { event: string; data: string }) => boolean, ms = 10_000): Promise<{ event: string; data: string }> {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = events.find(pred);
        if (hit) return hit;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching event within ${ms} ms; got: ${events.map((e) => e.event + ' ' + e.data.slice(0, 80)).join(' | ')}`);
        await new Promise<void>((ok) => { wake = ok; setTimeout(ok, Math.min(left, 200)); });
      }
    },
    async close() {
      ac.abort();
      await pump;
    },
  };
}

let env: Env;
test.before(async () => {
  env = await startEnv(1);
});
test.after.always(async () => {
  await env?.stop();
});

test('without a login /ui redirects to the login page and the data routes answer 401; the admin token opens them', async (t) => {
  const url = env.urls[0];
  const page = await req(url, '/ui');
  t.is(page.status, 303);
  t.is(page.headers.get('location'), '/ui/login');
  const loginPage = await req(url, '/ui/login');
  t.is(loginPage.status, 200);
  t.regex(loginPage.text, /<form method="post" action="\/ui\/login">/);
  t.regex(loginPage.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  for (const path of ['/ui/state', '/ui/events']) {
    const r = await req(url, path);
    t.is(r.status, 401, path);
    t.regex(JSON.parse(r.text).message as string, /log in at \/ui\/login/);
    const wrong = await req(url, path, { bearer: ADMIN + 'x' });
    t.is(wrong.status, 401, `${path} with a wrong bearer`);
  }
  // Positive control: the same routes with the admin token as a bearer.
  const ok = await req(url, '/ui/state', { bearer: ADMIN });
  t.is(ok.status, 200);
  t.true(Array.isArray((JSON.parse(ok.text) as DashboardSnapshot).members));
  const okPage = await req(url, '/ui', { bearer: ADMIN });
  t.is(okPage.status, 200);
});

test('login: a wrong token is refused without a cookie; the right one sets a strict HttpOnly cookie that opens the page and the snapshot', async (t) => {
  const url = env.urls[0];
  const bad = await login(url, 'not-the-admin-token');
  t.is(bad.res.status, 401);
  t.is(bad.cookie, undefined);
  t.regex(bad.res.text, /Wrong admin token/);
  const missing = await req(url, '/ui/login', { form: { secret: ADMIN } });
  t.is(missing.status, 400);
  t.regex(JSON.parse(missing.text).message as string, /token/);

  const good = await login(url, ADMIN);
  t.is(good.res.status, 303);
  t.is(good.res.headers.get('location'), '/ui');
  const set = good.res.headers.get('set-cookie') ?? '';
  t.regex(set, /HttpOnly/i);
  t.regex(set, /SameSite=Strict/i);
  t.regex(set, /Path=\/ui/);
  t.notRegex(set, /Secure/i, 'plain HTTP: not Secure (the TLS test below checks Secure)');
  t.false(set.includes(ADMIN), 'the cookie is not the admin token');

  const page = await req(url, '/ui', { cookie: good.cookie });
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /text\/html/);
  t.regex(page.text, /<script src="\/ui\/assets\/dashboard.js" defer><\/script>/);
  t.notRegex(page.text, /<script>/, 'no inline script');
  const csp = page.headers.get('content-security-policy') ?? '';
  t.regex(csp, /default-src 'none'/);
  t.notRegex(csp, /unsafe-inline|unsafe-eval/);
  t.is(page.headers.get('x-frame-options'), 'DENY');
  const js = await req(url, '/ui/assets/dashboard.js');
  t.is(js.status, 200);
  t.regex(js.headers.get('content-type') ?? '', /javascript/);
  t.false(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/.test(js.text), 'the page script never parses server data as HTML');
  t.is((await req(url, '/ui/assets/..%2Fdashboard.ts')).status, 404);

  const state = await req(url, '/ui/state', { cookie: good.cookie });
  t.is(state.status, 200);

  // A tampered cookie (one character of the signature changed) and one signed with another
  // admin token are refused, next to the real one that works.
  const [name, value] = good.cookie!.split('=');
  const dec = decodeURIComponent(value);
  const flipped = dec.slice(0, -2) + (dec.at(-2) === 'A' ? 'B' : 'A') + dec.at(-1);
  t.is((await req(url, '/ui/state', { cookie: `${name}=${encodeURIComponent(flipped)}` })).status, 401);
  const body = dec.slice(0, dec.lastIndexOf('.'));
  const otherKey = createHmac('sha256', 'some-other-admin-token').update('isthmus dashboard session cookie v1').digest();
  const foreign = body + '.' + createHmac('sha256', otherKey).update(body).digest('base64').replace(/=+$/, '');
  t.is((await req(url, '/ui/state', { cookie: `${name}=${encodeURIComponent(foreign)}` })).status, 401);
  // An expired login (expiry in the past, correctly signed with this coordinator's key) is refused too.
  const myKey = createHmac('sha256', ADMIN).update('isthmus dashboard session cookie v1').digest();
  const stale = `${Date.now() - 1000}.abc`;
  const staleCookie = stale + '.' + createHmac('sha256', myKey).update(stale).digest('base64').replace(/=+$/, '');
  t.is((await req(url, '/ui/state', { cookie: `${name}=${encodeURIComponent(staleCookie)}` })).status, 401);
  const fresh = `${Date.now() + 60_000}.abc`;
  const freshCookie = fresh + '.' + createHmac('sha256', myKey).update(fresh).digest('base64').replace(/=+$/, '');
  t.is((await req(url, '/ui/state', { cookie: `${name}=${encodeURIComponent(freshCookie)}` })).status, 200, 'the same forgery with the right key and a future expiry works: the checks above are the key and the expiry');

  const out = await req(url, '/ui/logout', { method: 'POST', cookie: good.cookie });
  t.is(out.status, 303);
  t.regex(out.headers.get('set-cookie') ?? '', /isthmus_ui=;/);
});

test('token secrets and the admin token appear in no answer; token ids, uses and expiry do', async (t) => {
  const url = env.urls[0];
  const a = await env.admin.createToken({ uses: 3, ttl: '2h', tags: ['web'], originalCidrs: LAN });
  const b = await env.admin.createToken({ uses: -1, tags: ['db'] });
  const { cookie } = await login(url, ADMIN);
  const stream = await openStream(url, { cookie });
  try {
    t.is(stream.status, 200);
    t.regex(stream.headers.get('content-type') ?? '', /text\/event-stream/);
    const first = await stream.until((e) => e.event === 'snapshot');
    const snap = JSON.parse(first.data) as DashboardSnapshot;
    const ta = snap.tokens.find((x) => x.id === a.id);
    const tb = snap.tokens.find((x) => x.id === b.id);
    t.truthy(ta);
    t.truthy(tb);
    t.is(ta!.usesLeft, 3);
    t.true(ta!.expiresAt > Date.now() + 3600_000);
    t.deepEqual(ta!.tags, ['web']);
    t.is(tb!.usesLeft, -1);
    t.is(tb!.expiresAt, 0);
    const answers = [
      await req(url, '/ui', { cookie }), await req(url, '/ui/state', { cookie }), await req(url, '/ui/state', { bearer: ADMIN }),
      await req(url, '/ui/login'), await req(url, '/ui/assets/dashboard.js'), (await login(url, ADMIN)).res,
    ];
    const everything = answers.map((r) => r.text + JSON.stringify([...r.headers])).join('\n') + stream.raw;
    t.true(everything.includes(a.id), 'positive control: the token ids are in the answers searched');
    for (const secret of [a.token, b.token, ADMIN]) t.false(everything.includes(secret), 'a secret leaked');
  } finally {
    await stream.close();
  }
});

test('the stream delivers a member that joins, as a change and in the next snapshot', async (t) => {
  const url = env.urls[0];
  const { cookie } = await login(url, ADMIN);
  const stream = await openStream(url, { cookie });
  try {
    const first = JSON.parse((await stream.until((e) => e.event === 'snapshot')).data) as DashboardSnapshot;
    const tok = await env.admin.createToken({ uses: 1, tags: ['app'], originalCidrs: LAN });
    const m = member('10.77.0.5', 'dash-joiner');
    t.false(first.members.some((x) => x.hostname === 'dash-joiner'), 'not there before the join');
    const j = await env.client().join({ ...m, token: tok.token });
    const change = await stream.until((e) => e.event === 'change' && (JSON.parse(e.data) as { vip?: string }).vip === j.vip);
    t.is((JSON.parse(change.data) as { type: string }).type, 'node-up');
    const after = await stream.until((e) => e.event === 'snapshot' && (JSON.parse(e.data) as DashboardSnapshot).members.some((x) => x.vip === j.vip));
    const row = (JSON.parse(after.data) as DashboardSnapshot).members.find((x) => x.vip === j.vip)!;
    t.is(row.hostname, 'dash-joiner');
    t.is(row.originalIp, '10.77.0.5');
    t.deepEqual(row.tags, ['app']);
    t.false(row.online, 'no relay session yet');
  } finally {
    await stream.close();
  }
});

test('relays: what a relay publishes (P:relay-stats) is in the snapshot with its rates', async (t) => {
  const url = env.urls[0];
  let frames = 1000;
  let clock = Date.now();
  const pub = new RedisRelayStatsPublisher(env.r, {
    relayId: 'relay-a', logger: silentLogger(), intervalMs: 60_000, now: () => clock,
    stats: () => ({ framesForwarded: frames, bytesForwarded: frames * 100, sessions: 7, dropped: 3 } as RelayStatsSnapshot),
  });
  await env.r.ping(); // connected: publish() skips (by design) while Redis is not ready
  await pub.publish();
  frames += 500;
  clock += 5000;
  await pub.publish();
  try {
    const snap = JSON.parse((await req(url, '/ui/state', { bearer: ADMIN })).text) as DashboardSnapshot;
    const r = snap.relays.find((x) => x.id === 'relay-a');
    t.truthy(r);
    t.is(r!.sessions, 7);
    t.is(r!.framesForwarded, 1500);
    t.is(r!.framesPerSec, 100);
    t.is(r!.bytesPerSec, 10_000);
    t.is(r!.dropped, 3);
    t.is(r!.dropsPerSec, 0);
  } finally {
    await pub.stop();
  }
  const gone = JSON.parse((await req(url, '/ui/state', { bearer: ADMIN })).text) as DashboardSnapshot;
  t.false(gone.relays.some((x) => x.id === 'relay-a'), 'a stopped relay is gone');
});

test('a login works at every coordinator sharing the token; guessing it at the login locks the source out, right token or wrong', async (t) => {
  const c = await createCoordinator({ redis: env.redis.url, adminToken: ADMIN, sweepIntervalMs: 0, rateLimits: { adminFailures: 3 } });
  try {
    const { url } = await c.listen('127.0.0.1', 0);
    // Another coordinator with the same admin token accepts a login made at the first (the load
    // balancer may send the browser to either).
    const elsewhere = await login(env.urls[0], ADMIN);
    t.is((await req(url, '/ui/state', { cookie: elsewhere.cookie })).status, 200);
    t.is((await login(url, ADMIN)).res.status, 303, 'positive control: the right token logs in');
    for (let i = 0; i < 3; i++) t.is((await login(url, `guess-${i}`)).res.status, 401);
    const locked = await login(url, ADMIN);
    t.is(locked.res.status, 429);
    t.truthy(locked.res.headers.get('retry-after'));
    t.is(locked.cookie, undefined);
  } finally {
    await c.close();
  }
});

test('without --admin-token the dashboard is off (403); with TLS the cookie is Secure', async (t) => {
  const off = await createCoordinator({ redis: env.redis.url, sweepIntervalMs: 0 });
  try {
    const { url } = await off.listen('127.0.0.1', 0);
    const r = await req(url, '/ui');
    t.is(r.status, 403);
    t.is(JSON.parse(r.text).error, 'admin-disabled');
    t.is((await login(url, ADMIN)).res.status, 403);
  } finally {
    await off.close();
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'isthmus-dash-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const certs = makeTestCertificates(dir);
  const tls = await createCoordinator({ redis: env.redis.url, adminToken: ADMIN, sweepIntervalMs: 0,
    tls: { cert: readFileSync(certs.cert), key: readFileSync(certs.key) } });
  try {
    const { port } = await tls.listen('127.0.0.1', 0);
    const set = await new Promise<string>((resolve, reject) => {
      const body = new URLSearchParams({ token: ADMIN }).toString();
      const q = https.request({ host: '127.0.0.1', port, path: '/ui/login', method: 'POST', rejectUnauthorized: false,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        resolve(String(res.headers['set-cookie'] ?? ''));
      });
      q.on('error', reject);
      q.end(body);
    });
    t.regex(set, /Secure/);
    t.regex(set, /HttpOnly/i);
  } finally {
    await tls.close();
  }
});

test('a coordinator that closes ends its open streams (close does not hang on them)', async (t) => {
  const c = await createCoordinator({ redis: env.redis.url, adminToken: ADMIN, sweepIntervalMs: 0 });
  const { url } = await c.listen('127.0.0.1', 0);
  const stream = await openStream(url, { bearer: ADMIN });
  let closed = false;
  try {
    t.is(stream.status, 200);
    await stream.until((e) => e.event === 'snapshot');
    const closing = c.close();
    closed = await Promise.race([closing.then(() => true), new Promise<boolean>((ok) => setTimeout(() => ok(false), 5000))]);
    t.true(closed, 'close() finished while the stream was open');
    t.true(await Promise.race([stream.ended.then(() => true), new Promise<boolean>((ok) => setTimeout(() => ok(false), 5000))]),
      'the server ended the stream');
  } finally {
    await stream.close();
    if (!closed) await c.close().catch(() => undefined);
  }
});
