/**
 * The client side of the peer-map stream (CoordinatorClient.watchPeers, coordinator/stream-frames.ts):
 * a stub coordinator that signs with a test key it owns serves genuine and hostile frames; every
 * hostile frame (replayed, another view's, another member's, forged, unsigned, an opening frame
 * for another request) is refused next to the genuine frame the same stream accepts; a silent
 * stream is reopened, one with heartbeats is kept; a stream the coordinator ends is reopened from
 * the cursor after a jittered wait.
 */
import test from 'ava';
import { createPrivateKey } from 'node:crypto';
import { CoordinatorClient } from '../../../coordinator/client';
import { generateSigningKey, signAnswer, NONCE_HEADER } from '../../../coordinator/answer-signing';
import { BEAT_LINE, frameLine, memberScope, viewScope } from '../../../coordinator/stream-frames';
import type { Peer } from '../../../coordinator/types';

const key = generateSigningKey();
const priv = createPrivateKey(key.pem);
const other = createPrivateKey(generateSigningKey().pem);
const VIP = '100.64.0.2';
const peer = (vip: string): Peer => ({ vip, originalIp: '10.0.0.1', publicKey: Buffer.alloc(32, vip.length).toString('base64'), hostname: 'h', tags: [] });

type Req = { nonce: string; since: number | undefined };
/** The opening frame a coordinator would send to this request (signed for VIP, its since and nonce). */
function open(r: Req, version: number, o: { view?: string; peers?: Peer[]; nonce?: string; heartbeatMs?: number } = {}): string {
  const head = { type: 'open', vip: VIP, view: o.view ?? 'A', version, heartbeatMs: o.heartbeatMs ?? 60_000 };
  const body = JSON.stringify(r.since === undefined ? { ...head, full: true, peers: o.peers ?? [peer(VIP)] } : { ...head, full: false, from: r.since, upserts: [], removals: [] });
  return frameLine(body, { signature: signAnswer(priv, { route: 'stream', member: VIP, since: r.since === undefined ? '-' : String(r.since), nonce: o.nonce ?? r.nonce }, body) }).toString();
}
/** A delta frame; signed for its own scope and from unless told otherwise. */
function delta(scope: string, from: number, to: number, upserts: Peer[], o: { key?: typeof priv | null; view?: string; tamper?: (b: string) => string } = {}): string {
  const body = JSON.stringify({ type: 'delta', scope, from, to, upserts, removals: [], ...(o.view ? { view: o.view } : {}) });
  const sig = o.key === null ? undefined : { signature: signAnswer(o.key ?? priv, { scope, from: String(from) }, body) };
  return frameLine(o.tamper ? o.tamper(body) : body, sig).toString();
}

/** A stub coordinator: connection i is served `scenes[i](request)` (lines; `hold`: keep it open after them). */
function stub(scenes: Array<(r: Req) => { lines: string[]; hold?: boolean; beatEveryMs?: number }>, ac: AbortController) {
  const reqs: Array<Req & { at: number }> = [];
  const fetch = (async (url: string, init: RequestInit) => {
    const u = new URL(url);
    const r = { nonce: (init.headers as Record<string, string>)[NONCE_HEADER], since: u.searchParams.has('since') ? Number(u.searchParams.get('since')) : undefined };
    reqs.push({ ...r, at: performance.now() });
    const scene = scenes[reqs.length - 1];
    if (!scene) {
      ac.abort();
      throw new Error('no more scenes');
    }
    const s = scene(r);
    let beat: NodeJS.Timeout | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const l of s.lines) c.enqueue(new TextEncoder().encode(l));
        if (s.beatEveryMs) beat = setInterval(() => c.enqueue(new TextEncoder().encode(BEAT_LINE)), s.beatEveryMs);
        if (!s.hold) c.close();
        init.signal?.addEventListener('abort', () => { clearInterval(beat); try { c.error(new Error('aborted')); } catch { /* closed */ } });
      },
      cancel() { clearInterval(beat); },
    });
    return new Response(body, { status: 200 });
  }) as unknown as typeof globalThis.fetch;
  const client = new CoordinatorClient({ url: 'http://coordinator.invalid', insecure: true, fetch, answers: { pinned: key.publicKey } });
  // As after a verified join: the client knows its vip.
  (client as unknown as { memberVip: string }).memberVip = VIP;
  return { reqs, client };
}

async function watch(scenes: Parameters<typeof stub>[0], since?: number) {
  const ac = new AbortController();
  const { reqs, client } = stub(scenes, ac);
  const updates: Array<{ version: number; vips: string[] }> = [];
  await client.watchPeers('iss_x', since, (u) => updates.push({ version: u.version, vips: [...u.peers.keys()].sort() }), ac.signal,
    { reconnectJitterMs: 0, minMs: 1, maxMs: 2 });
  return { reqs, client, updates };
}

