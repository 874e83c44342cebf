/** The TUN `address` option (config input) on the shared parser: errors stay InvalidOptionError/EINVAL. */
import test from 'ava';
import fc from 'fast-check';
import { formatAddr } from '../../../common/ipv4';
import { parseTunAddress } from '../../../native-bindings/tun-device';

test('every valid a.b.c.d/len round-trips, host bits kept', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (addr, len) => {
      const r = parseTunAddress(`${formatAddr(addr)}/${len}`);
      return r.addr === addr && r.bits === len;
    }),
    { numRuns: 5000 },
  );
  t.deepEqual(parseTunAddress('100.64.0.1/10'), { addr: 0x64400001, bits: 10 });
});

test('anything else throws InvalidOptionError with code EINVAL', (t) => {
  for (const bad of ['10.0.0.1', '10.0.0.1/33', '10.0.0/24', '256.0.0.1/8', '10.0.0.1/', '/24', 'a.b.c.d/8', '10.0.0.1/2/3', ' 10.0.0.1/24',
    '010.0.0.1/8', '10.0.0.1/08']) {
    const e = t.throws(() => parseTunAddress(bad), { code: 'EINVAL', name: 'InvalidOptionError' }, bad);
    t.true(e!.message.includes(JSON.stringify(bad)));
  }
  fc.assert(
    fc.property(fc.string(), (s) => {
      try {
        const r = parseTunAddress(s);
        // Accepted: must then be the canonical form.
        return `${formatAddr(r.addr)}/${r.bits}` === s;
      } catch (e) {
        return (e as { code?: string }).code === 'EINVAL';
      }
    }),
    { numRuns: 5000 },
  );
});
