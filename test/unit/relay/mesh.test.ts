/**
 * The mesh on in-memory sockets with a Map as the route source: handshake, one-hop delivery
 * with the source vip preserved, holding frames while a route resolves, trust, invalidation.
 */
import test from 'ava';
import { silentLogger } from '../../../common/logger';
import { parseAddr } from '../../../common/ipv4';
import { Mesh, MeshForwardResult, type MeshHome, type MeshRouteSource, type MeshSessionEvent } from '../../../relay/mesh';
import { randomBytes } from 'node:crypto';
import { MeshFrameType, deriveMeshKey, encodeMeshReauth } from '../../../relay/mesh-frame';
import { SessionTable } from '../../../relay/session-table';
import { RelayStats } from '../../../relay/stats';
import { FrameType } from '../../../protocol/relay-frame';
import { MemorySocket } from './memory-socket';

const KEY = deriveMeshKey(Buffer.from('unit test mesh secret ......'));
const A = parseAddr('100.64.0.1');
const B = parseAddr('100.64.0.2');
const R1 = { addr: parseAddr('10.0.0.1'), port: 7001 };
const R2 = { addr: parseAddr('10.0.0.2'), port: 7001 };

class MapRoutes implements MeshRouteSource {
  homes = new Map<number, MeshHome>();
  lookups = 0;
  private l: ((e: MeshSessionEvent | undefined) => void)[] = [];
  async lookupHome(vip: number, selfId: string): Promise<MeshHome | undefined> {
    this.lookups++;
    const h = this.homes.get(vip);
    return h && h.relayId !== selfId ? h : undefined;
  }
  onEvent(l: (e: MeshSessionEvent | undefined) => void): void { this.l.push(l); }
  emit(e: MeshSessionEvent | undefined): void { for (const f of this.l) f(e); }
}

function node(id: string, routes: MapRoutes, key = KEY, wallNow?: () => number) {
  let now = 1000;
  const socket = new MemorySocket();
  const member = new MemorySocket();
  const sessions = new SessionTable();
  const stats = new RelayStats();
  const mesh = new Mesh({ relayId: id, key }, { logger: silentLogger(), clock: { now: () => now, wallMs: wallNow ?? Date.now }, socket, routes });
  mesh.attach({ sessions, memberSocket: member, stats });
  mesh.start();
  return { mesh, socket, member, sessions, stats, advance: (ms: number) => { now += ms; }, stop: () => mesh.stop() };
}

/** A member DATA frame: header (dst vip) + a WireGuard-looking transport message. */
function dataFrame(dst: number, fill = 7): Buffer {
  const f = Buffer.alloc(8 + 48, fill);
  f[0] = FrameType.DATA; f[1] = 0; f[2] = 0; f[3] = 0; f.writeUInt32BE(dst, 4);
  f[8] = 4; f[9] = 0; f[10] = 0; f[11] = 0;
  return f;
}

/** Move everything r1 sent to r2 (from r1's address) and vice versa, until quiet. */
function pump(x: ReturnType<typeof node>, xAddr: typeof R1, y: ReturnType<typeof node>, yAddr: typeof R1): void {
  for (let i = 0; i < 10; i++) {
    const fromX = x.socket.sent.splice(0).filter((d) => d.addr === yAddr.addr && d.port === yAddr.port);
    const fromY = y.socket.sent.splice(0).filter((d) => d.addr === xAddr.addr && d.port === xAddr.port);
    if (fromX.length === 0 && fromY.length === 0) return;
    if (fromX.length) y.socket.inject(fromX.map((d) => ({ buf: d.buf, addr: xAddr.addr, port: xAddr.port })));
    if (fromY.length) x.socket.inject(fromY.map((d) => ({ buf: d.buf, addr: yAddr.addr, port: yAddr.port })));
  }
}

const tick = () => new Promise((r) => setImmediate(r));

test('a frame for a member on another relay is held, then delivered in one hop with the source vip', async (t) => {
  const routes = new MapRoutes();
  const r1 = node('r1', routes);
  const r2 = node('r2', routes);
  t.teardown(() => { r1.stop(); r2.stop(); });
  routes.homes.set(B, { relayId: 'r2', ...R2 });
  r2.sessions.bind(B, parseAddr('192.0.2.2'), 5555, new Uint8Array(32), 0);

  const f = dataFrame(B);
  t.is(r1.mesh.forward(f, 0, f.length, A, B, 1000), MeshForwardResult.HELD);
  await tick();
  // lookup done → HELLO to r2; the ACK makes r2 ready and releases the held frame
  pump(r1, R1, r2, R2);
  t.is(r1.stats.meshSent, 1);
  r2.member.flush();
  const out = r2.member.sent;
  t.is(out.length, 1);
  t.is(out[0].addr, parseAddr('192.0.2.2'));
  t.is(out[0].port, 5555);
  t.is(out[0].buf[0], FrameType.DATA);
  t.is(out[0].buf.readUInt32BE(4), A, 'the source vip is preserved');
  t.deepEqual(out[0].buf.subarray(8), f.subarray(8));
  // Ready now: the next frame goes at once, no lookup.
  const lookups = routes.lookups;
  t.is(r1.mesh.forward(f, 0, f.length, A, B, 1000), MeshForwardResult.SENT);
  t.is(routes.lookups, lookups);
  t.is(r1.mesh.cachedHome(B), 'r2');
});

