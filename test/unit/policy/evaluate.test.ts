import test from 'ava';
import fc from 'fast-check';
import {
  compilePolicy, parsePolicy, PortSet, DENIED, ALLOWED_NO_POLICY, type FlowProto, type Policy, type PortSpec, type Selector,
} from '../../../policy';
import { arbPolicy, arbPort, arbTags } from './arbitraries';

// The naive reference: the semantics in types.ts, read literally, no classes, no memos.
const matches = (sels: Selector[], tags: readonly string[]): boolean => sels.some((s) => s.kind === 'any' || tags.includes(s.tag));
const portsAllow = (specs: PortSpec[], proto: FlowProto, port: number): boolean => specs.some((s) =>
  s.proto === 'any' || (s.proto === 'icmp' ? proto === 'icmp' : s.proto === proto && port >= s.first && port <= s.last));
const refCanOpen = (p: Policy, f: readonly string[], t: readonly string[], proto: FlowProto, port: number): number =>
  p.rules.findIndex((r) => matches(r.from, f) && matches(r.to, t) && portsAllow(r.ports, proto, port));
const refConnected = (p: Policy, a: readonly string[], b: readonly string[]): boolean =>
  p.rules.some((r) => (matches(r.from, a) && matches(r.to, b)) || (matches(r.from, b) && matches(r.to, a)));

const portSetAllows = (s: PortSet, proto: FlowProto, port: number): boolean =>
  proto === 'tcp' ? s.allowsTcp(port) : proto === 'udp' ? s.allowsUdp(port) : proto === 'icmp' ? s.allowsIcmp() : s.allowsOther();

const arbProto = fc.constantFrom<FlowProto>('tcp', 'udp', 'icmp', 'other');
const arbQuery = fc.tuple(arbTags(), arbTags(), arbProto, arbPort());

test('canOpen, connected and inboundFrom agree with a naive reference', (t) => {
  fc.assert(fc.property(arbPolicy(40), fc.array(arbQuery, { minLength: 1, maxLength: 30 }), (policy, queries) => {
    const c = compilePolicy(policy); // one instance for all queries, so memos are exercised
    for (const [a, b, proto, port] of queries) {
      const want = refCanOpen(policy, a, b, proto, port);
      if (c.canOpen(a, b, proto, port) !== want) return false;
      if (c.connected(a, b) !== refConnected(policy, a, b) || c.connected(b, a) !== c.connected(a, b)) return false;
      // What b may open towards a is exactly what canOpen(b → a) allows.
      if (portSetAllows(c.inboundFrom(a, b), proto, port) !== (refCanOpen(policy, b, a, proto, port) >= 0)) return false;
      // A connected pair is one where some flow could be opened one way or the other.
      if (c.connected(a, b) !== (!c.inboundFrom(a, b).isEmpty() || !c.inboundFrom(b, a).isEmpty())) return false;
    }
    return true;
  }), { numRuns: 500 });
  t.pass();
});

test('no policy: everyone reaches everyone on everything', (t) => {
  const c = compilePolicy(null);
  t.false(c.hasPolicy);
  fc.assert(fc.property(arbQuery, ([a, b, proto, port]) => {
    t.is(c.canOpen(a, b, proto, port), ALLOWED_NO_POLICY);
    t.true(c.canOpen(a, b, proto, port) >= 0);
    t.true(c.connected(a, b));
    t.is(c.inboundFrom(a, b), PortSet.ALL);
  }), { numRuns: 100 });
  t.true(c.connected([], []));
});

