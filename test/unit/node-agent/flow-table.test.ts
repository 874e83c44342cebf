import test from 'ava';
import fc from 'fast-check';
import { FlowTable, DEFAULT_ICMP_TIMEOUT_MS, DEFAULT_UDP_TIMEOUT_MS } from '../../../node-agent/flow-table';

const UDP = 17;
const ICMP = 1;
const LOCAL = 0x64400002 | 0;
const key = (i: number): [number, number, number] => [(0x64410000 + i) | 0, LOCAL, ((5000 << 16) | (1024 + (i % 60000))) | 0];

test('half full, every flow is kept; full, only evictions are lost and they are counted', (t) => {
  const tab = new FlowTable({ size: 65536 });
  for (let i = 0; i < 32768; i++) tab.insert(UDP, ...key(i), 1);
  let kept = 0;
  for (let i = 0; i < 32768; i++) if (tab.lookup(UDP, ...key(i), 2)) kept++;
  t.true(kept >= 32768 * 0.999, `${kept} kept`);
  t.is(tab.evictions, 32768 - kept);
  for (let i = 32768; i < 200_000; i++) tab.insert(UDP, ...key(i), 3);
  t.true(tab.size(4) <= tab.capacity);
  t.true(tab.evictions >= 200_000 - tab.capacity);
});

test('expired entries make room before live ones are evicted', (t) => {
  const tab = new FlowTable({ size: 8 }); // two sets of four
  for (let i = 0; i < 8; i++) tab.insert(UDP, ...key(i), 0);
  t.is(tab.size(1), 8);
  for (let i = 8; i < 16; i++) tab.insert(UDP, ...key(i), DEFAULT_UDP_TIMEOUT_MS + 1);
  t.is(tab.evictions, 0); // all eight old flows had expired
  for (let i = 8; i < 16; i++) t.true(tab.lookup(UDP, ...key(i), DEFAULT_UDP_TIMEOUT_MS + 2), `flow ${i}`);
  tab.insert(UDP, ...key(99), DEFAULT_UDP_TIMEOUT_MS + 3);
  t.is(tab.evictions, 1);
});

test('timeouts per protocol, refresh on hit, protocol is part of the key', (t) => {
  const tab = new FlowTable();
  const [r, l, p] = key(1);
  tab.insert(ICMP, r, l, 7, 0);
  tab.insert(UDP, r, l, p, 0);
  t.false(tab.lookup(UDP, r, l, 7, 1));
  t.true(tab.lookup(ICMP, r, l, 7, DEFAULT_ICMP_TIMEOUT_MS - 1)); // refreshes
  t.true(tab.lookup(ICMP, r, l, 7, 2 * DEFAULT_ICMP_TIMEOUT_MS - 2));
  t.false(tab.lookup(ICMP, r, l, 7, 4 * DEFAULT_ICMP_TIMEOUT_MS));
  t.true(tab.lookup(UDP, r, l, p, DEFAULT_UDP_TIMEOUT_MS - 1));
});

test('agrees with a naive map when nothing is evicted', (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 5000 })), { maxLength: 300 }), (ops) => {
    const tab = new FlowTable({ size: 4096 });
    const ref = new Map<number, number>(); // flow → expiry
    let now = 0;
    for (const [ins, flow, dt] of ops) {
      now += dt;
      if (ins) {
        tab.insert(UDP, ...key(flow), now);
        ref.set(flow, now + DEFAULT_UDP_TIMEOUT_MS);
      } else {
        const want = (ref.get(flow) ?? 0) > now;
        if (tab.lookup(UDP, ...key(flow), now) !== want) return false;
        if (want) ref.set(flow, now + DEFAULT_UDP_TIMEOUT_MS);
      }
    }
    return tab.evictions === 0; // 301 flows in 4,096 slots: nothing may be evicted
  }), { numRuns: 300 });
  t.pass();
});
