/**
 * The relay's policy gate on one relay over a memory socket (MemoryPolicySource stands in for
 * `P:policy` and the node records): malformed policies, loading, tag changes, logging, and
 * the Redis source's pure parts. Whole agents and the mesh: test/integration/relay-policy-memory.test.ts.
 */
import test from 'ava';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import pino from 'pino';
import { Writable } from 'node:stream';
import { ManualClock } from '../../../common/clock';
import { formatAddr } from '../../../common/ipv4';
import { silentLogger, type Logger } from '../../../common/logger';
import { createRelay } from '../../../relay/relay';
import { PolicyGate } from '../../../relay/policy-gate';
import { SessionTable } from '../../../relay/session-table';
import { RelayStats } from '../../../relay/stats';
import { StaticMemberDirectory } from '../../../relay/member-directory';
import { parseStoredTags, policySourceEvent } from '../../../relay/redis-policy-source';
import { FrameType, encodeAuth, encodeHello, decodeChallenge, writeRelayHeader } from '../../../protocol/relay-frame';
import { proveKey } from '../../../protocol/key-proof';
import { MemoryPolicySource } from '../../harness/memory-policy-source';
import { MemorySocket } from './memory-socket';

const A = { kp: nacl.box.keyPair(), vip: 0x64400001, addr: 0x0a000001, port: 1111, tags: ['web'] };
const B = { kp: nacl.box.keyPair(), vip: 0x64400002, addr: 0x0a000002, port: 2222, tags: ['db'] };
const C = { kp: nacl.box.keyPair(), vip: 0x64400003, addr: 0x0a000003, port: 3333, tags: ['guest'] };
type Member = typeof A;

const WEB_TO_DB = '{ "rules": [ { "from": ["tag:web"], "to": ["tag:db"], "ports": ["tcp/5432"] } ] }';
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function capture(): { log: Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(JSON.parse(chunk.toString())); cb(); } });
  return { log: pino({ level: 'debug' }, stream), lines };
}

async function setup(o: { policy?: string | null; log?: Logger; failing?: boolean } = {}) {
  const clock = new ManualClock();
  const socket = new MemorySocket();
  const source = new MemoryPolicySource();
  for (const m of [A, B, C]) source.setTags(formatAddr(m.vip), m.tags, true);
  if (o.policy) source.setPolicy(o.policy);
  source.failing = o.failing ?? false;
  const directory = new StaticMemberDirectory([A, B, C].map((m) => ({ publicKey: Buffer.from(m.kp.publicKey).toString('base64'), vip: m.vip })));
  const relay = createRelay({ id: 'unit', keepaliveSeconds: 1, tickMs: 1e9 })({ logger: o.log ?? silentLogger(), clock, socket, directory, policy: source });
  relay.start();
  const ready = await relay.policyReady().then(() => true, () => false);
  source.failing = false;
  for (const m of [A, B, C]) {
    socket.inject([{ buf: encodeHello(), addr: m.addr, port: m.port }]);
    const ch = decodeChallenge(socket.sent.at(-1)!.buf, 0, socket.sent.at(-1)!.buf.length)!;
    const proof = proveKey(m.kp.secretKey, m.kp.publicKey, ch.ephemeralPublic, ch.nonce, 'relay');
    socket.inject([{ buf: encodeAuth({ version: 1, claimedVip: m.vip, staticPublic: m.kp.publicKey, ephemeralPublic: ch.ephemeralPublic, nonce: ch.nonce, proof }), addr: m.addr, port: m.port }]);
    for (let i = 0; i < 5; i++) await tick();
    if (socket.sent.at(-1)!.buf[0] !== FrameType.AUTH_OK) throw new Error('no AUTH_OK');
  }
  socket.sent = [];
  /** Send one DATA frame from `from` to `to`; true if the relay forwarded it. */
  const send = (from: Member, to: Member): boolean => {
    const b = Buffer.alloc(48, 0xab);
    writeRelayHeader(b, 0, FrameType.DATA, to.vip);
    b[8] = 4; b[9] = 0; b[10] = 0; b[11] = 0;
    const n = socket.sent.length;
    socket.inject([{ buf: b, addr: from.addr, port: from.port }]);
    return socket.sent.slice(n).some((s) => s.addr === to.addr && s.port === to.port && s.buf.readUInt32BE(4) === from.vip);
  };
  return { clock, socket, relay, source, send, ready };
}

test('the policy decides per pair of members: connected both ways, the rest dropped as "policy"', async (t) => {
  const { relay, send } = await setup({ policy: WEB_TO_DB });
  t.true(send(A, B), 'web → db');
  t.true(send(B, A), 'db → web (connected is symmetric)');
  t.false(send(C, A), 'guest → web');
  t.false(send(C, B), 'guest → db');
  t.false(send(A, C), 'web → guest');
  t.is(relay.stats().drops.policy, 3);
  t.is(relay.stats().framesForwarded, 2);
});