test('a replayed frame (an old one, from a version no longer held) is refused; the genuine one before it applied; the watch reopens from its cursor', async (t) => {
  const { reqs, client, updates } = await watch([
    (r) => {
      const genuine = delta(viewScope('A'), 10, 11, [peer('100.64.0.3')]);
      return { lines: [open(r, 10), genuine, genuine] };
    },
    (r) => ({ lines: [open(r, 11)] }),
  ]);
  t.deepEqual(updates, [{ version: 10, vips: [VIP] }, { version: 11, vips: [VIP, '100.64.0.3'] }], 'the genuine frame applied, once');
  t.is(client.refusedAnswers, 1, 'the replay refused');
  t.is(reqs[1].since, 11, 'reopened from the version held');
});

test('a frame for another view, or scoped to another member, is refused; genuine view and member frames are accepted, and a member frame moves the view', async (t) => {
  const { client, updates } = await watch([
    (r) => ({ lines: [open(r, 10), delta(viewScope('B'), 10, 11, [peer('100.64.0.66')])] }),
    (r) => ({ lines: [open(r, 10), delta(memberScope('100.64.0.9'), 10, 11, [peer('100.64.0.66')])] }),
    (r) => ({ lines: [open(r, 10),
      delta(viewScope('A'), 10, 11, [peer('100.64.0.3')]),
      delta(memberScope(VIP), 11, 12, [peer('100.64.0.4')], { view: 'C' }),
      delta(viewScope('A'), 12, 13, [peer('100.64.0.66')])] }),
    (r) => ({ lines: [open(r, 12, { view: 'C' }), delta(viewScope('C'), 12, 13, [peer('100.64.0.5')])] }),
  ]);
  t.is(client.refusedAnswers, 3, 'view B, member .9, and view A after the member moved to view C');
  const vips = updates[updates.length - 1].vips;
  t.deepEqual(vips, [VIP, '100.64.0.3', '100.64.0.4', '100.64.0.5'], 'every genuine frame applied');
  t.false(vips.includes('100.64.0.66'), 'nothing from a refused frame');
});

test('forged frames (changed body, another key, unsigned) and an opening frame for another request are refused; the genuine frame is accepted', async (t) => {
  const { client, updates } = await watch([
    (r) => ({ lines: [open(r, 10), delta(viewScope('A'), 10, 11, [peer('100.64.0.3')], { tamper: (b) => b.replace('100.64.0.3', '100.64.0.66') })] }),
    (r) => ({ lines: [open(r, 10), delta(viewScope('A'), 10, 11, [peer('100.64.0.66')], { key: other })] }),
    (r) => ({ lines: [open(r, 10), delta(viewScope('A'), 10, 11, [peer('100.64.0.66')], { key: null })] }),
    (r) => ({ lines: [open(r, 10, { nonce: 'an-older-requests-nonce-000' })] }),
    (r) => ({ lines: [open(r, 10), delta(viewScope('A'), 10, 11, [peer('100.64.0.3')])] }),
  ], 10);
  t.is(client.refusedAnswers, 4);
  t.deepEqual(updates, [{ version: 11, vips: ['100.64.0.3'] }], 'only the genuine frame reached the map');
});

test('a stream that goes silent past 3 heartbeats is reopened; one with heartbeats is kept', async (t) => {
  const ac = new AbortController();
  const { reqs, client } = stub([
    (r) => ({ lines: [open(r, 10, { heartbeatMs: 40 })], hold: true, beatEveryMs: 20 }),
    (r) => ({ lines: [open(r, 10, { heartbeatMs: 40 })], hold: true }),
    (r) => ({ lines: [open(r, 10, { heartbeatMs: 40 })], hold: true }),
  ], ac);
  const watching = client.watchPeers('iss_x', 10, () => undefined, ac.signal, { reconnectJitterMs: 0, minMs: 1, maxMs: 2 });
  // Positive control: the stream with heartbeats stays up (its beats keep arriving) well past 3 heartbeats.
  await new Promise((r) => setTimeout(r, 400));
  t.is(reqs.length, 1, 'kept while it beats');
  ac.abort();
  await watching;

  const ac2 = new AbortController();
  const s2 = stub([
    (r) => ({ lines: [open(r, 10, { heartbeatMs: 40 })], hold: true }),
    (r) => ({ lines: [open(r, 10, { heartbeatMs: 40 })], hold: true }),
  ], ac2);
  const w2 = s2.client.watchPeers('iss_x', 10, () => undefined, ac2.signal, { reconnectJitterMs: 0, minMs: 1, maxMs: 2 });
  for (let i = 0; i < 100 && s2.reqs.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  t.is(s2.reqs.length, 2, 'the silent stream was reopened');
  t.is(s2.reqs[1].since, 10);
  ac2.abort();
  await w2;
});

test('a stream the coordinator ends is reopened after random() × reconnectJitterMs', async (t) => {
  const ac = new AbortController();
  const { reqs, client } = stub([(r) => ({ lines: [open(r, 10)] }), (r) => ({ lines: [open(r, 10)] })], ac);
  const draws: number[] = [];
  await client.watchPeers('iss_x', 10, () => undefined, ac.signal, { reconnectJitterMs: 200, random: () => { draws.push(0.75); return 0.75; } });
  t.true(draws.length >= 1);
  // 0.75 × 200 = 150 ms (timers never fire early; 1 ms of clock rounding).
  t.true(reqs[1].at - reqs[0].at >= 149, `gap ${reqs[1].at - reqs[0].at} ms`);
});
