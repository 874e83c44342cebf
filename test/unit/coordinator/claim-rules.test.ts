/** What a member may claim as its original IP: the stateless half (the join script does the rest). */
import test from 'ava';
import { insideAny, parseOriginalCidrs, sourceIpv4, staticOriginalIpRefusal } from '../../../coordinator/claim-rules';
import { parseVipPool } from '../../../coordinator/ipam';

const overlay = parseVipPool('100.64.0.0/10');

test('overlay and special-purpose addresses are refused; an ordinary host address passes', (t) => {
  t.is(staticOriginalIpRefusal('10.1.2.3', overlay), undefined, 'positive control');
  t.is(staticOriginalIpRefusal('100.63.255.255', overlay), undefined, 'just below the overlay');
  t.is(staticOriginalIpRefusal('100.128.0.0', overlay), undefined, 'just above the overlay');
  for (const a of ['100.64.0.1', '100.64.0.0', '100.127.255.255']) t.is(staticOriginalIpRefusal(a, overlay)?.code, 'original-ip-in-overlay', a);
  for (const a of ['0.0.0.0', '0.1.2.3', '127.0.0.1', '127.255.255.255', '169.254.169.254', '224.0.0.1', '239.255.255.255', '240.0.0.1', '255.255.255.255']) {
    t.is(staticOriginalIpRefusal(a, overlay)?.code, 'original-ip-special', a);
  }
  for (const a of ['1.0.0.0', '223.255.255.255', '169.253.255.255']) t.is(staticOriginalIpRefusal(a, overlay), undefined, a);
});

test('token prefixes: strict, normalized, unique; membership', (t) => {
  t.deepEqual(parseOriginalCidrs(['10.2.0.0/16', '10.1.0.0/16', '10.1.0.0/16']), ['10.1.0.0/16', '10.2.0.0/16']);
  t.throws(() => parseOriginalCidrs(['10.1.0.1/16']), { message: /10\.1\.0\.1\/16/ });
  t.throws(() => parseOriginalCidrs(['10.1.0.0']));
  t.throws(() => parseOriginalCidrs(['10.1.0.0/33']));
  t.true(insideAny('10.1.200.3', ['10.2.0.0/16', '10.1.0.0/16']));
  t.false(insideAny('10.3.0.1', ['10.2.0.0/16', '10.1.0.0/16']));
  t.false(insideAny('10.3.0.1', []));
  t.true(insideAny('192.0.2.7', ['0.0.0.0/0']));
});

test('source address: IPv4-mapped IPv6 is unwrapped; IPv6 is not an IPv4 source', (t) => {
  t.is(sourceIpv4('::ffff:10.0.0.1'), '10.0.0.1');
  t.is(sourceIpv4('10.0.0.1'), '10.0.0.1');
  t.is(sourceIpv4('::1'), undefined);
  t.is(sourceIpv4(undefined), undefined);
});
