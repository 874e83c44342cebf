import test from 'ava';
import fc from 'fast-check';
import {
  Atyp, Command, Reply, MAX_REQUEST, encodeReply, encodeRequest, encodeUdpHeader,
  parseGreeting, parseRequest, parseUdpDatagram, parseUserPass,
} from '../../../mapper/socks5/codec';

const bytes = (max: number) => fc.uint8Array({ maxLength: max });

test('greeting: known answers', (t) => {
  t.like(parseGreeting(Buffer.from([5, 2, 0, 2])), { kind: 'ok', used: 4, methods: [0, 2] });
  t.is(parseGreeting(Buffer.from([5, 2, 0])).kind, 'more');
  t.is(parseGreeting(Buffer.from([])).kind, 'more');
  t.is(parseGreeting(Buffer.from([4, 1, 0])).kind, 'bad');
  t.is(parseGreeting(Buffer.from([5, 0])).kind, 'bad');
  t.is(parseGreeting(Buffer.from('GET / HTTP/1.1\r\n')).kind, 'bad');
});

test('greeting: random bytes never throw, and ok/more/bad are consistent with the layout', (t) => {
  fc.assert(fc.property(bytes(300), (b) => {
    const r = parseGreeting(b);
    if (b.length === 0) return r.kind === 'more';
    if (b[0] !== 5) return r.kind === 'bad';
    if (b.length < 2) return r.kind === 'more';
    if (b[1] === 0) return r.kind === 'bad';
    if (b.length < 2 + b[1]!) return r.kind === 'more';
    return r.kind === 'ok' && r.used === 2 + b[1]! && r.methods.length === b[1];
  }), { numRuns: 5000 });
  t.pass();
});

test('request: round-trip for IPv4 and domain targets', (t) => {
  fc.assert(fc.property(
    fc.constantFrom(Command.Connect, Command.UdpAssociate, Command.Bind),
    fc.oneof(fc.ipV4(), fc.stringMatching(/^[a-z][a-z0-9.-]{0,100}$/)),
    fc.integer({ min: 0, max: 65535 }),
    fc.uint8Array({ maxLength: 20 }),
    (cmd, host, port, trailing) => {
      const enc = encodeRequest(cmd, host, port);
      const r = parseRequest(Buffer.concat([enc, trailing]));
      return r.kind === 'ok' && r.cmd === cmd && r.host === host && r.port === port && r.used === enc.length;
    }), { numRuns: 3000 });
  t.pass();
});

test('request: every strict prefix of a valid request asks for more', (t) => {
  fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.domain()), fc.integer({ min: 1, max: 65535 }), (host, port) => {
    const enc = encodeRequest(Command.Connect, host, port);
    for (let i = 0; i < enc.length; i++) if (parseRequest(enc.subarray(0, i)).kind !== 'more') return false;
    return parseRequest(enc).kind === 'ok';
  }), { numRuns: 1000 });
  t.pass();
});

test('request: random bytes never throw; unknown ATYP gives 0x08; never reads past MAX_REQUEST', (t) => {
  fc.assert(fc.property(bytes(400), (b) => {
    const r = parseRequest(b);
    if (r.kind === 'ok') return r.used <= MAX_REQUEST && r.used <= b.length;
    if (r.kind === 'bad' && b.length >= 4 && b[0] === 5 && b[2] === 0 && ![1, 3, 4].includes(b[3]!)) return r.reply === Reply.AddressTypeNotSupported;
    return true;
  }), { numRuns: 10000 });
  fc.assert(fc.property(fc.integer({ min: 0, max: 255 }).filter((x) => ![1, 3, 4].includes(x)), (atyp) => {
    const r = parseRequest(Buffer.from([5, 1, 0, atyp, 1, 2, 3, 4, 0, 80]));
    return r.kind === 'bad' && r.reply === Reply.AddressTypeNotSupported;
  }));
  t.pass();
});

test('request: IPv6 parses (so the server can answer 0x08), empty domain is bad, nonzero RSV is bad', (t) => {
  const v6 = Buffer.concat([Buffer.from([5, 1, 0, Atyp.IPv6]), Buffer.alloc(15), Buffer.from([1, 0, 80])]);
  t.like(parseRequest(v6), { kind: 'ok', host: '0:0:0:0:0:0:0:1', port: 80 });
  t.is(parseRequest(Buffer.from([5, 1, 0, 3, 0, 0, 80])).kind, 'bad');
  t.is(parseRequest(Buffer.from([5, 1, 1, 1, 1, 2, 3, 4, 0, 80])).kind, 'bad');
});

test('user/pass (RFC 1929): round-trip and random bytes never throw', (t) => {
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 80 }), fc.string({ minLength: 1, maxLength: 80 }), (u, p) => {
    const ub = Buffer.from(u); const pb = Buffer.from(p);
    if (ub.length > 255 || pb.length > 255) return true;
    const r = parseUserPass(Buffer.concat([Buffer.from([1, ub.length]), ub, Buffer.from([pb.length]), pb]));
    return r.kind === 'ok' && r.username === u && r.password === p;
  }), { numRuns: 2000 });
  fc.assert(fc.property(bytes(600), (b) => { const r = parseUserPass(b); return r.kind !== 'ok' || r.used <= b.length; }), { numRuns: 5000 });
  t.pass();
});

test('UDP header: round-trip, fragments refused, random bytes never throw', (t) => {
  fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.domain()), fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ maxLength: 100 }), (host, port, data) => {
    const r = parseUdpDatagram(Buffer.concat([encodeUdpHeader(host, port), data]));
    return r.kind === 'ok' && r.host === host && r.port === port && Buffer.from(r.data).equals(Buffer.from(data));
  }), { numRuns: 2000 });
  t.is(parseUdpDatagram(Buffer.from([0, 0, 1, 1, 1, 2, 3, 4, 0, 53])).kind, 'bad');
  fc.assert(fc.property(bytes(300), (b) => { parseUdpDatagram(b); return true; }), { numRuns: 5000 });
});

test('reply encoding', (t) => {
  t.deepEqual([...encodeReply(Reply.HostUnreachable)], [5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
  t.deepEqual([...encodeReply(0, '127.0.0.2', 0x1234)], [5, 0, 0, 1, 127, 0, 0, 2, 0x12, 0x34]);
});
