/**
 * The peer map on disk (node-agent/state-dir.ts MembershipWriter): written at most once per
 * interval while it changes, the newest state wins, and what waits is written at stop — so
 * a restart without the coordinator starts from the last map. Real files in a temp dir.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MembershipWriter, StateDir, type Membership } from '../../../node-agent/state-dir';
import { MembershipClient } from '../../../node-agent/membership';
import { silentLogger } from '../../../common/logger';
import type { Peer as PeerEntry } from '../../../coordinator';

function dir(t: { teardown(f: () => void): void }): StateDir {
  const d = mkdtempSync(join(tmpdir(), 'isthmus-writer-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return new StateDir(d);
}

function map(version: number): Membership {
  const peers = Array.from({ length: 3 }, (_, i) => ({ vip: `100.64.0.${i + 2}`, publicKey: `k${i}`, version } as unknown as PeerEntry));
  return { vip: '100.64.0.1', cidr: '100.64.0.0/10', version, peers };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a burst of changes is one write now and one at flush, and the last state is on disk', async (t) => {
  const state = dir(t);
  const errors: Error[] = [];
  const w = new MembershipWriter(state, (e) => errors.push(e), 60_000);
  w.save(map(1));
  await until('the first write', () => w.writes === 1);
  t.is(state.loadMembership()?.version, 1, 'the first change is written at once');
  for (let v = 2; v <= 500; v++) w.save(map(v));
  await new Promise((r) => setTimeout(r, 100));
  t.is(w.writes, 1, '499 more changes inside the interval: no write yet');
  t.is(state.loadMembership()?.version, 1);
  t.true(w.dirty);
  w.flush(); // shutdown
  t.is(w.writes, 2);
  t.false(w.dirty);
  t.is(state.loadMembership()?.version, 500, 'the newest map is on disk');
  t.deepEqual(readdirSync(state.dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left (atomic rename)');
  w.flush();
  t.is(w.writes, 2, 'nothing waits: flush writes nothing');
  t.deepEqual(errors, []);
});

test('after the interval the waiting state is written without a flush', async (t) => {
  const state = dir(t);
  const w = new MembershipWriter(state, (e) => t.fail(e.message), 50);
  w.save(map(1));
  await until('first', () => w.writes === 1);
  w.save(map(2));
  w.save(map(3));
  await until('second', () => w.writes === 2);
  t.is(state.loadMembership()?.version, 3);
  w.discard();
});

test('discard (the member left): what waited is never written', async (t) => {
  const state = dir(t);
  const w = new MembershipWriter(state, (e) => t.fail(e.message), 60_000);
  w.save(map(1));
  await until('first', () => w.writes === 1);
  w.save(map(2));
  w.discard();
  state.clear();
  w.flush();
  await new Promise((r) => setTimeout(r, 50));
  t.false(existsSync(join(state.dir, 'membership.json')), 'nothing brought the file back');
  // Positive control: the same writer still writes what it is given afterwards.
  w.save(map(3));
  w.flush();
  t.is(state.loadMembership()?.version, 3);
});

test('a write that fails is reported, not thrown, and the next one succeeds', (t) => {
  const base = mkdtempSync(join(tmpdir(), 'isthmus-writer-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const state = new StateDir(join(base, 'state'));
  const errors: Error[] = [];
  const w = new MembershipWriter(state, (e) => errors.push(e), 60_000);
  // The state dir's path is taken by a file: mkdir fails.
  writeFileSync(join(base, 'state'), 'not a directory');
  w.save(map(1));
  t.notThrows(() => w.flush());
  t.is(errors.length, 1);
  t.is(w.writes, 0);
  rmSync(join(base, 'state'));
  w.save(map(2));
  w.flush();
  t.is(w.writes, 1);
  t.is(state.loadMembership()?.version, 2);
});

test('MembershipClient.stop() writes the newest peer map', (t) => {
  const state = dir(t);
  const m = new MembershipClient({ coordinatorUrl: 'http://127.0.0.1:9', originalIp: '10.0.0.1', insecureCoordinator: true, membershipSaveIntervalMs: 60_000 }, state, silentLogger());
  m.saved.save(map(1));
  m.saved.flush();
  m.saved.save(map(7));
  t.is(state.loadMembership()?.version, 1, 'debounced: not yet');
  m.stop();
  t.is(state.loadMembership()?.version, 7, 'on disk after stop');
});