test('a rule opens from → to only; replies are the filter\'s business, not a reverse rule', (t) => {
  const c = compilePolicy(parsePolicy(JSON.stringify({
    rules: [
      { from: ['tag:controller'], to: ['tag:agent'], ports: ['tcp/22', 'tcp/8000-9000', 'icmp'] },
      { from: ['*'], to: ['tag:dns'], ports: ['udp/53'] },
    ],
  })));
  const s = ['controller'];
  const a = ['agent', 'gpu'];
  // Positive and negative in one place: S opens to A on the listed ports only.
  t.is(c.canOpen(s, a, 'tcp', 22), 0);
  t.is(c.canOpen(s, a, 'tcp', 8500), 0);
  t.is(c.canOpen(s, a, 'icmp', 0), 0);
  t.is(c.canOpen(s, a, 'tcp', 23), DENIED);
  t.is(c.canOpen(s, a, 'udp', 22), DENIED);
  t.is(c.canOpen(s, a, 'other', 0), DENIED);
  // A may not open to S.
  t.is(c.canOpen(a, s, 'tcp', 22), DENIED);
  t.true(c.inboundFrom(a, s).allowsTcp(22));
  t.false(c.inboundFrom(a, s).allowsTcp(23));
  t.true(c.inboundFrom(s, a).isEmpty());
  // ... yet they are connected both ways: the replies must flow.
  t.true(c.connected(s, a));
  t.true(c.connected(a, s));
  // Two agents are not connected, an untagged member reaches only the dns member.
  t.false(c.connected(a, ['agent']));
  t.false(c.connected([], s));
  t.is(c.canOpen([], ['dns'], 'udp', 53), 1);
  t.true(c.connected([], ['dns']));
  t.deepEqual(c.inboundFrom(a, s).specs, [{ proto: 'tcp', first: 22, last: 22 }, { proto: 'tcp', first: 8000, last: 9000 }, { proto: 'icmp' }]);
});

test('memoised per tag class: irrelevant tags and array identity do not matter, equal sets are shared', (t) => {
  const c = compilePolicy(parsePolicy(JSON.stringify({
    rules: [
      { from: ['tag:s'], to: ['tag:a'], ports: ['tcp/22'] },
      { from: ['tag:s2'], to: ['tag:a'], ports: ['tcp/22'] },
    ],
  })));
  t.is(c.classId(['a', 'zone-1']), c.classId(['zone-2', 'a']));
  t.is(c.classId(['a', 'a']), c.classId(['a']));
  t.not(c.classId(['a']), c.classId(['s']));
  // s and s2 match different rules but give the same ports: one PortSet object.
  t.is(c.inboundFrom(['a'], ['s']), c.inboundFrom(['a'], ['s2']));
  // 100,000 members, each its own tags array, three distinct tag sets: a few classes.
  const members = Array.from({ length: 100_000 }, (_, i) => (i % 1000 === 0 ? ['s', `host-${i}`] : ['a', `host-${i}`]));
  const t0 = process.hrtime.bigint();
  let connected = 0;
  for (const m of members) if (c.connected(members[0], m)) connected++;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.is(connected, 99_900);
  t.true(new Set(members.map((m) => c.classId(m))).size <= 3);
  const t1 = process.hrtime.bigint();
  for (const m of members) c.connected(members[0], m);
  const again = Number(process.hrtime.bigint() - t1) / 1e6;
  t.log(`100k connected(): ${ms.toFixed(1)} ms on new tag arrays, ${again.toFixed(1)} ms on seen ones`);
});

test('PortSet: merging, bounds and the constants', (t) => {
  const s = PortSet.of([{ proto: 'tcp', first: 10, last: 20 }, { proto: 'tcp', first: 21, last: 30 }, { proto: 'tcp', first: 5, last: 12 }, { proto: 'udp', first: 65535, last: 65535 }]);
  t.deepEqual(s.specs, [{ proto: 'tcp', first: 5, last: 30 }, { proto: 'udp', first: 65535, last: 65535 }]);
  for (const [p, want] of [[4, false], [5, true], [30, true], [31, false], [0, false]] as const) t.is(s.allowsTcp(p), want, `tcp/${p}`);
  t.true(s.allowsUdp(65535));
  t.false(s.allowsUdp(65534));
  t.false(s.allowsIcmp());
  t.false(s.allowsOther());
  t.is(PortSet.of([]), PortSet.NONE);
  t.is(PortSet.of([{ proto: 'icmp' }, { proto: 'any' }]), PortSet.ALL);
  t.true(PortSet.ALL.allowsTcp(0) && PortSet.ALL.allowsOther());
  t.false(PortSet.NONE.allowsIcmp());
});
