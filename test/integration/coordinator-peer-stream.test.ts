/**
 * Issue 12, streaming watch (coordinator/peer-stream.ts): one long-lived response per member,
 * one frame per change of its view, byte-identical and signed once for every member of one view,
 * heartbeats (empty signed deltas that move quiet cursors, unsigned beats), slow members dropped,
 * removed members' streams closed, and no change lost across reconnects and coordinators.
 */
import test from 'ava';
import { createPrivateKey } from 'node:crypto';
import { connect } from 'node:net';
import { startEnv, member, LAN, type Env } from './coordinator-helpers';
import { CoordinatorClient, SessionExpiredError, type PeerMapUpdate } from '../../coordinator/client';
import { generateSigningKey, newNonce, parseSigningPublicKey, verifySignedAnswer, NONCE_HEADER } from '../../coordinator/answer-signing';
import { BEAT_BODY, parseFrameLine, viewOf, viewScope, type DeltaFrame, type OpenFrame } from '../../coordinator/stream-frames';
import type { JoinResponse, Peer } from '../../coordinator/types';

const key = generateSigningKey();
const pub = parseSigningPublicKey(key.publicKey);
let env: Env;
let agentTok: string;
let ctlTok: string;
test.before(async () => {
  env = await startEnv(2, { signingKey: createPrivateKey(key.pem), stream: { heartbeatMs: 500, maxBufferBytes: 16 * 1024 }, rateLimits: false });
  await env.admin.setPolicy({ rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: ['tcp/22'] }] });
  agentTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['agent'] })).token;
  ctlTok = (await env.admin.createToken({ uses: -1, originalCidrs: LAN, tags: ['controller'] })).token;
});
test.after.always(async () => { await env?.stop(); });

let nextHost = 1;
const join = (tok: string, coord = 0) => env.client(coord).join({ ...member(`10.41.${nextHost >> 8}.${nextHost++ & 255}`), token: tok });

/** A raw stream: its lines as they arrive (the bytes as sent), with the request's nonce. */
class Raw {
  readonly lines: string[] = [];
  ended = false;
  private wake?: () => void;
  private readonly ac = new AbortController();
  constructor(readonly nonce: string) {}

  static async open(j: JoinResponse, since?: number, coord = 0): Promise<Raw> {
    const r = new Raw(newNonce());
    const res = await fetch(`${env.urls[coord]}/v1/peers/stream${since === undefined ? '' : `?since=${since}`}`,
      { headers: { authorization: `Bearer ${j.sessionToken}`, [NONCE_HEADER]: r.nonce }, signal: r.ac.signal });
    if (res.status !== 200) throw new Error(`stream: ${res.status} ${await res.text()}`);
    void (async () => {
      let rest = '';
      try {
        for await (const chunk of res.body!) {
          rest += Buffer.from(chunk).toString('utf8');
          for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
            r.lines.push(rest.slice(0, i));
            rest = rest.slice(i + 1);
          }
          r.wake?.();
        }
      } catch { /* aborted */ }
      r.ended = true;
      r.wake?.();
    })();
    return r;
  }

  /** Wait until `cond` holds for the lines (deadline: not an assertion on time). */
  async until(cond: (lines: string[]) => boolean, ms = 10_000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!cond(this.lines) && !this.ended && Date.now() < end) {
      await new Promise<void>((res) => { this.wake = res; setTimeout(res, 100); });
    }
    return cond(this.lines);
  }

  /** The frames that are not beats. */
  frames(): string[] {
    return this.lines.filter((l) => parseFrameLine(l)!.body !== BEAT_BODY);
  }

  close(): void {
    this.ac.abort();
  }
}

const body = <T>(line: string) => JSON.parse(parseFrameLine(line)!.body) as T;
const frameVerifies = (line: string, scope: string, from: number) => {
  const f = parseFrameLine(line)!;
  return verifySignedAnswer(pub, { scope, from: String(from) }, f.body, f.signature!, f.proof);
};

