import test from 'ava';
import fc from 'fast-check';
import { SessionTable, tupleKey } from '../../../relay/session-table';

const key = new Uint8Array(32);

test('bind, lookup both ways, unbind', (t) => {
  const st = new SessionTable();
  const { session, replaced } = st.bind(0x64400001, 0x7f000001, 5000, key, 10);
  t.deepEqual(replaced, []);
  t.is(st.byAddress(0x7f000001, 5000), session);
  t.is(st.byOverlay(0x64400001), session);
  t.is(st.byAddress(0x7f000001, 5001), undefined);
  t.is(st.size, 1);
  t.is(st.unbindVip(0x64400001), session);
  t.is(st.byAddress(0x7f000001, 5000), undefined);
  t.is(st.size, 0);
});

test('rebinding a vip from a new 4-tuple removes the old tuple', (t) => {
  const st = new SessionTable();
  const a = st.bind(1, 0x0a000001, 1000, key, 0).session;
  const { session: b, replaced } = st.bind(1, 0x0a000001, 2000, key, 5);
  t.deepEqual(replaced, [a]);
  t.is(st.byAddress(0x0a000001, 1000), undefined);
  t.is(st.byAddress(0x0a000001, 2000), b);
  t.is(st.byOverlay(1), b);
  t.is(st.size, 1);
  t.false(st.remove(a), 'a stale session is not removed twice');
  t.is(st.byOverlay(1), b);
});

test('binding a tuple used by another vip removes that session', (t) => {
  const st = new SessionTable();
  const a = st.bind(1, 0x0a000001, 1000, key, 0).session;
  const { replaced } = st.bind(2, 0x0a000001, 1000, key, 1);
  t.deepEqual(replaced, [a]);
  t.is(st.byOverlay(1), undefined);
  t.is(st.byAddress(0x0a000001, 1000)!.vip, 2);
});

test('idle expiry removes only sessions silent for idleMs', (t) => {
  const st = new SessionTable();
  const a = st.bind(1, 1, 1, key, 0).session;
  const b = st.bind(2, 2, 2, key, 0).session;
  b.lastSeen = 20;
  t.deepEqual(st.expire(29, 30), []);
  t.deepEqual(st.expire(30, 30), [a]);
  t.is(st.byOverlay(1), undefined);
  t.is(st.byOverlay(2), b);
  t.deepEqual(st.expire(50, 30), [b]);
  t.is(st.size, 0);
});

test('tupleKey is injective over ip and port', (t) => {
  t.not(tupleKey(1, 0), tupleKey(0, 65536 & 0xffff));
  t.is(tupleKey(0xffffffff, 65535), 0xffffffff * 65536 + 65535);
  t.true(Number.isSafeInteger(tupleKey(0xffffffff, 65535)));
});

/** Naive reference: a list of [vip, addr, port, lastSeen]. */
class SlowTable {
  rows: { vip: number; addr: number; port: number; lastSeen: number }[] = [];
  bind(vip: number, addr: number, port: number, now: number) {
    this.rows = this.rows.filter((r) => r.vip !== vip && !(r.addr === addr && r.port === port));
    this.rows.push({ vip, addr, port, lastSeen: now });
  }
  touch(vip: number, now: number) {
    const r = this.rows.find((x) => x.vip === vip);
    if (r) r.lastSeen = now;
  }
  expire(now: number, idle: number) {
    this.rows = this.rows.filter((r) => now - r.lastSeen < idle);
  }
}

test('randomized differential test against a naive table', (t) => {
  const op = fc.oneof(
    fc.record({ k: fc.constant('bind' as const), vip: fc.nat(7), addr: fc.nat(3), port: fc.nat(3) }),
    fc.record({ k: fc.constant('touch' as const), vip: fc.nat(7) }),
    fc.record({ k: fc.constant('unbind' as const), vip: fc.nat(7) }),
    fc.record({ k: fc.constant('tick' as const), dt: fc.nat(20) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
    const fast = new SessionTable();
    const slow = new SlowTable();
    let now = 0;
    for (const o of ops) {
      if (o.k === 'bind') {
        fast.bind(o.vip, o.addr, o.port, key, now);
        slow.bind(o.vip, o.addr, o.port, now);
      } else if (o.k === 'touch') {
        const s = fast.byOverlay(o.vip);
        if (s) s.lastSeen = now;
        slow.touch(o.vip, now);
      } else if (o.k === 'unbind') {
        fast.unbindVip(o.vip);
        slow.rows = slow.rows.filter((r) => r.vip !== o.vip);
      } else {
        now += o.dt;
        fast.expire(now, 25);
        slow.expire(now, 25);
      }
      if (fast.size !== slow.rows.length) return false;
      for (let vip = 0; vip < 8; vip++) {
        const r = slow.rows.find((x) => x.vip === vip);
        const s = fast.byOverlay(vip);
        if (!!r !== !!s) return false;
        if (r && s && (r.addr !== s.addr || r.port !== s.port || r.lastSeen !== s.lastSeen)) return false;
      }
      for (let a = 0; a < 4; a++) {
        for (let p = 0; p < 4; p++) {
          const r = slow.rows.find((x) => x.addr === a && x.port === p);
          const s = fast.byAddress(a, p);
          if ((r?.vip) !== (s?.vip)) return false;
        }
      }
    }
    return true;
  }), { numRuns: 1000 });
  t.pass();
});

test('a session keeps the member key compactly and gives back the same 32 bytes (a copy)', (t) => {
  const st = new SessionTable();
  const k = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 200) & 0xff);
  // A key that is a view into a larger buffer (as decodeAuth's could be): only its 32 bytes count.
  const big = new Uint8Array(100);
  big.set(k, 50);
  const s = st.bind(1, 2, 3, big.subarray(50, 82), 0).session;
  t.deepEqual(s.publicKey, k);
  s.publicKey[0] ^= 0xff;
  t.deepEqual(s.publicKey, k, 'callers get a copy: the session key cannot be changed through it');
  const other = st.bind(4, 5, 6, new Uint8Array(32), 0).session;
  t.notDeepEqual(other.publicKey, k);
});
