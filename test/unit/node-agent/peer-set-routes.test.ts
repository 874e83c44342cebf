/**
 * PeerSet's route table is updated by key (an upsert or removal touches only that peer's
 * prefixes): after any sequence of upserts (new peers, moved prefixes, tag changes), removals
 * and re-adds, the table must be exactly what a naive model says. The model replays the
 * same rules the slow way: a peer's upsert drops every route it holds, then sets each of its
 * prefixes to it (last writer wins); a removal drops every route it holds.
 */
import test from 'ava';
import fc from 'fast-check';
import { ManualClock } from '../../../common/clock';
import { formatPrefix } from '../../../common/ipv4';
import { generatePrivateKey, keyToBase64, publicKeyFromPrivate } from '../../../protocol/keys';
import { createLocalIdentity } from '../../../protocol/handshake';
import { DEFAULT_TIMER_CONFIG } from '../../../protocol/timers';
import { PortSet } from '../../../policy/port-set';
import { parsePortSpec } from '../../../policy/parse';
import { PeerSet } from '../../../node-agent/peer-set';
import { Endpoint } from '../../../node-agent/endpoint';

const KEYS = Array.from({ length: 6 }, () => keyToBase64(publicKeyFromPrivate(generatePrivateKey())));
/** Small address space so prefixes collide, nest and move between peers. */
const BASE = 0x64400000;
const prefixArb = fc.record({ addr: fc.integer({ min: 0, max: 15 }).map((i) => (BASE + i * 16) >>> 0), bits: fc.constantFrom(28, 30, 32) })
  .map(({ addr, bits }) => ({ addr: (addr & (0xffffffff << (32 - bits))) >>> 0, bits }));
const opArb = fc.oneof(
  fc.record({ kind: fc.constant('upsert' as const), key: fc.integer({ min: 0, max: KEYS.length - 1 }), prefixes: fc.array(prefixArb, { minLength: 1, maxLength: 3 }), ssh: fc.boolean() }),
  fc.record({ kind: fc.constant('remove' as const), key: fc.integer({ min: 0, max: KEYS.length - 1 }) }),
);

/** The slow, obvious table: cidr → key. */
class NaiveRoutes {
  readonly table = new Map<string, string>();
  readonly peers = new Map<string, string[]>();
  private dropAll(key: string): void {
    for (const [cidr, k] of [...this.table]) if (k === key) this.table.delete(cidr);
  }
  upsert(key: string, cidrs: string[]): void {
    this.dropAll(key);
    for (const c of cidrs) this.table.set(c, key);
    this.peers.set(key, cidrs);
  }
  remove(key: string): void {
    if (!this.peers.delete(key)) return;
    this.dropAll(key);
  }
}

const SSH = PortSet.of([parsePortSpec('tcp/22')]);

function actual(set: PeerSet): Map<string, string> {
  return new Map(set.routes.entries().map((e) => [e.cidr, e.value.publicKeyBase64]));
}

test('routes after any sequence of upserts, tag changes and removals are exactly the naive model\'s', (t) => {
  fc.assert(fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
    const set = new PeerSet(createLocalIdentity(generatePrivateKey()), new ManualClock(), DEFAULT_TIMER_CONFIG);
    const model = new NaiveRoutes();
    for (const op of ops) {
      const key = KEYS[op.key];
      if (op.kind === 'upsert') {
        set.upsert({ publicKey: key, allowedIps: op.prefixes, endpoint: Endpoint.relay(op.prefixes[0].addr), inbound: op.ssh ? SSH : PortSet.ALL });
        model.upsert(key, op.prefixes.map(formatPrefix));
      } else {
        set.remove(key);
        model.remove(key);
      }
      const got = actual(set);
      if (got.size !== model.table.size || [...model.table].some(([c, k]) => got.get(c) !== k)) {
        throw new Error(`after ${JSON.stringify(op)}: routes ${JSON.stringify([...got])} ≠ model ${JSON.stringify([...model.table])}`);
      }
      if (set.routes.size !== model.table.size) throw new Error('routes.size disagrees');
      if (set.size !== model.peers.size) throw new Error('peer count disagrees');
      // Longest-prefix lookups agree with the model too, over the whole space.
      for (let i = 0; i < 16 * 16; i += 3) {
        const addr = (BASE + i) >>> 0;
        let best: { bits: number; key: string } | undefined;
        for (const [cidr, k] of model.table) {
          const [a, b] = cidr.split('/');
          const bits = Number(b);
          const net = a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
          const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
          if (((addr & mask) >>> 0) === net && (!best || bits > best.bits)) best = { bits, key: k };
        }
        if (set.routes.lookup(addr)?.publicKeyBase64 !== best?.key) throw new Error(`lookup ${addr.toString(16)} disagrees`);
      }
    }
  }), { numRuns: 300 });
  t.pass();
});

test('a tag change (same prefixes, other inbound ports) keeps the routes and swaps the ports', (t) => {
  const set = new PeerSet(createLocalIdentity(generatePrivateKey()), new ManualClock(), DEFAULT_TIMER_CONFIG);
  const p = { addr: BASE + 2, bits: 32 };
  const before = set.upsert({ publicKey: KEYS[0], allowedIps: [p], inbound: PortSet.ALL });
  set.upsert({ publicKey: KEYS[1], allowedIps: [{ addr: BASE + 3, bits: 32 }] });
  const after = set.upsert({ publicKey: KEYS[0], allowedIps: [p], inbound: SSH });
  t.is(after, before, 'the same peer, updated in place');
  t.is(after.inbound, SSH);
  t.is(set.routes.lookup(BASE + 2), before);
  t.is(set.routes.lookup(BASE + 3)?.publicKeyBase64, KEYS[1]);
  t.is(set.routes.size, 2);
});
