import test from 'ava';
import { formatStatus, formatBytes, formatAge, formatProbe } from '../../../cli/status-format';

test('formats an agent status for people', (t) => {
  const out = formatStatus({
    publicKey: 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg=', vip: '100.64.0.1', tun: 'tun0',
    relay: { address: '10.90.0.1:7000', relayId: 'r1', ready: true, rebinds: 1 },
    drops: { 'no-route': 0, 'source-not-allowed': 3 },
    peers: [{ publicKey: 'ZZZZZZZZ' + 'a'.repeat(36), allowedIps: ['100.64.0.2/32'], endpoint: 'relay:100.64.0.2', rxBytes: 1536, txBytes: 3 * 2 ** 20, handshakes: 2, lastHandshakeWallMs: 1_000_000 }],
  }, 1_012_000);
  t.regex(out, /^member 100\.64\.0\.1  key AbCdEfGh…  tun tun0$/m);
  t.regex(out, /^relay  10\.90\.0\.1:7000  authenticated to r1  \(1 failovers\)$/m);
  t.regex(out, /^PEER\s+VIP\s+ORIGINAL IP\s+PATH\s+HANDSHAKE\s+RX\s+TX\s+MAY OPEN$/m);
  t.regex(out, /^ZZZZZZZZ…  100\.64\.0\.2  -\s+relay  12s ago\s+1\.5 KiB  3\.0 MiB  \*$/m, 'a static peer: its key, no hostname');
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
  t.regex(out, /^PEER\s.*\s+MAY OPEN$/m);
  t.regex(out, /^AAAAAAAA… +100\.64\.0\.2 .* tcp\/22,icmp$/m);
  t.regex(out, /^BBBBBBBB… +100\.64\.0\.3 .* none$/m);
  t.regex(out, /^drops: policy 4$/m);
  t.regex(out, /^inbound filter: policy 4, not-our-address 0; own addresses 100\.64\.0\.1, 10\.91\.1\.2; reply flows 3\/65536$/m);
});

test('a joined agent: hostnames, original IPs, the coordinator connection and the peer-map version; fits 120 columns', (t) => {
  const out = formatStatus({
    publicKey: 'k'.repeat(44), vip: '100.64.0.1', tun: 'isthmus0',
    relay: { address: '10.90.0.1:7000', relayId: 'r2', ready: true, rebinds: 0 },
    coordinator: { url: 'https://10.90.0.1:8080', connected: false, lastContactWallMs: 40_000, error: 'connect ECONNREFUSED 10.90.0.1:8080' },
    peerMap: { version: 17, entries: 3, refusedEntries: 0 },
    drops: {},
    peers: [
      { publicKey: 'A'.repeat(44), vip: '100.64.0.2', hostname: 'a-very-long-hostname-of-some-agent.example', originalIp: '10.91.1.2', tags: ['agent'],
        allowedIps: ['100.64.0.2/32', '10.91.1.2/32'], endpoint: 'relay:100.64.0.2', inbound: 'tcp/22,tcp/80,tcp/443,udp/53,icmp',
        rxBytes: 2 ** 40, txBytes: 2 ** 40, handshakes: 1, lastHandshakeWallMs: 1_000 },
      { publicKey: 'B'.repeat(44), vip: '100.64.0.3', hostname: 's1', originalIp: '10.92.1.2', tags: ['controller'],
        allowedIps: ['100.64.0.3/32', '10.92.1.2/32'], endpoint: '10.92.1.2:51820', inbound: 'none', rxBytes: 0, txBytes: 0, handshakes: 0, lastHandshakeWallMs: 0 },
    ],
  }, 100_000);
  t.regex(out, /^coordinator https:\/\/10\.90\.0\.1:8080  NOT connected, last answer 60s ago; error: connect ECONNREFUSED/m);
  t.regex(out, /^peer map version 17, 3 entries/m);
  t.regex(out, /^a-very-long-hostnam…  100\.64\.0\.2  10\.91\.1\.2\s+relay\s+99s ago\s+1\.0 TiB\s+1\.0 TiB\s+tcp\/22,tcp\/80,tcp…$/m);
  t.regex(out, /^s1\s+100\.64\.0\.3  10\.92\.1\.2\s+10\.92\.1\.2:51820  never .* none$/m);
  for (const line of out.split('\n')) t.true(line.length <= 120, `${line.length} columns: ${line}`);
});

test('ping lines: one relay, a mesh hop, a policy refusal with its RTT, a failure without one', (t) => {
  const peer = { vip: '100.64.0.2', hostname: 'a1' };
  t.is(formatProbe({ type: 'probe', seq: 1, ok: true, peer, rttMs: 1.234, path: { kind: 'relay', address: '10.90.0.1:7000', relayId: 'r1', peerRelayId: 'r1', meshHop: false } }),
    'pong from a1 (100.64.0.2) via relay r1 at 10.90.0.1:7000 (same relay) in 1.23 ms');
  t.is(formatProbe({ type: 'probe', seq: 1, ok: true, peer, rttMs: 2, path: { kind: 'relay', address: '10.90.0.1:7000', relayId: 'r2', peerRelayId: 'r1', meshHop: true } }),
    'pong from a1 (100.64.0.2) via relay r2 at 10.90.0.1:7000 → mesh → relay r1 in 2.00 ms');
  t.regex(formatProbe({ type: 'probe', seq: 1, ok: false, peer, rttMs: 2, reason: 'policy', message: 'policy: x may not open flows to y',
    path: { kind: 'relay', address: '10.90.0.1:7000', relayId: 'r2', peerRelayId: 'r2', meshHop: false } }), /^pong from .* in 2\.00 ms, but policy: x may not/);
  t.is(formatProbe({ type: 'probe', seq: 2, ok: false, peer, reason: 'peer-offline', message: 'peer offline: no answer' }), 'probe 2 to a1 (100.64.0.2): peer offline: no answer');
});

test('units and ages', (t) => {
  t.is(formatBytes(512), '512 B');
  t.is(formatBytes(2 ** 30 * 1.5), '1.5 GiB');
  t.is(formatAge(5_000), '5s ago');
  t.is(formatAge(600_000), '10m ago');
  t.is(formatAge(-5), 'just now');
});

test('the membership record: its expiry, an expired one, refused ones with the reason, none', (t) => {
  const base = { publicKey: 'k'.repeat(44), vip: '100.64.0.1', drops: {}, peers: [] };
  const now = Date.parse('2026-11-29T12:00:00Z');
  const exp = Date.parse('2026-11-30T12:00:00Z');
  t.regex(formatStatus({ ...base, record: { issuedWallMs: now - 1000, expiresWallMs: exp, refused: 0 } }, now),
    /^membership record expires 2026-11-30T12:00:00\.000Z \(in 24h\)$/m);
  t.regex(formatStatus({ ...base, record: { expiresWallMs: exp, refused: 0 } }, exp + 1), /^membership record expires 2026-11-30T12:00:00\.000Z \(EXPIRED\)$/m);
  t.regex(formatStatus({ ...base, record: { expiresWallMs: exp, refused: 2, error: 'membership record refused: it names another member\'s public key' } }, now),
    /^membership record expires .* \(in 24h\); 2 refused, last: membership record refused: it names another member's public key$/m);
  t.regex(formatStatus({ ...base, record: { refused: 0 } }, now), /^membership record: none /m);
  t.false(formatStatus(base, now).includes('membership record'), 'a static agent: no line');
});
