/**
 * An authenticated control channel (docs/SECURITY.md): the coordinator serves HTTPS and signs
 * join and peer-map answers; members verify the certificate against --coordinator-ca and pin
 * the signing key at their first join.
 *
 *   MembershipClient ──https──▶ [middlebox: cert from the *trusted* CA] ──https──▶ coordinator A
 *                                                                                 (CA A, signing key A)
 *   coordinator B (CA B, key B) · coordinator A2 (CA A, key B) · coordinator P (plain http, unsigned)
 *   all on one private redis-server; the CLI runs as `node dist/cli/main.js`.
 *
 * Every refusal sits beside its positive control in the same setup.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { startRedis, type RedisHandle } from '../harness/redis';
import { createCoordinator, type Coordinator } from '../../coordinator/server';
import { AnswerVerificationError, CoordinatorClient, CoordinatorTlsError, InsecureCoordinatorError } from '../../coordinator/client';
import { loadSigningKey } from '../../coordinator/answer-signing';
import { MembershipClient, type PeerSink } from '../../node-agent/membership';
import { StateDir, SIGNING_KEY_FILE } from '../../node-agent/state-dir';
import type { PeerSpec } from '../../node-agent/peer-set';
import { makeCoordinatorTls, type CoordinatorTls } from '../../testbed';
import { silentLogger } from '../../common/logger';
import { formatPrefix } from '../../common/ipv4';

const ADMIN = 'admin-secret-for-tls-tests-0123456789';
const LAN = ['10.0.0.0/8'];
const root = join(__dirname, '..', '..');

let redis: RedisHandle;
let dir: string;
let tlsA: CoordinatorTls;
let tlsB: CoordinatorTls;
const coords: Coordinator[] = [];
let urlA: string;
let urlB: string;
let urlA2: string;
let urlPlain: string;
/** The unsigned deployment of urlPlain (same data) over TLS. */
let urlUnsignedTls: string;
let admin: CoordinatorClient;

async function coordinator(o: { tls?: CoordinatorTls; signing?: string; prefix: string }): Promise<string> {
  const c = await createCoordinator({
    redis: redis.url, adminToken: ADMIN, sweepIntervalMs: 0, prefix: o.prefix, longPollMs: 5000,
    tls: o.tls ? { cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key) } : undefined,
    signingKey: o.signing ? loadSigningKey(o.signing) : undefined,
  });
  coords.push(c);
  return (await c.listen('127.0.0.1', 0)).url;
}

test.before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'isthmus-tls-'));
  tlsA = makeCoordinatorTls(dir, ['127.0.0.1'], { name: 'a' });
  tlsB = makeCoordinatorTls(dir, ['127.0.0.1'], { name: 'b' });
  urlA = await coordinator({ tls: tlsA, signing: tlsA.signingKey, prefix: 'tlsA' });
  // Another deployment (its own CA and signing key), and one behind a trusted certificate whose answers are signed by another key.
  urlB = await coordinator({ tls: tlsB, signing: tlsB.signingKey, prefix: 'tlsB' });
  urlA2 = await coordinator({ tls: tlsA, signing: tlsB.signingKey, prefix: 'tlsA' });
  urlPlain = await coordinator({ prefix: 'tlsP' });
  urlUnsignedTls = await coordinator({ tls: tlsA, prefix: 'tlsP' });
  admin = new CoordinatorClient({ url: urlA, adminToken: ADMIN, ca: readFileSync(tlsA.ca) });
});

