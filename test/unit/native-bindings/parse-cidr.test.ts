/** parseCidr is the one parser in the façade (config input): property-tested. */
import test from 'ava';
import fc from 'fast-check';
import { intToIpv4 } from '../../../common/packet-io';
import { parseCidr } from '../../../native-bindings/tun-device';

test('every valid a.b.c.d/len round-trips', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (addr, len) => {
      const r = parseCidr(`${intToIpv4(addr)}/${len}`);
      return r.addr === addr && r.prefixLen === len;
    }),
    { numRuns: 5000 },
  );
  t.pass();
});

test('anything else throws InvalidOptionError with code EINVAL', (t) => {
  for (const bad of ['10.0.0.1', '10.0.0.1/33', '10.0.0/24', '256.0.0.1/8', '10.0.0.1/', '/24', 'a.b.c.d/8', '10.0.0.1/2/3', ' 10.0.0.1/24']) {
    t.throws(() => parseCidr(bad), { code: 'EINVAL', name: 'InvalidOptionError' }, bad);
  }
  fc.assert(
    fc.property(fc.string(), (s) => {
      try {
        const r = parseCidr(s);
        // Accepted: must then be canonical-ish and in range.
        return r.prefixLen <= 32 && r.addr >= 0 && r.addr <= 0xffffffff && s.includes('/');
      } catch (e) {
        return (e as { code?: string }).code === 'EINVAL';
      }
    }),
    { numRuns: 5000 },
  );
});
