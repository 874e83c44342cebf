/**
 * PeerSet.byDirectSource (the sender of a transport message under a session index we do not
 * have, from a direct endpoint) is an index lookup, not a scan of the peers: it follows upserts,
 * removals and roaming (Peer.setEndpoint, the endpoint setter), checked against a naive scan
 * over random operations; and a lookup never iterates the peer directory.
 */
import test from 'ava';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { PeerSet } from '../../../node-agent/peer-set';
import { Endpoint, EndpointKind } from '../../../node-agent/endpoint';
import type { Peer } from '../../../node-agent/peer';
import { createLocalIdentity, DEFAULT_TIMER_CONFIG } from '../../../protocol';
import { parseAddr, systemClock } from '../../../common';

const local = createLocalIdentity(nacl.box.keyPair().secretKey);
const newSet = () => new PeerSet(local, systemClock, DEFAULT_TIMER_CONFIG);
const KEYS = Array.from({ length: 6 }, () => Buffer.from(nacl.box.keyPair().publicKey).toString('base64'));
const IPS = [parseAddr('192.0.2.1'), parseAddr('192.0.2.2'), parseAddr('198.51.100.7')];

/** The old implementation: scan every peer. */
function naive(set: PeerSet, ip: number): Peer[] {
  return [...set.all()].filter((p) => p.endpoint?.kind === EndpointKind.Direct && p.endpoint.ip === ip);
}

test('follows upserts, roaming (direct ↔ direct, direct ↔ relay) and removals', (t) => {
  const set = newSet();
  const [a, b] = KEYS;
  const [x, y] = IPS;
  set.upsert({ publicKey: a, allowedIps: [], endpoint: Endpoint.direct(x, 51820) });
  set.upsert({ publicKey: b, allowedIps: [], endpoint: Endpoint.relay(parseAddr('100.64.0.2')) });
  const pa = set.get(a)!;
  const pb = set.get(b)!;
  t.is(set.byDirectSource(x), pa);
  t.is(set.byDirectSource(y), undefined, 'negative: nobody at y');
  t.is(set.byDirectSource(parseAddr('100.64.0.2')), undefined, 'a relay endpoint is not a direct source');
  pa.setEndpoint(EndpointKind.Direct, y, 4000, 0);
  t.is(set.byDirectSource(y), pa, 'roamed to y');
  t.is(set.byDirectSource(x), undefined, 'and left x');
  pb.setEndpoint(EndpointKind.Direct, y, 5000, 0);
  t.true([pa, pb].includes(set.byDirectSource(y)!), 'two peers behind one address');
  pa.setEndpoint(EndpointKind.Relay, 0, 0, parseAddr('100.64.0.1'));
  t.is(set.byDirectSource(y), pb, 'a went to the relay: b remains');
  pb.endpoint = Endpoint.direct(x, 1);
  t.is(set.byDirectSource(x), pb, 'the setter is followed too');
  t.is(set.byDirectSource(y), undefined);
  t.true(set.remove(b));
  t.is(set.byDirectSource(x), undefined, 'removed');
  pb.setEndpoint(EndpointKind.Direct, y, 1, 0);
  t.is(set.byDirectSource(y), undefined, 'a removed peer that still roams is not indexed');
  set.upsert({ publicKey: a, allowedIps: [], endpoint: Endpoint.direct(x, 2) });
  t.is(set.byDirectSource(x), pa, 'an upsert with a new endpoint re-indexes in place');
});

test('a lookup does not iterate the peer directory (2000 peers, the directory made unreadable)', (t) => {
  const set = newSet();
  const target = parseAddr('203.0.113.9');
  for (let i = 0; i < 2000; i++) {
    const kp = nacl.box.keyPair();
    set.upsert({ publicKey: Buffer.from(kp.publicKey).toString('base64'), allowedIps: [], endpoint: Endpoint.direct(parseAddr('10.0.0.0') + i, 51820) });
  }
  const k = KEYS[0];
  set.upsert({ publicKey: k, allowedIps: [], endpoint: Endpoint.direct(target, 1) });
  // Positive control: the directory is readable before, and the scan finds the peer.
  t.is(naive(set, target)[0], set.get(k)!);
  const byKey = (set as unknown as { byKey: Map<string, Peer> }).byKey;
  const values = byKey.values;
  byKey.values = () => { throw new Error('scanned the peers'); };
  byKey[Symbol.iterator] = () => { throw new Error('scanned the peers'); };
  byKey.forEach = () => { throw new Error('scanned the peers'); };
  t.throws(() => naive(set, target), { message: 'scanned the peers' }, 'the trap fires on a scan');
  t.is(set.byDirectSource(target), set.get(k));
  t.is(set.byDirectSource(parseAddr('203.0.113.10')), undefined);
  byKey.values = values;
});

test('randomized: the index answers as a scan of every peer would', (t) => {
  type Op = { op: 'upsert'; k: number; ep: number; ip: number } | { op: 'remove'; k: number } | { op: 'roam'; k: number; ep: number; ip: number } | { op: 'set'; k: number; ep: number; ip: number };
  const key = fc.nat(KEYS.length - 1);
  const ep = fc.nat(2); // 0 none/keep, 1 direct, 2 relay
  const ip = fc.nat(IPS.length - 1);
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constant('upsert' as const), k: key, ep, ip }),
    fc.record({ op: fc.constant('remove' as const), k: key }),
    fc.record({ op: fc.constant('roam' as const), k: key, ep, ip }),
    fc.record({ op: fc.constant('set' as const), k: key, ep, ip }),
  );
  const endpoint = (e: number, i: number) => (e === 1 ? Endpoint.direct(IPS[i], 1000 + i) : e === 2 ? Endpoint.relay(parseAddr('100.64.0.1') + i) : undefined);
  t.notThrows(() => fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    const set = newSet();
    const held: Peer[] = [];
    for (const o of ops) {
      const pub = KEYS[o.k];
      if (o.op === 'upsert') held.push(set.upsert({ publicKey: pub, allowedIps: [], endpoint: endpoint(o.ep, o.ip) }));
      else if (o.op === 'remove') set.remove(pub);
      else {
        // Roam or set on the current peer, or on a removed one we still hold (a late packet).
        const p = set.get(pub) ?? held.find((h) => h.publicKeyBase64 === pub);
        if (!p) continue;
        if (o.op === 'set') p.endpoint = endpoint(o.ep, o.ip);
        else if (o.ep === 2) p.setEndpoint(EndpointKind.Relay, 0, 0, parseAddr('100.64.0.1') + o.ip);
        else p.setEndpoint(EndpointKind.Direct, IPS[o.ip], 2000, 0);
      }
      for (const addr of IPS) {
        const want = naive(set, addr);
        const got = set.byDirectSource(addr);
        if (want.length === 0 ? got !== undefined : !want.includes(got!)) return false;
      }
    }
    return true;
  }), { numRuns: 500 }));
});