test.after.always(async () => {
  for (const c of coords) await c.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

class Sink implements PeerSink {
  readonly peers = new Map<string, PeerSpec>();
  upsertPeer(spec: PeerSpec): void { this.peers.set(spec.publicKey, spec); }
  removePeer(k: string): void { this.peers.delete(k); }
  peerKeys(): string[] { return [...this.peers.keys()]; }
  /** The key this agent would send packets for `vip` with. */
  keyOf(vip: string): string | undefined {
    for (const [k, s] of this.peers) if (s.allowedIps.map(formatPrefix).includes(`${vip}/32`)) return k;
    return undefined;
  }
}

function stateDir(t: ExecutionContext): StateDir {
  const d = mkdtempSync(join(dir, 'state-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return new StateDir(d);
}

let hostN = 0;
function keyPair() {
  const kp = nacl.box.keyPair();
  return { privateKey: kp.secretKey, publicKey: kp.publicKey, pub: Buffer.from(kp.publicKey).toString('base64') };
}

/** A member joined with a plain library client (the peer the member under test sees). */
async function otherMember(url: string, ca: string, adminClient = admin): Promise<{ vip: string; pub: string }> {
  const tok = await adminClient.createToken({ originalCidrs: LAN });
  const kp = keyPair();
  const r = await new CoordinatorClient({ url, ca: readFileSync(ca) })
    .join({ privateKey: kp.privateKey, publicKey: kp.publicKey, token: tok.token, originalIp: `10.1.0.${++hostN}`, hostname: `peer-${hostN}` });
  return { vip: r.vip, pub: kp.pub };
}

function membership(url: string, state: StateDir, token: string | undefined, o: { ca?: string; pubkey?: string; insecure?: boolean } = {}) {
  return new MembershipClient({
    coordinatorUrl: url, token, originalIp: `10.2.0.${++hostN}`, hostname: `member-${hostN}`,
    coordinatorCa: o.ca ? readFileSync(o.ca) : undefined, coordinatorPubkey: o.pubkey, insecureCoordinator: o.insecure,
  }, state, silentLogger());
}

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test.serial('a member joins and follows its peer map over HTTPS; the signing key is pinned at the first join', async (t) => {
  const state = stateDir(t);
  const tok = await admin.createToken({ originalCidrs: LAN });
  const m = membership(urlA, state, tok.token, { ca: tlsA.ca });
  const joined = await m.join();
  t.true(joined.vip.startsWith('100.'));
  t.is(readFileSync(join(state.dir, SIGNING_KEY_FILE), 'utf8').trim(), tlsA.signingPublicKey, 'trust on first use: the key is kept in the state dir');
  const sink = new Sink();
  m.applyFull(joined.peers, sink);
  const loop = m.run(joined, sink);
  t.teardown(() => m.stop());
  const p = await otherMember(urlA, tlsA.ca);
  await until('the new peer in the map', () => sink.keyOf(p.vip) === p.pub);
  t.is(m.client.refusedAnswers, 0);
  m.stop();
  await loop;
});

test.serial('a coordinator whose certificate comes from another CA is refused; its own CA is accepted (positive control)', async (t) => {
  const err = await t.throwsAsync(new CoordinatorClient({ url: urlB, ca: readFileSync(tlsA.ca) }).challenge(), { instanceOf: CoordinatorTlsError });
  t.regex(err!.message, /TLS certificate refused \(\w+\).*--coordinator-ca/);
  await t.throwsAsync(new CoordinatorClient({ url: urlA }).challenge(), { instanceOf: CoordinatorTlsError }, 'not in Node\'s default store either');
  t.truthy((await new CoordinatorClient({ url: urlB, ca: readFileSync(tlsB.ca) }).challenge()).id, 'positive control: the right CA');
  t.truthy((await new CoordinatorClient({ url: urlA, ca: readFileSync(tlsA.ca) }).challenge()).id);

  // The member: nothing joined, nothing pinned, a clear error.
  const state = stateDir(t);
  const tok = await admin.createToken({ originalCidrs: LAN });
  const e2 = await t.throwsAsync(membership(urlB, state, tok.token, { ca: tlsA.ca }).join());
  t.regex(e2!.message, /TLS certificate refused/);
  t.is(state.signingKey(), undefined);
  t.is(state.loadMembership(), undefined);
});

test.serial('answers signed by another key are refused once a key is pinned; the pinned deployment still works (positive control)', async (t) => {
  const state = stateDir(t);
  const tok = await admin.createToken({ uses: 3, originalCidrs: LAN });
  // A2 has a certificate from the trusted CA A, but signs with key B: a re-signing middlebox, or another deployment.
  const viaA2 = membership(urlA2, state, tok.token, { ca: tlsA.ca, pubkey: tlsA.signingPublicKey });
  const e = await t.throwsAsync(viaA2.join(), { instanceOf: AnswerVerificationError });
  t.is((e as AnswerVerificationError).code, 'other-signing-key');
  t.regex(e!.message, /signed by coordinator key .* not the pinned/);
  t.is(state.loadMembership(), undefined, 'nothing from the refused answer was kept');
  const ok = await membership(urlA, state, tok.token, { ca: tlsA.ca }).join();
  t.truthy(ok.vip, 'positive control: the same state dir joins the pinned deployment');
  // Pinned in the state dir (as TOFU leaves it), no --coordinator-pubkey: still refused.
  const pinned = stateDir(t);
  pinned.saveSigningKey(tlsA.signingPublicKey);
  const e3 = await t.throwsAsync(membership(urlA2, pinned, tok.token, { ca: tlsA.ca }).join(), { instanceOf: AnswerVerificationError });
  t.is((e3 as AnswerVerificationError).code, 'other-signing-key');
});

test.serial('unsigned answers: refused by default, accepted with --insecure-coordinator until a key is pinned, never after', async (t) => {
  const plainAdmin = new CoordinatorClient({ url: urlPlain, insecure: true, adminToken: ADMIN });
  const tok = await plainAdmin.createToken({ uses: 5, originalCidrs: LAN });
  const e0 = t.throws(() => membership(urlPlain, stateDir(t), tok.token), { instanceOf: InsecureCoordinatorError });
  t.regex(e0!.message, /plain http:\/\/.*insecure: true/, 'a plain http:// coordinator is refused without the insecure option');
  const e = await t.throwsAsync(membership(urlUnsignedTls, stateDir(t), tok.token, { ca: tlsA.ca }).join(), { instanceOf: AnswerVerificationError });
  t.is((e as AnswerVerificationError).code, 'unsigned');
  t.regex(e!.message, /--signing-key/);
  t.truthy((await membership(urlPlain, stateDir(t), tok.token, { insecure: true }).join()).vip, 'positive control: with --insecure-coordinator');
  const pinned = stateDir(t);
  pinned.saveSigningKey(tlsA.signingPublicKey);
  const e2 = await t.throwsAsync(membership(urlPlain, pinned, tok.token, { insecure: true }).join(), { instanceOf: AnswerVerificationError });
  t.is((e2 as AnswerVerificationError).code, 'unsigned');
});

/**
 * A TLS-terminating middlebox with a certificate from the trusted CA A: it forwards to the real
 * coordinator and, while `rewrite` is set, replaces `rewrite.from` with `rewrite.to` in every
 * answer (a peer's public key), or strips the signature.
 */
async function middlebox(t: ExecutionContext) {
  const cert = makeCoordinatorTls(dir, ['127.0.0.1'], { name: `mitm-${++hostN}`, issuer: tlsA });
  const state: { rewrite?: { from: string; to: string }; strip: boolean; rewritten: number } = { strip: false, rewritten: 0 };
  const up = new URL(urlA);
  const ca = readFileSync(tlsA.ca);
  const server = https.createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = { ...req.headers, host: up.host };
      const out = https.request({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers, ca }, (ures) => {
        if (String(ures.headers['content-type']).startsWith('application/x-isthmus-frames')) {
          // The peer-map stream: passed on line by line, each line rewritten (or its signature stripped) on the way.
          const h = { ...ures.headers };
          delete h['content-length'];
          delete h['transfer-encoding'];
          res.writeHead(ures.statusCode ?? 502, h);
          let rest = '';
          ures.on('data', (c: Buffer) => {
            rest += c.toString();
            for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
              let line = rest.slice(0, i);
              rest = rest.slice(i + 1);
              if (state.rewrite && line.includes(state.rewrite.from)) {
                line = line.split(state.rewrite.from).join(state.rewrite.to);
                state.rewritten++;
              }
              if (state.strip) line = '-' + line.slice(line.indexOf(' '));
              res.write(line + '\n');
            }
          });
          ures.on('end', () => res.end());
          return;
        }
        const body: Buffer[] = [];
        ures.on('data', (c: Buffer) => body.push(c));
        ures.on('end', () => {
          let text = Buffer.concat(body).toString();
          if (state.rewrite && text.includes(state.rewrite.from)) {
            text = text.split(state.rewrite.from).join(state.rewrite.to);
            state.rewritten++;
          }
          const h = { ...ures.headers };
          delete h['content-length'];
          delete h['transfer-encoding'];
          if (state.strip) delete h['isthmus-signature'];
          res.writeHead(ures.statusCode ?? 502, h).end(text);
        });
      });
      out.on('error', () => res.destroy());
      res.on('close', () => out.destroy());
      out.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, state };
}

test.serial('a TLS-terminating middlebox with a trusted certificate cannot change a peer key the member accepts', async (t) => {
  const mb = await middlebox(t);
  const p = await otherMember(urlA, tlsA.ca);
  const state = stateDir(t);
  const tok = await admin.createToken({ uses: 2, originalCidrs: LAN });
  const m = membership(mb.url, state, tok.token, { ca: tlsA.ca, pubkey: tlsA.signingPublicKey });
  const joined = await m.join();
  const sink = new Sink();
  m.applyFull(joined.peers, sink);
  t.is(sink.keyOf(p.vip), p.pub);
  const loop = m.run(joined, sink);
  t.teardown(() => m.stop());

  // Positive control: through the same middlebox, not rewriting, a change arrives.
  const q = await otherMember(urlA, tlsA.ca);
  await until('q through the middlebox', () => sink.keyOf(q.vip) === q.pub);
  t.is(m.client.refusedAnswers, 0);

  // Rewriting p's key in the answer to a key the attacker holds: refused, p keeps its key.
  const evil = keyPair().pub;
  mb.state.rewrite = { from: p.pub, to: evil };
  await admin.setNodeTags(p.vip, { add: ['moved'] }); // a change that sends p's entry again
  await until('a rewritten answer refused', () => m.client.refusedAnswers > 0 && mb.state.rewritten > 0);
  t.is(sink.keyOf(p.vip), p.pub, 'the accepted key for p is unchanged');
  t.false(sink.peerKeys().includes(evil), 'the attacker\'s key never reached the data path');
  m.saved.flush(); // what waits to be written (debounced) is on disk too
  t.is(state.loadMembership()!.peers.find((x) => x.vip === p.vip)?.publicKey, p.pub, 'nor the saved map');

  // Stripping the signature instead: refused too.
  const before = m.client.refusedAnswers;
  mb.state.rewrite = undefined;
  mb.state.strip = true;
  await until('an unsigned answer refused', () => m.client.refusedAnswers > before);
  t.false(sink.peerKeys().includes(evil));

  // The middlebox stops tampering: the member catches up with the real change (p, tagged, same key).
  mb.state.strip = false;
  await until('the real update of p', () => state.loadMembership()!.peers.find((x) => x.vip === p.vip)?.tags.includes('moved') === true, 20_000);
  t.is(sink.keyOf(p.vip), p.pub);

  // A join answer rewritten by the middlebox (a new member with the key given up front): refused.
  mb.state.rewrite = { from: p.pub, to: evil };
  const other = membership(mb.url, stateDir(t), tok.token, { ca: tlsA.ca, pubkey: tlsA.signingPublicKey });
  const e = await t.throwsAsync(other.join(), { instanceOf: AnswerVerificationError });
  t.is((e as AnswerVerificationError).code, 'bad-signature');
  m.stop();
  await loop;
});

function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ISTHMUS_')) env[k] = v;
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'dist/cli/main.js'), ...args], { env, timeout: 30_000 }, (err, out, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: String(out), err: String(stderr) });
    });
  });
}

