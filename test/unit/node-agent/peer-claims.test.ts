/**
 * The agent refuses a peer-map entry whose allowed IPs overlap another member's: even a wrong
 * (or compromised) coordinator cannot redirect a vip or an original IP another member holds.
 * Each refusal sits beside its positive control.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { MembershipClient, type PeerSink } from '../../../node-agent/membership';
import { PeerClaims } from '../../../node-agent/peer-claims';
import { StateDir } from '../../../node-agent/state-dir';
import { formatPrefix, parseNetwork } from '../../../common/ipv4';
import type { PeerSpec } from '../../../node-agent/peer-set';
import type { Peer } from '../../../coordinator/types';
import { silentLogger } from '../../../common/logger';

class FakeSink implements PeerSink {
  readonly peers = new Map<string, string[]>();
  upsertPeer(spec: PeerSpec): void { this.peers.set(spec.publicKey, spec.allowedIps.map(formatPrefix)); }
  removePeer(k: string): void { this.peers.delete(k); }
  peerKeys(): string[] { return [...this.peers.keys()]; }
  /** Who this agent would send a packet for `addr` to. */
  routeOf(addr: string): string | undefined {
    for (const [k, cidrs] of this.peers) if (cidrs.includes(`${addr}/32`)) return k;
    return undefined;
  }
}

const key = () => Buffer.from(nacl.box.keyPair().publicKey).toString('base64');
const entry = (vip: string, originalIp: string, publicKey = key()): Peer => ({ vip, originalIp, publicKey, hostname: 'h' + vip, tags: [], inbound: ['*'] });

function client(t: import('ava').ExecutionContext): MembershipClient {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-claims-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return new MembershipClient({ coordinatorUrl: 'http://127.0.0.1:1', originalIp: '10.0.0.1', insecureCoordinator: true }, new StateDir(dir), silentLogger());
}

test('an entry claiming another member\'s original IP or vip is refused and counted; the first holder keeps it', (t) => {
  const m = client(t);
  const sink = new FakeSink();
  const self = entry('100.64.0.1', '10.0.0.1', m.publicKey);
  const a = entry('100.64.0.2', '10.0.0.2');
  const stealOrig = entry('100.64.0.3', '10.0.0.2'); // a's original IP
  const stealVip = entry('100.64.0.4', '100.64.0.2'); // a's vip as an original IP
  const stealSelf = entry('100.64.0.5', '10.0.0.1'); // our own original IP
  const c = entry('100.64.0.6', '10.0.0.6'); // positive control
  m.applyFull([stealSelf, self, a, stealOrig, stealVip, c], sink); // our own entry counts first wherever it is
  t.is(m.refusedPeerEntries, 3);
  t.deepEqual(sink.peerKeys().sort(), [a.publicKey, c.publicKey].sort());
  t.is(sink.routeOf('10.0.0.2'), a.publicKey, 'a keeps its original IP');
  t.is(sink.routeOf('100.64.0.2'), a.publicKey, 'a keeps its vip');
  t.is(sink.routeOf('10.0.0.6'), c.publicKey, 'positive control: a clean entry is installed');
  t.is(sink.routeOf('10.0.0.1'), undefined, 'nobody gets our own address');

  // The same map again: the first holder still wins (no flapping), the count grows.
  m.applyFull([self, a, stealOrig, c], sink);
  t.is(m.refusedPeerEntries, 4);
  t.is(sink.routeOf('10.0.0.2'), a.publicKey);

  // a leaves; in the same map another member legitimately takes its original IP: accepted.
  const heir = entry('100.64.0.7', '10.0.0.2');
  m.applyFull([self, heir, c], sink);
  t.is(m.refusedPeerEntries, 4, 'no refusal: the address was released first');
  t.is(sink.routeOf('10.0.0.2'), heir.publicKey);
});

test('an entry whose original IP lies in the overlay CIDR is refused; an existing peer\'s refused update keeps its accepted entry', (t) => {
  const m = client(t);
  m.setOverlay('100.64.0.0/10');
  const sink = new FakeSink();
  const self = entry('100.64.0.1', '10.0.0.1', m.publicKey);
  const a = entry('100.64.0.2', '10.0.0.2');
  const b = entry('100.64.0.3', '10.0.0.3');
  m.applyFull([self, a, b, entry('100.64.0.4', '100.64.9.9')], sink);
  t.is(m.refusedPeerEntries, 1);
  t.deepEqual(sink.peerKeys().sort(), [a.publicKey, b.publicKey].sort(), 'positive control: a and b installed');
  // b's entry now claims a's original IP: refused, b keeps what it had.
  m.applyFull([self, a, { ...b, originalIp: '10.0.0.2' }], sink);
  t.is(m.refusedPeerEntries, 2);
  t.is(sink.routeOf('10.0.0.2'), a.publicKey);
  t.is(sink.routeOf('10.0.0.3'), b.publicKey);
});

test('PeerClaims: prefixes overlap when one contains the other, in both directions', (t) => {
  const c = new PeerClaims();
  t.is(c.claim('a', [parseNetwork('10.1.0.0/16')]), undefined);
  t.like(c.claim('b', [parseNetwork('10.1.2.3/32')]), { holder: 'a', cidr: '10.1.2.3/32' });
  t.like(c.claim('b', [parseNetwork('10.0.0.0/8')]), { holder: 'a', cidr: '10.0.0.0/8' });
  t.is(c.claim('b', [parseNetwork('10.2.0.0/16')]), undefined, 'positive control: disjoint');
  t.is(c.claim('a', [parseNetwork('10.1.0.0/24')]), undefined, 'an owner may change its own claim');
  t.is(c.claim('b', [parseNetwork('10.1.5.0/24'), parseNetwork('10.2.0.0/16')]), undefined, 'freed by a\'s change');
  c.release('a');
  t.is(c.claim('d', [parseNetwork('10.1.0.9/32')]), undefined, 'freed by release');
});