test('no home anywhere: NONE (the relay answers UNREACHABLE), cached briefly', async (t) => {
  const routes = new MapRoutes();
  const r1 = node('r1', routes);
  t.teardown(() => r1.stop());
  const f = dataFrame(B);
  t.is(r1.mesh.forward(f, 0, f.length, A, B, 1000), MeshForwardResult.HELD);
  await tick();
  t.is(r1.mesh.forward(f, 0, f.length, A, B, 1000), MeshForwardResult.NONE);
  t.is(routes.lookups, 1);
});

test('MESH_DATA from an address that never proved the key is dropped and answered with MESH_REAUTH', (t) => {
  const routes = new MapRoutes();
  const r2 = node('r2', routes);
  t.teardown(() => r2.stop());
  r2.sessions.bind(B, 1, 1, new Uint8Array(32), 0);
  const m = Buffer.alloc(12 + 48, 1);
  m[0] = MeshFrameType.DATA; m.writeUInt32BE(B, 4); m.writeUInt32BE(A, 8);
  r2.socket.inject([{ buf: m, addr: R1.addr, port: R1.port }]);
  t.is(r2.stats.drops['mesh-untrusted'], 1);
  t.is(r2.member.sent.length, 0);
  t.is(r2.socket.sent[0].buf[0], MeshFrameType.REAUTH);
});

test('a HELLO under another key, a replayed HELLO or one from far in the past is refused', async (t) => {
  const routes = new MapRoutes();
  const r1 = node('r1', routes, deriveMeshKey(Buffer.from('the wrong secret, long enough')));
  const r2 = node('r2', routes);
  t.teardown(() => { r1.stop(); r2.stop(); });
  routes.homes.set(B, { relayId: 'r2', ...R2 });
  const f = dataFrame(B);
  r1.mesh.forward(f, 0, f.length, A, B, 1000);
  await tick();
  const hello = r1.socket.sent.find((d) => d.buf[0] === MeshFrameType.HELLO)!;
  pump(r1, R1, r2, R2);
  t.is(r2.stats.drops['mesh-bad-hello'], 1);
  t.false(r1.mesh.peerStates()[0].ready);
  // A genuine HELLO replayed: accepted once, refused the second time.
  const r3 = node('r3', routes);
  t.teardown(() => r3.stop());
  routes.homes.set(A, { relayId: 'r2', ...R2 });
  r3.mesh.forward(dataFrame(A), 0, 56, B, A, 1000);
  await tick();
  const genuine = r3.socket.sent.find((d) => d.buf[0] === MeshFrameType.HELLO)!;
  r2.socket.inject([{ buf: genuine.buf, addr: R1.addr, port: R1.port }]);
  r2.socket.inject([{ buf: genuine.buf, addr: R1.addr, port: R1.port }]);
  t.is(r2.stats.drops['mesh-bad-hello'], 2);
  t.truthy(hello);
  // A relay whose clock is 31 s ahead sees the HELLO as stale.
  const ahead = node('r4', routes, KEY, () => Date.now() + 31_000);
  t.teardown(() => ahead.stop());
  r3.mesh.forward(dataFrame(B), 0, 56, A, B, 1000);
  await tick();
  r3.socket.sent.splice(0);
  routes.homes.set(9, { relayId: 'r9', addr: 1, port: 1 });
  r3.mesh.forward(dataFrame(9), 0, 56, A, 9, 1000);
  await tick();
  const fresh = r3.socket.sent.find((d) => d.buf[0] === MeshFrameType.HELLO)!;
  ahead.socket.inject([{ buf: fresh.buf, addr: R1.addr, port: R1.port }]);
  t.is(ahead.stats.drops['mesh-bad-hello'], 1);
});

