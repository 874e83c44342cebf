import test from 'ava';
import { formatStatus, formatBytes, formatAge } from '../../../cli/status-format';

test('formats an agent status for people', (t) => {
  const out = formatStatus({
    publicKey: 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg=', vip: '100.64.0.1', tun: 'tun0',
    relay: { address: '10.90.0.1:7000', relayId: 'r1', ready: true, rebinds: 1 },
    drops: { 'no-route': 0, 'source-not-allowed': 3 },
    peers: [{ publicKey: 'ZZZZZZZZ' + 'a'.repeat(36), allowedIps: ['100.64.0.2/32'], endpoint: 'relay:100.64.0.2', rxBytes: 1536, txBytes: 3 * 2 ** 20, handshakes: 2, lastHandshakeWallMs: 1_000_000 }],
  }, 1_012_000);
  t.regex(out, /^member 100\.64\.0\.1  key AbCdEfGh…  tun tun0$/m);
  t.regex(out, /^relay  10\.90\.0\.1:7000  authenticated to r1  \(1 failovers\)$/m);
  t.regex(out, /^100\.64\.0\.2\/32  ZZZZZZZZ…  relay:100\.64\.0\.2  12s ago\s+1\.5 KiB  3\.0 MiB  \*$/m);
  t.regex(out, /^drops: source-not-allowed 3$/m);
  t.false(out.includes('peer-map entries refused'), 'nothing refused: no line');
  const refused = formatStatus({ publicKey: 'k'.repeat(44), vip: '100.64.0.1', drops: {}, peers: [], peerMap: { refusedEntries: 2 } }, 0);
  t.regex(refused, /^peer-map entries refused: 2 /m);
});

test('the inbound filter: what each peer may open, drops by reason (zero shown), reply flows', (t) => {
  const out = formatStatus({
    publicKey: 'k'.repeat(44), vip: '100.64.0.1',
    drops: { 'no-route': 0, policy: 4, 'not-our-address': 0 },
    flows: { tracked: 3, capacity: 65536, evictions: 0, localAddresses: ['100.64.0.1', '10.91.1.2'] },
    peers: [
      { publicKey: 'A'.repeat(44), allowedIps: ['100.64.0.2/32'], inbound: 'tcp/22,icmp', rxBytes: 0, txBytes: 0, handshakes: 0, lastHandshakeWallMs: 0 },
      { publicKey: 'B'.repeat(44), allowedIps: ['100.64.0.3/32'], inbound: 'none', rxBytes: 0, txBytes: 0, handshakes: 0, lastHandshakeWallMs: 0 },
    ],
  }, 0);
  t.regex(out, /^peer\s.*\s+may open$/m);
  t.regex(out, /^100\.64\.0\.2\/32 .* tcp\/22,icmp$/m);
  t.regex(out, /^100\.64\.0\.3\/32 .* none$/m);
  t.regex(out, /^drops: policy 4$/m);
  t.regex(out, /^inbound filter: policy 4, not-our-address 0; own addresses 100\.64\.0\.1, 10\.91\.1\.2; reply flows 3\/65536$/m);
});

test('units and ages', (t) => {
  t.is(formatBytes(512), '512 B');
  t.is(formatBytes(2 ** 30 * 1.5), '1.5 GiB');
  t.is(formatAge(5_000), '5s ago');
  t.is(formatAge(600_000), '10m ago');
  t.is(formatAge(-5), 'just now');
});
