import test from 'ava';
import nacl from 'tweetnacl';
import { parseAddr } from '../../common/ipv4';
import { proveKey } from '../../protocol/key-proof';
import {
  AuthFailReason, FrameType, decodeAuthFail, decodeChallenge, encodeAuth, encodeHello, encodePing, writeRelayHeader,
} from '../../protocol/relay-frame';
import { directoryOf, fakeWg, identity, rawPeer, relaySocketKinds, startMember, startRelay, until } from './relay-harness';

for (const kind of relaySocketKinds()) {

test(`[${kind}] two members authenticate and exchange DATA both ways; the relay rewrites the source vip`, async (t) => {
  const a = identity('100.64.0.1');
  const b = identity('100.64.0.2');
  const r = await startRelay(directoryOf([a, b]), 0, kind);
  const ma = await startMember(a, r.port);
  const mb = await startMember(b, r.port);
  t.teardown(() => { ma.close(); mb.close(); r.stop(); });
  await until(() => ma.client.isReady && mb.client.isReady, 'both ready');
  t.is(ma.client.relayId, 'it-relay');

  const m1 = fakeWg(100);
  const m2 = fakeWg(1400);
  ma.sendData(b.vip, m1);
  mb.sendData(a.vip, m2);
  await until(() => ma.received.length === 1 && mb.received.length === 1, 'both DATA frames');
  t.is(mb.received[0].srcVip, a.vip);
  t.deepEqual(mb.received[0].payload, m1);
  t.is(ma.received[0].srcVip, b.vip);
  t.deepEqual(ma.received[0].payload, m2);

  // Keepalives flow and are answered.
  await until(() => ma.client.stats.pongsReceived >= 1, 'a PONG');
  const s = r.relay.stats();
  t.is(s.framesForwarded, 2);
  t.is(s.bytesForwarded, 8 + 100 + 8 + 1400);
  t.true(s.authOk >= 2, 'a HELLO retry under load may authenticate twice');
  t.is(s.sessions, 2);
});

test(`[${kind}] bad auth, replays, unbound sources, garbage and unknown destinations are counted drops; the relay keeps serving`, async (t) => {
  const a = identity('100.64.0.1');
  const b = identity('100.64.0.2');
  const d = identity('100.64.0.4');
  const stranger = identity('100.64.0.3');
  const r = await startRelay(directoryOf([a, b, d]), 0, kind);
  const ma = await startMember(a, r.port);
  const mb = await startMember(b, r.port);
  const raw = await rawPeer();
  const raw2 = await rawPeer();
  const ms = await startMember(stranger, r.port);
  t.teardown(() => { ma.close(); mb.close(); ms.close(); raw.close(); raw2.close(); r.stop(); });
  await until(() => ma.client.isReady && mb.client.isReady, 'both ready');

  // A key not in the directory.
  const fails: number[] = [];
  ms.client.on('auth-failed', (reason) => fails.push(reason));
  await until(() => fails.length > 0, 'AUTH_FAIL for the stranger');
  t.is(fails[0], AuthFailReason.UNKNOWN_KEY);
  t.false(ms.client.isReady);
  ms.close();

  const challenge = async (): Promise<ReturnType<typeof decodeChallenge>> => {
    raw.replies.length = 0;
    raw.send(r.port, encodeHello());
    await until(() => raw.replies.length > 0, 'CHALLENGE');
    return decodeChallenge(raw.replies[0], 0, raw.replies[0].length);
  };
  const lastFail = async (p: typeof raw): Promise<number | undefined> => {
    await until(() => p.replies.some((x) => x[0] === FrameType.AUTH_FAIL), 'AUTH_FAIL');
    const f = p.replies.find((x) => x[0] === FrameType.AUTH_FAIL)!;
    return decodeAuthFail(f, 0, f.length);
  };

  // A wrong proof (right key, proof made for another nonce).
  let ch = (await challenge())!;
  const wrongProof = proveKey(d.kp.secretKey, d.kp.publicKey, ch.ephemeralPublic, new Uint8Array(16), 'relay');
  raw.replies.length = 0;
  raw.send(r.port, encodeAuth({ version: 1, claimedVip: d.vip, staticPublic: d.kp.publicKey, ephemeralPublic: ch.ephemeralPublic, nonce: ch.nonce, proof: wrongProof }));
  t.is(await lastFail(raw), AuthFailReason.BAD_PROOF);

  // The right key claiming someone else's address.
  ch = (await challenge())!;
  const proofD = proveKey(d.kp.secretKey, d.kp.publicKey, ch.ephemeralPublic, ch.nonce, 'relay');
  raw.replies.length = 0;
  raw.send(r.port, encodeAuth({ version: 1, claimedVip: a.vip, staticPublic: d.kp.publicKey, ephemeralPublic: ch.ephemeralPublic, nonce: ch.nonce, proof: proofD }));
  t.is(await lastFail(raw), AuthFailReason.VIP_MISMATCH);
  t.is(r.relay.stats().sessions, 2, 'the mismatch did not bind');

  // A correct AUTH, then the same AUTH replayed from the same and from another 4-tuple.
  ch = (await challenge())!;
  const good = encodeAuth({ version: 1, claimedVip: d.vip, staticPublic: d.kp.publicKey, ephemeralPublic: ch.ephemeralPublic, nonce: ch.nonce, proof: proveKey(d.kp.secretKey, d.kp.publicKey, ch.ephemeralPublic, ch.nonce, 'relay') });
  raw.replies.length = 0;
  raw.send(r.port, good);
  await until(() => raw.replies.some((x) => x[0] === FrameType.AUTH_OK), 'AUTH_OK for d');
  raw.replies.length = 0;
  raw.send(r.port, good);
  t.is(await lastFail(raw), AuthFailReason.REPLAYED);
  raw2.send(r.port, good);
  t.is(await lastFail(raw2), AuthFailReason.STALE_CHALLENGE);

  // DATA and PING from an unbound 4-tuple: REAUTH.
  raw2.replies.length = 0;
  const data = Buffer.alloc(8 + 48);
  fakeWg(48).copy(data, 8);
  writeRelayHeader(data, 0, FrameType.DATA, a.vip);
  raw2.send(r.port, data);
  await until(() => raw2.replies.some((x) => x[0] === FrameType.REAUTH), 'REAUTH');
  raw2.send(r.port, encodePing(FrameType.PING, 1));

  // Garbage.
  for (let i = 0; i < 200; i++) raw2.send(r.port, nacl.randomBytes(i % 90));
  raw2.send(r.port, Buffer.from([1, 0, 0, 0, 5, 6, 7, 8, 9, 10, 11, 12])); // a bare WireGuard-looking message

  // Unknown destination: UNREACHABLE reaches the member's callback.
  ma.sendData(parseAddr('100.64.0.99'), fakeWg());
  await until(() => ma.unreachable.length === 1, 'UNREACHABLE');
  t.is(ma.unreachable[0], parseAddr('100.64.0.99'));

  // Still serving.
  const m = fakeWg(200);
  ma.sendData(b.vip, m);
  await until(() => mb.received.length === 1, 'DATA after the abuse');
  t.deepEqual(mb.received[0].payload, m);

  await until(() => r.relay.stats().framesReceived >= 200, 'garbage received');
  const s = r.relay.stats();
  t.true(s.drops['auth-unknown-key'] >= 1);
  t.is(s.drops['auth-failed'], 1);
  t.is(s.drops['auth-vip-mismatch'], 1);
  t.is(s.drops['auth-replayed'], 1);
  t.is(s.drops['auth-bad-challenge'], 1);
  t.true(s.drops['unbound-source'] >= 2);
  t.true(s.drops['unknown-destination'] >= 1);
  t.true(s.drops.malformed + s.drops['too-short'] + s.drops['unknown-type'] + s.drops['unexpected-type'] > 50);
  t.true(s.drops.malformed >= 1);
  t.is(s.sessions, 3);
});

test(`[${kind}] relay restart: members get REAUTH and re-authenticate by themselves`, async (t) => {
  const a = identity('100.64.0.1');
  const b = identity('100.64.0.2');
  const dir = directoryOf([a, b]);
  let r = await startRelay(dir, 0, kind);
  const port = r.port;
  const ma = await startMember(a, port, { keepaliveMs: 5000 });
  const mb = await startMember(b, port, { keepaliveMs: 5000 });
  t.teardown(() => { ma.close(); mb.close(); r.stop(); });
  await until(() => ma.client.isReady && mb.client.isReady, 'both ready');

  r.stop();
  r = await startRelay(dir, port, kind);
  t.is(r.relay.stats().sessions, 0);
  // The members' next frames reach a relay that does not know them.
  ma.sendData(b.vip, fakeWg());
  mb.sendData(a.vip, fakeWg());
  await until(() => ma.client.stats.reauthReceived >= 1 && mb.client.stats.reauthReceived >= 1, 'REAUTH at both');
  await until(() => ma.client.isReady && mb.client.isReady && r.relay.stats().sessions === 2, 'both re-authenticated');
  t.true(ma.client.stats.authOk >= 2);
  const m = fakeWg(300);
  ma.sendData(b.vip, m);
  await until(() => mb.received.length === 1, 'DATA through the new relay');
  t.deepEqual(mb.received[0].payload, m);
  t.is(mb.received[0].srcVip, a.vip);
});

test(`[${kind}] a silent relay is reported dead; when it comes back the member re-authenticates`, async (t) => {
  const a = identity('100.64.0.1');
  const dir = directoryOf([a]);
  let r = await startRelay(dir, 0, kind);
  const port = r.port;
  const ma = await startMember(a, port, { keepaliveMs: 100 });
  t.teardown(() => { ma.close(); r.stop(); });
  await until(() => ma.client.isReady, 'ready');
  let dead = 0;
  ma.client.on('relay-dead', () => dead++);
  r.stop();
  await until(() => dead === 1, 'relay-dead');
  t.false(ma.client.isReady);
  r = await startRelay(dir, port, kind);
  await until(() => ma.client.isReady, 're-authenticated', 4000);
  t.is(dead, 1, 'reported once');
});
}