test('session events re-point routes at once and drop a stale local binding', async (t) => {
  const routes = new MapRoutes();
  const r1 = node('r1', routes);
  const r2 = node('r2', routes);
  t.teardown(() => { r1.stop(); r2.stop(); });
  routes.homes.set(B, { relayId: 'r2', ...R2 });
  r2.sessions.bind(B, 9, 9, new Uint8Array(32), 0);
  r1.mesh.forward(dataFrame(B), 0, 56, A, B, 1000);
  await tick();
  pump(r1, R1, r2, R2);
  t.is(r1.mesh.cachedHome(B), 'r2');
  // B re-authenticates at r1: r1's own event removes the route (B is local now) ...
  routes.emit({ type: 'session-up', vip: B, relayId: 'r1' });
  t.is(r1.mesh.cachedHome(B), undefined);
  // ... and r2, which still had B bound, lets go of it.
  t.is(r2.sessions.byOverlay(B), undefined);
  // B moves back to r2: r1 learns it from the event without a lookup.
  const lookups = routes.lookups;
  routes.emit({ type: 'session-up', vip: B, relayId: 'r2' });
  t.is(r1.mesh.cachedHome(B), 'r2');
  t.is(routes.lookups, lookups);
  routes.emit({ type: 'session-down', vip: B, relayId: 'r2' });
  t.is(r1.mesh.cachedHome(B), undefined);
});

test('events resubscribed (Redis restart or failover): known routes are served while revalidated, negative ones are forgotten', async (t) => {
  const routes = new MapRoutes();
  const r1 = node('r1', routes);
  const r2 = node('r2', routes);
  t.teardown(() => { r1.stop(); r2.stop(); });
  const C = parseAddr('100.64.0.3');
  routes.homes.set(B, { relayId: 'r2', ...R2 });
  r2.sessions.bind(B, 9, 9, new Uint8Array(32), 0);
  const f = dataFrame(B);
  r1.mesh.forward(f, 0, f.length, A, B, 1000);
  await tick();
  pump(r1, R1, r2, R2);
  t.is(r1.mesh.forward(dataFrame(C), 0, 56, A, C, 1000), MeshForwardResult.HELD);
  await tick();
  t.is(r1.mesh.forward(dataFrame(C), 0, 56, A, C, 1000), MeshForwardResult.NONE, 'C: nowhere, cached negative');
  const lookups = routes.lookups;
  routes.emit(undefined);
  // B: the frame goes out at once on the route we had, and a lookup re-checks it.
  const sentBefore = r1.stats.meshSent;
  t.is(r1.mesh.forward(f, 0, f.length, A, B, 1000), MeshForwardResult.SENT);
  t.is(r1.stats.meshSent, sentBefore + 1);
  t.is(routes.lookups, lookups + 1, 'B revalidated');
  await tick();
  t.is(r1.mesh.cachedHome(B), 'r2');
  // C joined at r2 while events were missed: the negative entry is gone, so it is looked up.
  routes.homes.set(C, { relayId: 'r2', ...R2 });
  t.is(r1.mesh.forward(dataFrame(C), 0, 56, A, C, 1000), MeshForwardResult.HELD, 'C: held while looked up');
  t.is(routes.lookups, lookups + 2);
  await tick();
  t.is(r1.mesh.cachedHome(C), 'r2');
  t.is(r1.stats.meshSent, sentBefore + 2, 'the held frame for C went to r2');
  // Positive control for the revalidation: B moved while events were missed; the lookup after
  // the next resubscription corrects the route.
  routes.homes.set(B, { relayId: 'r3', addr: parseAddr('10.0.0.3'), port: 7001 });
  routes.emit(undefined);
  r1.mesh.forward(f, 0, f.length, A, B, 1000);
  await tick();
  t.is(r1.mesh.cachedHome(B), 'r3');
});

test('MESH_REAUTH makes the sender handshake again', async (t) => {
  const routes = new MapRoutes();
  const r1 = node('r1', routes);
  const r2 = node('r2', routes);
  t.teardown(() => { r1.stop(); r2.stop(); });
  routes.homes.set(B, { relayId: 'r2', ...R2 });
  r2.sessions.bind(B, 9, 9, new Uint8Array(32), 0);
  r1.mesh.forward(dataFrame(B), 0, 56, A, B, 1000);
  await tick();
  pump(r1, R1, r2, R2);
  const reauth = encodeMeshReauth({ timestampMs: Date.now(), nonce: randomBytes(16), relayId: 'r2' }, KEY);
  r1.socket.inject([{ buf: reauth, addr: R2.addr, port: R2.port }]);
  t.false(r1.mesh.peerStates()[0].ready);
  t.is(r1.mesh.peerStates()[0].reauths, 1);
  pump(r1, R1, r2, R2);
  t.true(r1.mesh.peerStates()[0].ready);
});

