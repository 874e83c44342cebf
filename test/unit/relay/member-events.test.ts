import test from 'ava';
import fc from 'fast-check';
import { removedVip } from '../../../relay/member-events';

test('node-removed events name the vip to unbind; everything else is ignored', (t) => {
  t.is(removedVip(JSON.stringify({ type: 'node-removed', vip: '100.64.0.7', version: 3 })), (100 << 24 | 64 << 16 | 7) >>> 0);
  t.is(removedVip(JSON.stringify({ type: 'node-up', vip: '100.64.0.7' })), undefined);
  t.is(removedVip(JSON.stringify({ type: 'session-down', vip: '100.64.0.7', relayId: 'r1' })), undefined);
  t.is(removedVip(JSON.stringify({ type: 'node-removed', vip: 'not an ip' })), undefined);
  t.is(removedVip(JSON.stringify({ type: 'node-removed', vip: 7 })), undefined);
  t.is(removedVip('{'), undefined);
  fc.assert(fc.property(fc.string(), (s) => { removedVip(s); return true; }), { numRuns: 2000 });
});