test.serial('a controller joining: every agent\'s stream gets one frame, the same bytes, one signature for all; it verifies only for the agents\' view and cursor', async (t) => {
  const agents: JoinResponse[] = [];
  for (let i = 0; i < 8; i++) agents.push(await join(agentTok));
  const streams = await Promise.all(agents.map((a) => Raw.open(a)));
  for (const s of streams) t.true(await s.until((l) => l.length >= 1));
  const opens = streams.map((s) => body<OpenFrame>(s.lines[0]));
  // Opening frames: signed for this member, its nonce and "-" (full map).
  for (const [i, s] of streams.entries()) {
    const f = parseFrameLine(s.lines[0])!;
    t.true(verifySignedAnswer(pub, { route: 'stream', member: agents[i].vip, since: '-', nonce: s.nonce }, f.body, f.signature!, f.proof), `opening ${i} verifies`);
    t.false(verifySignedAnswer(pub, { route: 'stream', member: agents[(i + 1) % 8].vip, since: '-', nonce: s.nonce }, f.body, f.signature!, f.proof), 'not for another member');
    t.true(opens[i].full);
    t.is(opens[i].view, viewOf(['agent']));
  }
  // Let every stream sit at one version (heartbeats move quiet cursors), then the change.
  const at = await env.registryVersion();
  await new Promise((r) => setTimeout(r, 1200));
  const held = new Map<Raw, number>();
  for (const s of streams) {
    const fs = s.frames();
    const last = fs.length > 1 ? body<DeltaFrame>(fs[fs.length - 1]).to : body<OpenFrame>(fs[0]).version;
    held.set(s, last);
    t.is(last, at, 'caught up by a heartbeat');
  }
  const sigBefore = env.coords[0].signing!.signatures;
  const seen = streams.map((s) => s.frames().length);
  const ctl = await join(ctlTok, 1);
  for (const [i, s] of streams.entries()) t.true(await s.until(() => s.frames().length > seen[i]), `agent ${i} got the change`);
  const lines = streams.map((s, i) => s.frames()[seen[i]]);
  for (const [i, line] of lines.entries()) {
    const d = body<DeltaFrame>(line);
    t.is(d.type, 'delta');
    t.deepEqual(d.upserts.map((p) => p.vip), [ctl.vip], 'the controller, and only it');
    t.is(d.scope, viewScope(viewOf(['agent'])));
    t.is(line, lines[0], `agent ${i}: the same bytes (serialised and signed once)`);
    t.true(frameVerifies(line, d.scope, held.get(streams[i])!), 'positive control: verifies for the agents\' view and the cursor held');
    t.false(frameVerifies(line, viewScope(viewOf(['controller'])), held.get(streams[i])!), 'not for another view');
    t.false(frameVerifies(line, d.scope, held.get(streams[i])! - 1), 'not from another version');
  }
  t.true(env.coords[0].signing!.signatures - sigBefore <= 2, `one signature for the ${streams.length} frames (plus at most a heartbeat's)`);
  for (const s of streams) s.close();
});

test.serial('heartbeats: a quiet member\'s cursor moves by a signed empty delta; then unsigned beats; the watchers gauge counts streams', async (t) => {
  const a = await join(agentTok);
  const s = await Raw.open(a);
  t.true(await s.until((l) => l.length >= 1));
  const v0 = body<OpenFrame>(s.lines[0]).version;
  t.is(env.coords[0].streams.open >= 1, true);
  // An agent joining changes no agent's view: no frame for it, but its cursor falls behind…
  await join(agentTok);
  const v1 = await env.registryVersion();
  t.true(v1 > v0);
  // …until its heartbeat: an empty delta v0 → v1 for its view, signed.
  t.true(await s.until((l) => l.some((x) => parseFrameLine(x)!.body !== BEAT_BODY && body<DeltaFrame>(x).type === 'delta')));
  const adv = s.frames().find((x) => body<{ type: string }>(x).type === 'delta')!;
  const d = body<DeltaFrame>(adv);
  t.deepEqual([d.from, d.to, d.upserts.length, d.removals.length], [v0, v1, 0, 0]);
  t.true(frameVerifies(adv, d.scope, v0));
  // Then beats: unsigned, carrying nothing.
  t.true(await s.until((l) => l.some((x) => parseFrameLine(x)!.body === BEAT_BODY)));
  const beat = parseFrameLine(s.lines.find((x) => parseFrameLine(x)!.body === BEAT_BODY)!)!;
  t.is(beat.signature, undefined);
  s.close();
});

