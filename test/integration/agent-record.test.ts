/**
 * The agent checks the membership record it receives before keeping it in its state dir
 * (node-agent/record-check.ts), with the real membership loop, a real coordinator with a
 * signing key on a real redis-server, and an HTTP man in the middle between them:
 *
 *   - `GET /v1/record` answers are not answer-signed: a record swapped there (signed by another
 *     key, or another member's genuine record) is refused and the kept one stays on disk, while
 *     the genuine refresh through the same proxy replaces it;
 *   - a join answer whose record was swapped and which was then re-signed with the deployment
 *     key (the answer checks out) still does not get its record stored, while the genuine join
 *     through the same proxy does.
 */
import test from 'ava';
import { createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { startRedis } from '../harness/redis';
import { createCoordinator } from '../../coordinator/server';
import { CoordinatorClient } from '../../coordinator/client';
import { generateSigningKey, NONCE_HEADER, PROOF_HEADER, SIGNATURE_HEADER, signAnswer } from '../../coordinator/answer-signing';
import { issueMembershipRecord, readMembershipRecordUnverified } from '../../coordinator/membership-record';
import { MembershipClient } from '../../node-agent/membership';
import { StateDir, RECORD_FILE } from '../../node-agent/state-dir';
import { silentLogger } from '../../common';

const ADMIN = 'admin-secret-for-tests-0123456789';
type Swap = (record: string) => string;

/** Forwards to `upstream`; `swap.record` rewrites /v1/record answers, `swap.join` join answers (re-signed with `key`). */
async function middlebox(upstream: string, key: ReturnType<typeof createPrivateKey>) {
  const up = new URL(upstream);
  const swap: { record?: Swap; join?: Swap } = {};
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reqBody = Buffer.concat(chunks);
      const out = http.request({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers: req.headers }, (ures) => {
        const body: Buffer[] = [];
        ures.on('data', (c: Buffer) => body.push(c));
        ures.on('end', () => {
          let text = Buffer.concat(body).toString();
          const h = { ...ures.headers };
          delete h['content-length'];
          const f = req.url === '/v1/record' ? swap.record : req.url === '/v1/join' ? swap.join : undefined;
          if (f && ures.statusCode === 200) {
            const o = JSON.parse(text) as { record: string };
            o.record = f(o.record);
            text = JSON.stringify(o);
            if (req.url === '/v1/join') {
              const member = (JSON.parse(reqBody.toString()) as { publicKey: string }).publicKey;
              h[SIGNATURE_HEADER] = signAnswer(key, { route: 'join', member, since: '-', nonce: String(req.headers[NONCE_HEADER]) }, text);
              delete h[PROOF_HEADER];
            }
          }
          res.writeHead(ures.statusCode ?? 502, h);
          res.end(text);
        });
      });
      out.on('error', () => { res.writeHead(502); res.end(); });
      out.end(reqBody);
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, swap, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}

test('a record swapped in a refresh or a (re-signed) join answer is refused and never stored; the genuine ones are kept', async (t) => {
  const redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-record-'));
  const signing = generateSigningKey();
  const key = createPrivateKey(signing.pem);
  const coord = await createCoordinator({ redis: redis.url, adminToken: ADMIN, signingKey: key, sweepIntervalMs: 0, longPollMs: 2000 });
  const { url } = await coord.listen('127.0.0.1', 0);
  const mitm = await middlebox(url, key);
  const members: MembershipClient[] = [];
  t.teardown(async () => {
    for (const m of members) m.stop();
    await mitm.close();
    await coord.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const admin = new CoordinatorClient({ url, insecure: true, adminToken: ADMIN });
  const tok = (await admin.createToken({ uses: -1, originalCidrs: ['10.0.0.0/8'], tags: ['app'] })).token;
  const member = (name: string, n: number) => {
    const state = new StateDir(join(dir, name));
    const m = new MembershipClient({ coordinatorUrl: mitm.url, coordinatorPubkey: signing.publicKey, token: tok, originalIp: `10.40.0.${n}`, hostname: name, insecureCoordinator: true },
      state, silentLogger());
    members.push(m);
    return { m, onDisk: () => (existsSync(join(state.dir, RECORD_FILE)) ? readFileSync(join(state.dir, RECORD_FILE), 'utf8').trim() : undefined) };
  };

  // Genuine join through the proxy: the record is kept, and its expiry is what status shows.
  const a = member('alpha', 1);
  const ja = await a.m.join();
  const first = a.onDisk();
  t.truthy(first, 'positive control: the genuine record is on disk');
  const rec = readMembershipRecordUnverified(first)!;
  t.like(rec, { vip: ja.vip, pub: a.m.publicKey });
  t.deepEqual(a.m.recordStatus, { issuedWallMs: rec.iat, expiresWallMs: rec.exp, refused: 0 });
  const self = ja.peers.find((p) => p.vip === ja.vip)!;
  const stale = { ...self, tags: ['changed'] }; // makes refreshRecord fetch

  // Refresh answers swapped: signed by another key; another member's genuine record.
  const otherKey = createPrivateKey(generateSigningKey().pem);
  mitm.swap.record = (r) => issueMembershipRecord(otherKey, readMembershipRecordUnverified(r)!);
  t.false(await a.m.refreshRecord(stale));
  t.is(a.onDisk(), first, 'the kept record stays');
  t.like(a.m.recordStatus, { refused: 1, expiresWallMs: rec.exp });
  t.regex(a.m.recordStatus.error!, /refused: record-invalid: signature does not verify/);
  const stranger = Buffer.from(nacl.box.keyPair().publicKey).toString('base64');
  mitm.swap.record = (r) => issueMembershipRecord(key, { ...readMembershipRecordUnverified(r)!, pub: stranger });
  t.false(await a.m.refreshRecord(stale));
  t.is(a.onDisk(), first);
  t.like(a.m.recordStatus, { refused: 2 });
  t.regex(a.m.recordStatus.error!, /another member's public key/);

  // Positive control through the same proxy: the genuine refresh replaces it and clears the error.
  mitm.swap.record = undefined;
  await new Promise((r) => setTimeout(r, 5)); // a fresh record differs (issued-at)
  t.true(await a.m.refreshRecord(stale));
  const second = a.onDisk();
  t.not(second, first, 'the genuine refresh is stored');
  t.is(readMembershipRecordUnverified(second)!.pub, a.m.publicKey);
  t.like(a.m.recordStatus, { refused: 2, expiresWallMs: readMembershipRecordUnverified(second)!.exp });
  t.is(a.m.recordStatus.error, undefined);

  // A join answer whose record names another vip, re-signed with the deployment key: the
  // answer verifies (the member joins), its record is not stored.
  mitm.swap.join = (r) => issueMembershipRecord(key, { ...readMembershipRecordUnverified(r)!, vip: '100.64.99.99' });
  const b = member('beta', 2);
  const jb = await b.m.join();
  t.truthy(jb.vip, 'the answer itself checked out');
  t.is(b.onDisk(), undefined, 'no record stored');
  t.like(b.m.recordStatus, { refused: 1, expiresWallMs: undefined });
  t.regex(b.m.recordStatus.error!, /names vip 100\.64\.99\.99, the answer /);
  // Its next, genuine join through the proxy keeps the record.
  mitm.swap.join = undefined;
  await b.m.join();
  t.is(readMembershipRecordUnverified(b.onDisk())?.vip, jb.vip, 'positive control: the genuine join answer\'s record is kept');
  t.is(b.m.recordStatus.error, undefined);
});
