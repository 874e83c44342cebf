import test from 'ava';
import { nodeFilterQuery, nodeMatches, parseNodeFilter } from '../../../coordinator/node-filter';
import type { NodeView } from '../../../coordinator/types';

const node = (o: Partial<NodeView>): NodeView => ({
  vip: '100.64.0.1', originalIp: '10.1.0.5', publicKey: 'k', hostname: 'a', tags: ['agent', 'web'], created: 0, lastSeen: 0,
  ephemeral: false, originalCidrs: [], ...o,
});
const online = node({ session: { relayId: 'r1', relayIp: '10.90.0.1', relayPort: '7000', agentIp: '10.1.0.5', agentPort: '40000' } });
const offline = node({ vip: '100.64.0.2', originalIp: '10.2.0.5', tags: ['agent'] });

test('each filter keeps what matches and drops what does not', (t) => {
  const keep = (q: Record<string, string | string[]>) => [online, offline].filter((n) => nodeMatches(n, parseNodeFilter(q))).map((n) => n.vip);
  t.deepEqual(keep({}), ['100.64.0.1', '100.64.0.2']);
  t.deepEqual(keep({ tag: 'agent' }), ['100.64.0.1', '100.64.0.2']);
  t.deepEqual(keep({ tag: ['agent', 'web'] }), ['100.64.0.1']);
  t.deepEqual(keep({ tag: ['web', 'db'] }), []);
  t.deepEqual(keep({ online: 'true' }), ['100.64.0.1']);
  t.deepEqual(keep({ online: 'false' }), ['100.64.0.2']);
  t.deepEqual(keep({ relay: 'r1' }), ['100.64.0.1']);
  t.deepEqual(keep({ relay: '10.90.0.1:7000' }), ['100.64.0.1']);
  t.deepEqual(keep({ relay: '10.90.0.1' }), ['100.64.0.1']);
  t.deepEqual(keep({ relay: 'r2' }), []);
  t.deepEqual(keep({ original: '10.2.0.0/16' }), ['100.64.0.2']);
  t.deepEqual(keep({ original: '10.1.0.5' }), ['100.64.0.1']);
  t.deepEqual(keep({ original: '0.0.0.0/0' }), ['100.64.0.1', '100.64.0.2']);
});

test('bad values throw 400 invalid-filter naming the parameter', (t) => {
  for (const [q, re] of [
    [{ tag: 'no spaces' }, /^tag "no spaces"/],
    [{ online: 'yes' }, /^online: want true or false/],
    [{ online: ['true', 'false'] }, /^online: give it once/],
    [{ relay: 'r1 r2' }, /^relay "r1 r2"/],
    [{ original: '10.1.0.1/16' }, /^original: host bits set/],
    [{ original: '10.1/16' }, /^original: not an IPv4 prefix/],
    [{ original: '010.1.0.0/16' }, /^original: not an IPv4 prefix/],
  ] as const) {
    const err = t.throws(() => parseNodeFilter(q as Record<string, string | string[]>));
    t.like(err, { code: 'invalid-filter', statusCode: 400 });
    t.regex(err!.message, re);
  }
});

test('the client\'s query string', (t) => {
  t.is(nodeFilterQuery({}), '');
  t.is(nodeFilterQuery({ tags: ['a', 'b'], online: false, relay: 'r1', original: '10.0.0.0/8' }), '?tag=a&tag=b&online=false&relay=r1&original=10.0.0.0%2F8');
});