test.serial('a member that does not read is dropped when its unsent bytes pass the limit; a reading member in the same setup gets every frame', async (t) => {
  const ctl = await join(ctlTok);
  const reader = await Raw.open(ctl);
  const withReader = env.coords[0].streams.open;
  // The slow one: a raw HTTP request whose answer is never read.
  const slow = await join(ctlTok);
  const sock = connect(Number(new URL(env.urls[0]).port), '127.0.0.1');
  await new Promise<void>((res) => sock.once('connect', () => res()));
  sock.pause();
  sock.write(`GET /v1/peers/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${slow.sessionToken}\r\n\r\n`);
  let closed = false;
  sock.on('close', () => { closed = true; });
  sock.on('error', () => undefined);
  const dropped0 = env.coords[0].streams.stats.dropped;
  // Big frames: each policy flip re-sends every agent (its ports changed) to both controllers;
  // past the kernel's socket buffers (MBs on loopback) the unread bytes pile up at the coordinator.
  await Promise.all(Array.from({ length: 4 }, async () => { for (let i = 0; i < 60; i++) await join(agentTok); }));
  const base = { from: ['tag:controller'], to: ['tag:agent'], ports: ['tcp/22'] };
  const flip = [[base], [base, { from: ['tag:agent'], to: ['tag:controller'], ports: ['tcp/23'] }]];
  let i = 0;
  const t0 = Date.now();
  for (let k = 0; k < 100 && env.coords[0].streams.open < withReader + 1; k++) await new Promise((r) => setTimeout(r, 20));
  t.is(env.coords[0].streams.open, withReader + 1, 'the slow member\'s stream is open');
  for (; i < 600 && env.coords[0].streams.stats.dropped === dropped0; i++) {
    await env.admin.setPolicy({ rules: flip[i % 2] });
    await new Promise((r) => setTimeout(r, 20));
  }
  t.log(`dropped after ${i} policy flips (${Date.now() - t0} ms)`);
  t.is(env.coords[0].streams.stats.dropped, dropped0 + 1, 'the slow member was dropped');
  t.is(env.coords[0].streams.open, withReader, 'and no longer counted');
  sock.resume();
  for (let i = 0; i < 100 && !closed; i++) await new Promise((r) => setTimeout(r, 50));
  t.true(closed, 'its connection is closed (it reconnects from its cursor)');
  // Positive control: the reader kept up and holds the last policy's ports for every agent.
  const v = await env.registryVersion();
  t.true(await reader.until((l) => l.some((x) => parseFrameLine(x)!.body !== BEAT_BODY && (body<DeltaFrame>(x).to ?? 0) >= v)));
  t.false(reader.ended);
  reader.close();
  sock.destroy();
});