test.serial('admin CLI: https with --coordinator-ca works, another CA is refused, plain http only with --insecure-coordinator (warned)', async (t) => {
  const ok = await cli(['token', 'list', '--coordinator', urlA, '--coordinator-ca', tlsA.ca, '--admin-token', ADMIN, '--json']);
  t.is(ok.code, 0, ok.err);
  t.true(Array.isArray(JSON.parse(ok.out)));
  const wrongCa = await cli(['token', 'list', '--coordinator', urlB, '--coordinator-ca', tlsA.ca, '--admin-token', ADMIN]);
  t.not(wrongCa.code, 0);
  t.regex(wrongCa.err, /TLS certificate refused/);

  const plain = await cli(['token', 'list', '--coordinator', urlPlain, '--admin-token', ADMIN]);
  t.is(plain.code, 2);
  t.regex(plain.err, /plain http:\/\/.*--insecure-coordinator/);
  const allowed = await cli(['token', 'list', '--coordinator', urlPlain, '--admin-token', ADMIN, '--insecure-coordinator', '--json']);
  t.is(allowed.code, 0, allowed.err);
  t.regex(allowed.err, /warning: --insecure-coordinator: .*plain HTTP/);

  const badCa = await cli(['token', 'list', '--coordinator', urlA, '--coordinator-ca', join(dir, 'nope.pem'), '--admin-token', ADMIN]);
  t.not(badCa.code, 0);
  t.regex(badCa.err, /cannot read --coordinator-ca .*nope\.pem: ENOENT/);
});

test.serial('isthmus keygen --signing-key writes a 0600 key a coordinator loads, prints its public key, never overwrites', async (t) => {
  const f = join(dir, 'deploy-signing.key');
  const r = await cli(['keygen', '--signing-key', f]);
  t.is(r.code, 0, r.err);
  const { signingPublicKey } = await import('../../coordinator/answer-signing');
  t.is(signingPublicKey(loadSigningKey(f)), r.out.trim());
  const again = await cli(['keygen', '--signing-key', f]);
  t.not(again.code, 0);
  t.regex(again.err, /exists \(never overwritten\)/);
});
