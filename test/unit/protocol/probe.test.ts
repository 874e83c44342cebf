import test from 'ava';
import { decodeProbe, encodeProbe, isProbePacket, PROBE_IP_PROTO, PROBE_KIND_REPLY, PROBE_KIND_REQUEST, PROBE_REQUEST_SIZE } from '../../../protocol/probe';
import { ipv4HeaderChecksumValid } from '../../../protocol/ip-packet';

const SRC = 0x64400001;
const DST = 0x64400002;

test('a request is PROBE_REQUEST_SIZE bytes of valid IPv4 (protocol 253) and round-trips', (t) => {
  const buf = Buffer.alloc(8 + PROBE_REQUEST_SIZE);
  const n = encodeProbe(buf, 8, { kind: PROBE_KIND_REQUEST, id: 0xdeadbeef, src: SRC, dst: DST, relayId: '', allowed: '' });
  t.is(n, PROBE_REQUEST_SIZE);
  t.is(buf[8], 0x45);
  t.is(buf.readUInt16BE(8 + 2), n);
  t.is(buf[8 + 9], PROBE_IP_PROTO);
  t.true(ipv4HeaderChecksumValid(buf, 8, 20));
  t.true(isProbePacket(buf, 8, n));
  t.deepEqual(decodeProbe(buf, 8, n), { kind: PROBE_KIND_REQUEST, id: 0xdeadbeef, src: SRC, dst: DST, relayId: '', allowed: '' });
});

test('a reply carries the relay id and the allowed ports, and is never longer than a request', (t) => {
  const buf = Buffer.alloc(PROBE_REQUEST_SIZE);
  const n = encodeProbe(buf, 0, { kind: PROBE_KIND_REPLY, id: 7, src: DST, dst: SRC, relayId: 'r2', allowed: 'tcp/22,icmp' });
  t.true(n < PROBE_REQUEST_SIZE);
  t.like(decodeProbe(buf, 0, n), { kind: PROBE_KIND_REPLY, id: 7, relayId: 'r2', allowed: 'tcp/22,icmp' });
  const long = encodeProbe(buf, 0, { kind: PROBE_KIND_REPLY, id: 8, src: DST, dst: SRC, relayId: 'r'.repeat(300), allowed: 'tcp/1,'.repeat(200) });
  t.true(long <= PROBE_REQUEST_SIZE, `${long} bytes`);
  const m = decodeProbe(buf, 0, long)!;
  t.is(m.relayId.length, 255, 'relay id cut to its length byte');
});

test('malformed probes decode to undefined (never throw)', (t) => {
  const buf = Buffer.alloc(PROBE_REQUEST_SIZE);
  const n = encodeProbe(buf, 0, { kind: PROBE_KIND_REPLY, id: 1, src: DST, dst: SRC, relayId: 'r1', allowed: '*' });
  t.truthy(decodeProbe(buf, 0, n), 'positive control');
  t.is(decodeProbe(buf, 0, 30), undefined, 'cut short');
  t.is(decodeProbe(buf, 0, n - 1), undefined, 'text runs past the end');
  t.true(isProbePacket(buf, 0, n), 'positive control');
  const badMagic = Buffer.from(buf);
  badMagic[20] ^= 1;
  t.is(decodeProbe(badMagic, 0, n), undefined);
  t.false(isProbePacket(badMagic, 0, n), 'protocol 253 without the magic is ordinary traffic');
  t.false(isProbePacket(buf, 0, 25), 'too short to hold the magic and header');
  const badKind = Buffer.from(buf);
  badKind[24] = 9;
  t.is(decodeProbe(badKind, 0, n), undefined);
  const otherProto = Buffer.from(buf);
  otherProto[9] = 1;
  t.false(isProbePacket(otherProto, 0, n));
  t.is(decodeProbe(otherProto, 0, n), undefined);
});
