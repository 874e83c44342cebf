import test from 'ava';
import { PortSet } from '../../../policy';
import { compileInbound, describeInbound } from '../../../node-agent/inbound-ports';
import { peerSpecFromEntry } from '../../../node-agent/membership';
import type { Peer as PeerEntry } from '../../../coordinator/types';

test('compileInbound: missing is `*`, [] is nothing, specs are their union', (t) => {
  t.is(compileInbound(undefined), PortSet.ALL);
  t.is(compileInbound(['*']), PortSet.ALL);
  t.is(compileInbound([]), PortSet.NONE);
  const s = compileInbound(['tcp/22', 'tcp/8000-9000', 'udp/53', 'icmp']);
  t.true(s.allowsTcp(22) && s.allowsTcp(8500) && s.allowsUdp(53) && s.allowsIcmp());
  t.false(s.allowsTcp(23) || s.allowsUdp(22) || s.allowsOther());
  t.is(describeInbound(s), 'tcp/22,tcp/8000-9000,udp/53,icmp');
  t.is(describeInbound(PortSet.ALL), '*');
  t.is(describeInbound(PortSet.NONE), 'none');
});

test('compileInbound: one set per distinct list (shared by every peer with it)', (t) => {
  t.is(compileInbound(['tcp/22', 'icmp']), compileInbound(['tcp/22', 'icmp']));
});

test('compileInbound: a spec it cannot read is left out and reported: it narrows, never widens', (t) => {
  const bad: string[] = [];
  const s = compileInbound(['tcp/22', 'tcp/0-99999', 'everything', 7 as unknown as string], (spec) => bad.push(spec));
  t.deepEqual(bad, ['tcp/0-99999', 'everything', '7']);
  t.true(s.allowsTcp(22));
  t.false(s.allowsTcp(80) || s.allowsOther());
  t.is(compileInbound(['nonsense'], () => {}), PortSet.NONE, 'all unreadable: nothing');
});

const entry = (over: Partial<PeerEntry> & Record<string, unknown>): PeerEntry =>
  ({ vip: '100.64.0.9', originalIp: '10.1.0.9', publicKey: 'x'.repeat(43) + '=', hostname: 'h', tags: [], ...over }) as PeerEntry;

test('peerSpecFromEntry: the entry\'s inbound becomes the peer\'s PortSet; an older coordinator (no field) means `*`', (t) => {
  t.is(peerSpecFromEntry(entry({})).inbound, PortSet.ALL);
  t.is(peerSpecFromEntry(entry({ inbound: [] })).inbound, PortSet.NONE);
  t.true(peerSpecFromEntry(entry({ inbound: ['tcp/22'] })).inbound!.allowsTcp(22));
  t.false(peerSpecFromEntry(entry({ inbound: ['tcp/22'] })).inbound!.allowsTcp(23));
  t.is(peerSpecFromEntry(entry({ inbound: '*' as unknown as string[] })).inbound, PortSet.NONE, 'not a list: nothing, never everything');
});