test.serial('a removed member\'s stream is closed and its reconnect refused (SessionExpiredError); another member\'s stream carries the removal', async (t) => {
  const victim = await join(agentTok);
  const ctl = await join(ctlTok);
  const ctlStream = await Raw.open(ctl);
  t.true(await ctlStream.until((l) => l.length >= 1));
  const c = new CoordinatorClient({ url: env.urls[0], insecure: true, answers: { pinned: key.publicKey } });
  // The victim's own client (a verified join pins its vip).
  const vj = await c.join({ ...member('10.41.250.1'), token: agentTok });
  const ac = new AbortController();
  let updates = 0;
  const watching = c.watchPeers(vj.sessionToken, undefined, () => { updates++; }, ac.signal, { reconnectJitterMs: 10 });
  for (let i = 0; i < 100 && updates === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.is(updates, 1, 'positive control: the opening frame (full map) arrived');
  await env.admin.removeNode(vj.vip);
  await t.throwsAsync(watching, { instanceOf: SessionExpiredError });
  t.true(await ctlStream.until((l) => l.some((x) => parseFrameLine(x)!.body !== BEAT_BODY && (body<DeltaFrame>(x).removals ?? []).includes(vj.vip))),
    'the controller saw the removal');
  void victim;
  ctlStream.close();
  ac.abort();
});

test.serial('no change lost: a watch cut again and again, each time reopened on the other coordinator, ends with exactly the coordinator\'s map', async (t) => {
  const me = member('10.41.251.1');
  let coord = 0;
  const cuts: AbortController[] = [];
  // Each connection goes to the next coordinator; the test cuts them at will.
  const fetchAlt = (async (url: string, init: RequestInit) => {
    const ac = new AbortController();
    cuts.push(ac);
    const u = new URL(url);
    const to = new URL(env.urls[coord++ % 2]);
    u.host = to.host;
    return fetch(u, { ...init, signal: AbortSignal.any([init.signal!, ac.signal].filter(Boolean)) });
  }) as unknown as typeof fetch;
  const c = new CoordinatorClient({ url: env.urls[0], insecure: true, fetch: fetchAlt, answers: { pinned: key.publicKey } });
  const j = await c.join({ ...me, token: ctlTok });
  const ac = new AbortController();
  let last: PeerMapUpdate | undefined;
  const watching = c.watchPeers(j.sessionToken, undefined, (u) => { last = u; }, ac.signal, { reconnectJitterMs: 10, minMs: 20, maxMs: 100 });
  const mine: JoinResponse[] = [];
  for (let round = 0; round < 6; round++) {
    mine.push(await join(agentTok, round % 2));
    if (mine.length > 2) await env.client().leave(mine.shift()!.sessionToken);
    await env.admin.setNodeTags(mine[mine.length - 1].vip, { add: [`r${round}`] });
    const n = cuts.length;
    cuts[n - 1].abort(); // cut the stream in flight
    mine.push(await join(agentTok, (round + 1) % 2));
    // Changes while it reconnects, then wait for the new connection before the next cut.
    for (let i = 0; i < 100 && cuts.length === n; i++) await new Promise((r) => setTimeout(r, 20));
  }
  const want = await env.client(1).peers(j.sessionToken);
  const norm = (ps: Iterable<Peer>) => [...ps].map((p) => JSON.stringify(p)).sort();
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    ok = last !== undefined && JSON.stringify(norm(last.peers.values())) === JSON.stringify(norm(want.full ? want.peers : []));
    if (!ok) await new Promise((r) => setTimeout(r, 100));
  }
  t.true(ok, 'the watched map equals the coordinator\'s full map');
  t.true(cuts.length >= 7, `reconnected after each cut (${cuts.length} connections)`);
  t.is(c.refusedAnswers, 0);
  ac.abort();
  await watching;
});

test.serial('a cursor-only join (map: none) answers no peers; the stream\'s opening frame brings the same map a full join carries', async (t) => {
  const full = await join(ctlTok);
  const c = new CoordinatorClient({ url: env.urls[1], insecure: true, answers: { pinned: key.publicKey } });
  const j = await c.join({ ...member('10.41.252.1'), token: ctlTok, map: 'none' });
  t.is(j.map, 'none');
  t.deepEqual(j.peers, []);
  t.true(j.version >= full.version);
  const ac = new AbortController();
  let first: PeerMapUpdate | undefined;
  const watching = c.watchPeers(j.sessionToken, undefined, (u) => { first ??= { ...u, peers: new Map(u.peers) }; ac.abort(); }, ac.signal);
  await watching;
  t.true(first?.full, 'the opening frame is the full map');
  // Positive control: a full join of another controller answers the same agents.
  const again = await c.join({ ...member('10.41.252.2'), token: ctlTok });
  const others = (ps: Iterable<Peer>) => [...ps].filter((p) => p.tags.includes('agent')).map((p) => p.vip).sort();
  t.deepEqual(others(first!.peers.values()), others(again.peers));
  t.true(others(again.peers).length > 0);
});