test('hostile: forged, replayed, stale, misaddressed and old-style MESH_REAUTHs from the peer\'s address are dropped and counted; a genuine one takes effect', async (t) => {
  const routes = new MapRoutes();
  const r1 = node('r1', routes);
  const r2 = node('r2', routes);
  t.teardown(() => { r1.stop(); r2.stop(); });
  routes.homes.set(B, { relayId: 'r2', ...R2 });
  r2.sessions.bind(B, 9, 9, new Uint8Array(32), 0);
  r1.mesh.forward(dataFrame(B), 0, 56, A, B, 1000);
  await tick();
  pump(r1, R1, r2, R2);
  t.true(r1.mesh.peerStates()[0].ready);
  const genuine = (over: Partial<{ timestampMs: number; relayId: string }> = {}, k = KEY) =>
    encodeMeshReauth({ timestampMs: Date.now(), nonce: randomBytes(16), relayId: 'r2', ...over }, k);
  const used = genuine();
  const forged: [string, Buffer, typeof R2][] = [
    ['the old 4-byte form', Buffer.from([MeshFrameType.REAUTH, 0, 0, 0]), R2],
    ['MACed with another mesh key', genuine({}, deriveMeshKey(Buffer.from('not the cluster\'s mesh secret ....'))), R2],
    ['a flipped MAC byte', (() => { const f = genuine(); f[f.length - 1] ^= 1; return f; })(), R2],
    ['a stale timestamp', genuine({ timestampMs: Date.now() - 120_000 }), R2],
    ['naming a relay that is not our peer', genuine({ relayId: 'r9' }), R2],
    ['naming ourselves', genuine({ relayId: 'r1' }), R2],
    ['genuine, but from another address than the peer\'s', genuine(), { addr: parseAddr('10.0.0.66'), port: 7001 }],
  ];
  for (const [what, buf, from] of forged) {
    r1.socket.inject([{ buf, addr: from.addr, port: from.port }]);
    t.true(r1.mesh.peerStates()[0].ready, what);
    t.is(r1.socket.sent.length, 0, `${what}: no HELLO sent`);
  }
  t.is(r1.stats.drops['mesh-bad-reauth'], forged.length);
  t.is(r1.mesh.peerStates()[0].reauths, 0);

  // Positive control in the same setup: a genuine one from r2's address takes effect...
  r1.socket.inject([{ buf: used, addr: R2.addr, port: R2.port }]);
  t.false(r1.mesh.peerStates()[0].ready, 'the genuine REAUTH takes effect');
  t.is(r1.mesh.peerStates()[0].reauths, 1);
  t.is(r1.socket.sent.filter((d) => d.buf[0] === MeshFrameType.HELLO).length, 1, 'and r1 says HELLO again');
  pump(r1, R1, r2, R2);
  t.true(r1.mesh.peerStates()[0].ready);
  // ...once: the same frame replayed is dropped.
  r1.socket.inject([{ buf: used, addr: R2.addr, port: R2.port }]);
  t.true(r1.mesh.peerStates()[0].ready, 'a replayed REAUTH changes nothing');
  t.is(r1.stats.drops['mesh-bad-reauth'], forged.length + 1);
  t.is(r1.mesh.peerStates()[0].reauths, 1);
});

test('the REAUTH a relay sends is one its peer accepts (untrusted MESH_DATA → REAUTH → HELLO)', async (t) => {
  const routes = new MapRoutes();
  const r1 = node('r1', routes);
  let r2 = node('r2', routes);
  t.teardown(() => { r1.stop(); r2.stop(); });
  routes.homes.set(B, { relayId: 'r2', ...R2 });
  r2.sessions.bind(B, 9, 9, new Uint8Array(32), 0);
  r1.mesh.forward(dataFrame(B), 0, 56, A, B, 1000);
  await tick();
  pump(r1, R1, r2, R2);
  // r2 restarts: it trusts nobody; r1's next MESH_DATA is answered with a REAUTH r1 honours.
  r2.stop();
  r2 = node('r2', routes);
  r2.sessions.bind(B, 9, 9, new Uint8Array(32), 0);
  r1.socket.sent.length = 0;
  t.is(r1.mesh.forward(dataFrame(B), 0, 56, A, B, 1000), MeshForwardResult.SENT);
  r1.socket.flush?.();
  const toR2 = r1.socket.sent.splice(0);
  r2.socket.inject(toR2.map((d) => ({ buf: d.buf, addr: R1.addr, port: R1.port })));
  t.is(r2.stats.drops['mesh-untrusted'], 1);
  const reauth = r2.socket.sent.splice(0);
  t.is(reauth.length, 1);
  t.is(reauth[0].buf[0], MeshFrameType.REAUTH);
  r1.socket.inject([{ buf: reauth[0].buf, addr: R2.addr, port: R2.port }]);
  t.is(r1.mesh.peerStates()[0].reauths, 1, 'honoured');
  t.is(r1.stats.drops['mesh-bad-reauth'], 0);
  pump(r1, R1, r2, R2);
  t.true(r1.mesh.peerStates()[0].ready);
});
