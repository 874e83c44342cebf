/**
 * watchPeers waits a random [0, repollJitterMs) before re-polling after an answer that changed
 * something (so one change does not make every member re-poll in the same millisecond), and
 * not after an empty answer. The coordinator is a stub fetch (unsigned answers: no `answers`
 * option); only lower bounds on time are checked.
 */
import test from 'ava';
import { CoordinatorClient, REPOLL_JITTER_MS } from '../../../coordinator/client';
import type { PeersResponse } from '../../../coordinator/types';

const peer = (vip: string) => ({ vip, originalIp: '10.0.0.1', publicKey: Buffer.alloc(32, 1).toString('base64'), hostname: 'h', tags: [] });

/** A stub coordinator answering `answers` in turn; the caller's signal is aborted after the last one is fetched. */
function stub(answers: PeersResponse[], ac: AbortController) {
  const calls: number[] = [];
  const fetch = (async () => {
    calls.push(performance.now());
    const a = answers[calls.length - 1];
    if (calls.length >= answers.length) ac.abort();
    return new Response(JSON.stringify(a), { status: 200, headers: { 'content-type': 'application/json' } });
  }) as unknown as typeof globalThis.fetch;
  return { calls, client: new CoordinatorClient({ url: 'http://coordinator.invalid', insecure: true, fetch }) };
}

test('the default re-poll jitter is at most 250 ms', (t) => {
  t.true(REPOLL_JITTER_MS > 0 && REPOLL_JITTER_MS <= 250);
});

test('after an answer that changed something, the next poll waits random() × repollJitterMs', async (t) => {
  const ac = new AbortController();
  const { calls, client } = stub([
    { full: true, version: 1, peers: [peer('100.64.0.2')] },
    { full: false, version: 2, upserts: [peer('100.64.0.3')], removals: [] },
    { full: false, version: 2, upserts: [], removals: [] },
  ], ac);
  const draws: number[] = [];
  const updates: number[] = [];
  await client.watchPeers('iss_x', 0, (u) => updates.push(u.version), ac.signal,
    { repollJitterMs: 200, random: () => { draws.push(0.75); return 0.75; } });
  t.deepEqual(updates, [1, 2]);
  t.is(calls.length, 3);
  t.is(draws.length, 2, 'one draw per answer that changed something');
  // 0.75 × 200 = 150 ms before each re-poll (timers never fire early; allow 1 ms of clock rounding).
  t.true(calls[1] - calls[0] >= 149, `gap ${calls[1] - calls[0]} ms`);
  t.true(calls[2] - calls[1] >= 149, `gap ${calls[2] - calls[1]} ms`);
});

test('an empty answer (the long-poll timed out) is re-polled without a draw; repollJitterMs 0 draws no wait', async (t) => {
  const ac = new AbortController();
  const { calls, client } = stub([
    { full: false, version: 1, upserts: [], removals: [] },
    { full: false, version: 1, upserts: [], removals: [] },
  ], ac);
  let draws = 0;
  await client.watchPeers('iss_x', 1, () => t.fail('no update'), ac.signal, { repollJitterMs: 200, random: () => { draws++; return 0.99; } });
  t.is(calls.length, 2);
  t.is(draws, 0);

  // Positive control in the same shape: a changing answer with jitter 0 draws but sleeps 0.
  const ac2 = new AbortController();
  const s2 = stub([{ full: true, version: 1, peers: [] }, { full: false, version: 1, upserts: [], removals: [] }], ac2);
  let draws2 = 0;
  await s2.client.watchPeers('iss_x', 0, () => undefined, ac2.signal, { repollJitterMs: 0, random: () => { draws2++; return 0.99; } });
  t.is(s2.calls.length, 2);
  t.is(draws2, 1);
});