test('a malformed policy is refused, counted and logged once; the last good one stays', async (t) => {
  const { log, lines } = capture();
  const { relay, send, source } = await setup({ policy: WEB_TO_DB, log });
  source.setPolicy('{ "rules": [ { "form": ["tag:guest"], "to": ["*"], "ports": ["*"] } ] }');
  await tick();
  source.setPolicy('{ "rules": [ { "form": ["tag:guest"], "to": ["*"], "ports": ["*"] } ] }');
  await tick();
  t.is(relay.stats().policyRejected, 2, 'each read of it counted');
  t.is(lines.filter((l) => l.msg === 'the access policy in Redis is malformed').length, 1, 'logged once');
  t.is(relay.policyRules(), 1);
  t.true(send(A, B), 'positive control: still web → db');
  t.false(send(C, A), 'still guest ↛ web');
  source.setPolicy('{ "rules": [ { "from": ["tag:guest"], "to": ["*"], "ports": ["*"] } ] }');
  await tick();
  t.true(send(C, A), 'a good policy applies again');
  t.false(send(A, B), 'and replaces the old one');
});

test('malformed at start: the relay connects no one until a good policy arrives', async (t) => {
  const { relay, send, source } = await setup({ policy: '{ "rules": [] }' });
  t.is(relay.stats().policyRejected, 1);
  t.false(send(A, B));
  t.is(relay.stats().drops.policy, 1);
  source.setPolicy(WEB_TO_DB);
  await tick();
  t.true(send(A, B));
});

test('the policy cannot be read at start: policyReady rejects and frames are dropped as pending', async (t) => {
  const { relay, send } = await setup({ policy: WEB_TO_DB, failing: true });
  t.false(send(A, B));
  t.is(relay.stats().drops['policy-pending'], 1);
  relay.tick();
  await tick();
  t.true(send(A, B), 'read again on the next tick');
  t.false(send(C, B));
});

test('tags follow node-changed: an admin tagging c web lets it reach db, untagging cuts it', async (t) => {
  const { send, source } = await setup({ policy: WEB_TO_DB });
  t.false(send(C, B));
  source.setTags(formatAddr(C.vip), ['guest', 'web']);
  await tick();
  await tick();
  t.true(send(C, B));
  t.true(send(A, B), 'positive control');
  source.setTags(formatAddr(C.vip), ['guest']);
  await tick();
  await tick();
  t.false(send(C, B));
});

test('no policy: no check at all, nothing counted', async (t) => {
  const { relay, send, source } = await setup({ policy: null });
  t.true(send(C, A));
  t.true(send(A, B));
  t.is(relay.policyRules(), -1);
  t.is(relay.stats().drops.policy + relay.stats().drops['policy-pending'], 0);
  t.is(source.lookups, 3, 'one tags lookup per AUTH, none per frame');
});

test('policy drops are logged at debug level at most once per interval', async (t) => {
  const { log, lines } = capture();
  const { send, clock } = await setup({ policy: WEB_TO_DB, log });
  for (let i = 0; i < 100; i++) send(C, A);
  clock.advance(1000);
  for (let i = 0; i < 100; i++) send(C, A);
  const debug = lines.filter((l) => l.level === 20);
  t.is(debug.length, 2);
  t.like(debug[0], { vip: formatAddr(C.vip), dstVip: formatAddr(A.vip), dropped: 1 });
  t.like(debug[1], { dropped: 100 });
});

test('P:events messages: policy-changed and node events only; stored tags never throw', (t) => {
  t.deepEqual(policySourceEvent(JSON.stringify({ type: 'policy-changed', version: 4 })), { type: 'policy-changed' });
  t.deepEqual(policySourceEvent(JSON.stringify({ type: 'node-changed', vip: '100.64.0.3', version: 5 })), { type: 'node-changed', vip: 0x64400003 });
  t.deepEqual(policySourceEvent(JSON.stringify({ type: 'node-up', vip: '100.64.0.3', version: 5 })), { type: 'node-changed', vip: 0x64400003 });
  t.deepEqual(policySourceEvent(JSON.stringify({ type: 'node-removed', vip: '100.64.0.3', version: 5 })), { type: 'node-removed', vip: 0x64400003 });
  t.is(policySourceEvent(JSON.stringify({ type: 'session-up', vip: '100.64.0.3', relayId: 'r1' })), undefined);
  t.is(policySourceEvent(JSON.stringify({ type: 'node-changed', vip: 'x', version: 1 })), undefined);
  t.is(policySourceEvent('{'), undefined);
  t.deepEqual(parseStoredTags('["a","b"]'), ['a', 'b']);
  t.deepEqual(parseStoredTags('[1]'), []);
  t.deepEqual(parseStoredTags('nope'), []);
  t.is(parseStoredTags(null), undefined);
  fc.assert(fc.property(fc.string(), (s) => { policySourceEvent(s); parseStoredTags(s); return true; }), { numRuns: 2000 });
});

test('members with the same tags share one frozen tag array; different tags stay apart', async (t) => {
  const source = new MemoryPolicySource();
  const vips = [0x64400011, 0x64400012, 0x64400013];
  source.setTags(formatAddr(vips[0]), ['agent', 'eu'], true);
  source.setTags(formatAddr(vips[1]), ['agent', 'eu'], true);
  source.setTags(formatAddr(vips[2]), ['agent', 'us'], true);
  const gate = new PolicyGate({}, { source, sessions: new SessionTable(), stats: new RelayStats(), log: silentLogger(), rerun: () => {} });
  const [a, b, c] = await Promise.all(vips.map((v) => gate.tagsForBind(v)));
  t.deepEqual(a.tags, ['agent', 'eu']);
  t.is(a.tags, b.tags, 'one array for both members');
  t.true(Object.isFrozen(a.tags));
  t.deepEqual(c.tags, ['agent', 'us']);
  t.not(c.tags, a.tags);
});
