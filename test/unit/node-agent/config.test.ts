import test from 'ava';
import { parseAgentConfig, ConfigError } from '../../../node-agent/config';
import { formatPrefix } from '../../../common/ipv4';

const KEY_A = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const KEY_B = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

const GOOD = `
# member a1
[Interface]
PrivateKey = ${KEY_A}
Address = 100.64.0.1/10
ListenPort = 51820
Relay = 10.90.0.1:7000

[Peer]
PublicKey = ${KEY_B}
AllowedIPs = 100.64.0.2/32, 10.1.0.0/16
Endpoint = relay
PersistentKeepalive = 25
`;

test('parses a full config', (t) => {
  const c = parseAgentConfig(GOOD);
  t.is(c.privateKey, KEY_A);
  t.is(formatPrefix(c.address), '100.64.0.1/10'); // interface address: host bits kept
  t.is(c.listenPort, 51820);
  t.is(c.mtu, 1420);
  t.deepEqual(c.relay, { host: '10.90.0.1', port: 7000 });
  t.is(c.peers.length, 1);
  t.is(c.peers[0].endpoint, 'relay');
  t.is(c.peers[0].overlayIp, '100.64.0.2');
  t.deepEqual(c.peers[0].allowedIps.map(formatPrefix), ['100.64.0.2/32', '10.1.0.0/16']);
  t.is(c.peers[0].persistentKeepaliveSec, 25);
});

test('direct endpoints and case-insensitive keys', (t) => {
  const c = parseAgentConfig(`[interface]\nprivatekey=${KEY_A}\naddress=100.64.0.1/10\n[peer]\npublickey=${KEY_B}\nallowedips=100.64.0.2/32\nendpoint=192.0.2.1:51820\n`);
  t.deepEqual(c.peers[0].endpoint, { host: '192.0.2.1', port: 51820 });
});

test('AllowedIPs are networks (host bits cleared); a leading zero is an error naming the line', (t) => {
  const c = parseAgentConfig(GOOD.replace('10.1.0.0/16', '10.1.2.3/16'));
  t.deepEqual(c.peers[0].allowedIps.map(formatPrefix), ['100.64.0.2/32', '10.1.0.0/16']);
  t.throws(() => parseAgentConfig(GOOD.replace('10.1.0.0/16', '010.1.0.0/16')), { instanceOf: ConfigError, message: /^line 11: AllowedIPs: .*010\.1\.0\.0\/16/ });
});

function errorOf(text: string): ConfigError {
  try {
    parseAgentConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

test('errors name the line and the field', (t) => {
  const bad = GOOD.replace('Address = 100.64.0.1/10', 'Address = 100.64.0.300/10');
  const e = errorOf(bad);
  t.is(e.line, 5);
  t.is(e.field, 'Address');
  t.regex(e.message, /^line 5: Address: /);

  t.regex(errorOf(GOOD.replace(`PrivateKey = ${KEY_A}`, 'PrivateKey = nope')).message, /line 4: PrivateKey: not a base64 32-byte key/);
  t.regex(errorOf(GOOD.replace('ListenPort = 51820', 'ListenPort = 70000')).message, /ListenPort: must be an integer/);
  t.regex(errorOf(GOOD.replace('Endpoint = relay', 'Endpoint = somewhere')).message, /Endpoint: expected HOST:PORT or "relay"/);
  t.regex(errorOf(GOOD + 'Colour = blue\n').message, /Colour: unknown field/i);
  t.regex(errorOf(GOOD.replace('Relay = 10.90.0.1:7000', '')).message, /Relay: a peer uses Endpoint = relay/);
  t.regex(errorOf('[Peer]\nPublicKey = ' + KEY_B + '\n').message, /\[Interface\]: missing/);
  t.regex(errorOf(GOOD.replace('[Peer]', '[Pier]')).message, /unknown section/);
  t.regex(errorOf(GOOD.replace('AllowedIPs = 100.64.0.2/32, 10.1.0.0/16', 'AllowedIPs = 10.1.0.0/16')).message, /OverlayIP: a peer reached through the relay needs/);
  t.regex(errorOf('[Interface]\nthis is not a field\n').message, /line 2: .*expected "Key = Value"/);
});

test('Inbound: port specs per peer, `none`, default absent (= `*`); a bad spec names the line', (t) => {
  t.is(parseAgentConfig(GOOD).peers[0].inbound, undefined, 'absent: the agent treats the peer as `*`');
  const withInbound = (v: string) => parseAgentConfig(`${GOOD}Inbound = ${v}\n`).peers[0].inbound;
  t.deepEqual(withInbound('tcp/22, tcp/8000-9000,udp/53 , icmp'), ['tcp/22', 'tcp/8000-9000', 'udp/53', 'icmp']);
  t.deepEqual(withInbound('*'), ['*']);
  t.deepEqual(withInbound('none'), []);
  const e = t.throws(() => withInbound('tcp/22, tcp/70000'), { instanceOf: ConfigError });
  t.regex(e!.message, /^line 14: Inbound: .*70000.*outside 1-65535/);
  t.throws(() => withInbound(','), { instanceOf: ConfigError, message: /Inbound: name at least one/ });
});
