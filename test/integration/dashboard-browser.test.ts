/**
 * The dashboard in a real headless browser (Debian's `chromium`, driven by puppeteer-core):
 * real redis-server, real coordinator, a real relay (`node dist/cli/main.js relay --redis`),
 * members joining through the real API with a real key proof and binding real relay sessions.
 * It logs in through the form, watches a member that joins appear without a reload, checks
 * that a hostile hostname renders as text (next to a plain one that renders as usual), and
 * keeps a screenshot: test-artifacts/dashboard.png.
 *
 * Without chromium this test fails (it is never skipped): CI installs it (.ci/run).
 */
import test from 'ava';
import { existsSync, mkdirSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import path from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import puppeteer from 'puppeteer-core';
import { startEnv, member, ADMIN, LAN, type Env } from './coordinator-helpers';
import { startMember, fakeWg, until, type Member } from './relay-harness';
import { ManagedProcess } from '../harness/procs';
import { parseAddr, redisKeys } from '../../common';

const ROOT = path.join(__dirname, '../..');
const ARTIFACT_DIR = path.join(ROOT, 'test-artifacts');
const SCREENSHOT = path.join(ARTIFACT_DIR, 'dashboard.png');
const K = redisKeys();
const HOSTILE = '<img src=x onerror="window.__xss=1">';

/** The system chromium: $CHROMIUM, else Debian's paths. */
function chromiumPath(): string | undefined {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);
  return candidates.find((p) => existsSync(p));
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((ok) => s.bind(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

let env: Env | undefined;
let browser: Browser | undefined;
let relay: ManagedProcess | undefined;
const members: Member[] = [];

test.after.always(async () => {
  for (const m of members) m.close();
  await browser?.close().catch(() => undefined);
  await relay?.stop();
  await env?.stop();
});

test('headless chromium: login, a member that joins appears live, a hostile hostname renders as text, screenshot kept', async (t) => {
  const exe = chromiumPath();
  if (!exe) {
    t.fail('chromium not found (looked at $CHROMIUM, /usr/bin/chromium, /usr/bin/chromium-browser): '
      + 'apt-get install -y --no-install-recommends chromium (CI installs it in .ci/run)');
    return;
  }
  env = await startEnv(1);
  const url = env.urls[0];
  const redisUrl = env.redis.url;

  // A real relay recording sessions and publishing its counters in Redis.
  const relayPort = await freeUdpPort();
  relay = new ManagedProcess(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'relay', '--listen', `127.0.0.1:${relayPort}`,
    '--redis', redisUrl, '--id', 'relay-1', '--keepalive', '2s'], { name: 'relay' });
  await relay.waitForLine(/relay ready/, 20_000);

  // Two members before the page opens: one plain, one whose hostname is made hostile in Redis.
  // The API refuses such a name (400), so the hostile text can only come from Redis itself (a
  // hand edit, an older coordinator): the page must escape it all the same.
  const tok = await env.admin.createToken({ uses: -1, tags: ['web'], originalCidrs: LAN });
  const refused = await env.client().join({ ...member('10.1.0.9', HOSTILE), token: tok.token }).then(() => 'joined', (e: Error) => e.message);
  t.regex(refused, /400|hostname|pattern/, 'the API refuses a hostile hostname');
  const a = member('10.1.0.10', 'web-1');
  const ja = await env.client().join({ ...a, token: tok.token });
  const b = member('10.1.0.11', 'victim');
  const jb = await env.client().join({ ...b, token: tok.token });
  await env.r.hset(K.node(jb.vip), 'hostname', HOSTILE);
  // Member a holds a relay session (online, relay-1).
  const ma = await startMember({ kp: { publicKey: a.publicKey, secretKey: a.privateKey }, vip: parseAddr(ja.vip) }, relayPort);
  members.push(ma);
  await until(() => ma.client.isReady, 'member web-1 authenticated at the relay', 10_000);

  browser = await puppeteer.launch({
    executablePath: exe,
    headless: true,
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--headless=new', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const page: Page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  const dialogs: string[] = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); void d.dismiss(); });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // /ui without a login lands on the form; a wrong token is refused; the right one opens the page.
  await page.goto(url + '/ui');
  t.true(page.url().endsWith('/ui/login'), `redirected to the login form (at ${page.url()})`);
  await page.type('#token', 'wrong-token');
  const [refusedLogin] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  t.is(refusedLogin?.status(), 401);
  await page.goto(url + '/ui/login');
  await page.type('#token', ADMIN);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  t.true(page.url().endsWith('/ui'), `logged in (at ${page.url()})`);
  t.false(page.url().includes(ADMIN), 'the token is not in the URL');
  await page.waitForFunction("document.getElementById('status').textContent === 'live'", { timeout: 10_000 });

  // The members already there: web-1 online through relay-1; the hostile name as plain text.
  const row = (vip: string) => `#members tr[data-vip="${vip}"]`;
  await page.waitForSelector(row(ja.vip), { timeout: 10_000 });
  await page.waitForFunction(`document.querySelector('${row(ja.vip)}')?.textContent.includes('relay-1')`, { timeout: 15_000 });
  const cells = (vip: string) => page.$$eval(`${row(vip)} td`, (tds) => tds.map((td) => td.textContent));
  const webCells = await cells(ja.vip);
  t.is(webCells[0], 'web-1');
  t.is(webCells[4], 'online');
  t.is(webCells[5], 'relay-1');
  const victim = await cells(jb.vip);
  t.is(victim[0], HOSTILE, 'the hostile hostname is shown as the text it is');
  t.is(await page.$$eval('#members img, main img', (imgs) => imgs.length), 0, 'no element was made from it');
  t.is(await page.evaluate('typeof window.__xss'), 'undefined', 'its script never ran');

  // A member joins now: it appears without a reload (the marker set on this document survives).
  await page.evaluate('window.__sameDocument = true');
  const c = member('10.1.0.12', 'db-1');
  const jc = await env.client().join({ ...c, token: tok.token });
  await page.waitForSelector(row(jc.vip), { timeout: 10_000 });
  t.is(await page.evaluate('window.__sameDocument === true'), true, 'no reload');
  t.is((await cells(jc.vip))[0], 'db-1');
  await page.waitForFunction("[...document.querySelectorAll('#events li')].some((li) => li.textContent.includes('node-up'))", { timeout: 10_000 });

  // It comes online through the relay and sends traffic to web-1: the relay row shows it
  // (the relay publishes its counters every 5 s).
  const mc = await startMember({ kp: { publicKey: c.publicKey, secretKey: c.privateKey }, vip: parseAddr(jc.vip) }, relayPort);
  members.push(mc);
  await until(() => mc.client.isReady, 'member db-1 authenticated at the relay', 10_000);
  for (let i = 0; i < 200; i++) mc.sendData(parseAddr(ja.vip), fakeWg(1000));
  await until(() => ma.received.length > 0, 'web-1 received db-1 traffic through the relay', 10_000);
  await page.waitForFunction(`document.querySelector('${row(jc.vip)}')?.textContent.includes('online')`, { timeout: 15_000 });
  // Relay row: sessions (column 2) is 2 and forwarded (column 6) is not 0.
  await page.waitForFunction(`(() => {
    const tds = document.querySelectorAll('#relays tr[data-relay="relay-1"] td');
    return tds.length > 5 && tds[1].textContent === '2' && tds[5].textContent !== '0';
  })()`, { timeout: 20_000 });
  // A policy set now is shown as it was stored (a policy-changed event brings it).
  await env.admin.setPolicy({ rules: [{ from: ['tag:web'], to: ['tag:web'], ports: ['tcp/443', 'icmp'] }] });
  await page.waitForFunction("document.getElementById('policy').textContent.includes('tcp/443')", { timeout: 10_000 });
  const tokenRow = await page.$$eval(`#tokens tr[data-token="${tok.id}"] td`, (tds) => tds.map((td) => td.textContent));
  t.is(tokenRow[2], 'unlimited');
  t.false((await page.content()).includes(tok.token), 'the token secret is not in the page');

  t.deepEqual(dialogs, [], 'no script opened a dialog');
  t.deepEqual(pageErrors, [], 'the page script threw nothing');
  mkdirSync(ARTIFACT_DIR, { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  t.true(existsSync(SCREENSHOT));
  t.log(`screenshot: ${SCREENSHOT}`);
  console.log(`dashboard screenshot: ${SCREENSHOT}`);
});
