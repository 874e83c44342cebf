/**
 * The peer directory's routes follow upserts and removals by the peer's own prefixes (no scan
 * of the route table): an update moves exactly its prefixes, and a prefix another peer holds
 * now stays that peer's when the first one is updated or removed.
 */
import test from 'ava';
import nacl from 'tweetnacl';
import { PeerSet } from '../../../node-agent/peer-set';
import { createLocalIdentity, DEFAULT_TIMER_CONFIG } from '../../../protocol';
import { parseAddr, systemClock, type Prefix } from '../../../common';

const key = () => Buffer.from(nacl.box.keyPair().publicKey).toString('base64');
const p32 = (ip: string): Prefix => ({ addr: parseAddr(ip), bits: 32 });

test('routes move with upserts and go with removals, and never take another peer\'s prefix along', (t) => {
  const set = new PeerSet(createLocalIdentity(nacl.box.keyPair().secretKey), systemClock, DEFAULT_TIMER_CONFIG);
  const [a, b, c] = [key(), key(), key()];
  const route = (ip: string) => set.routes.lookup(parseAddr(ip))?.publicKeyBase64;
  set.upsert({ publicKey: a, allowedIps: [p32('100.64.0.1'), p32('10.0.0.1')] });
  set.upsert({ publicKey: b, allowedIps: [p32('100.64.0.2')] });
  t.is(route('10.0.0.1'), a);
  t.is(route('100.64.0.2'), b);

  // a's original IP changes: the old one goes, the new one routes to a, b untouched.
  const peerA = set.get(a);
  set.upsert({ publicKey: a, allowedIps: [p32('100.64.0.1'), p32('10.0.0.11')] });
  t.is(set.get(a), peerA, 'updated in place');
  t.is(route('10.0.0.1'), undefined, 'the old prefix is gone');
  t.is(route('10.0.0.11'), a);
  t.is(route('100.64.0.1'), a);
  t.is(route('100.64.0.2'), b, 'another peer untouched');
  t.is(set.routes.size, 3);

  // c takes over 10.0.0.11 (the directory replaces); a's update or removal leaves it with c.
  set.upsert({ publicKey: c, allowedIps: [p32('10.0.0.11')] });
  t.is(route('10.0.0.11'), c);
  set.upsert({ publicKey: a, allowedIps: [p32('100.64.0.1')] });
  t.is(route('10.0.0.11'), c, 'still c\'s after a\'s update');
  t.true(set.remove(a));
  t.is(route('100.64.0.1'), undefined, 'a\'s own prefix went with it');
  t.is(route('10.0.0.11'), c, 'still c\'s after a\'s removal');
  t.is(route('100.64.0.2'), b);
  t.false(set.remove(a), 'removing twice: nothing');
  t.is(set.routes.size, 2);
});
