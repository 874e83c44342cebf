/**
 * The static-peer config file of `isthmus agent --config FILE`, in the spirit of wg-quick:
 *
 *   [Interface]
 *   PrivateKey = <base64>            # required; `isthmus keygen` makes one
 *   Address = 100.64.0.1/10          # required; this member's overlay address and the overlay prefix
 *   ListenPort = 51820               # optional; UDP port for direct peers (default: kernel-chosen)
 *   ListenAddress = 0.0.0.0          # optional
 *   MTU = 1420                       # optional
 *   Name = isthmus0                  # optional TUN name (default: kernel-chosen isth%d)
 *   Relay = 10.90.0.1:7000           # required when any peer has Endpoint = relay
 *
 *   [Peer]
 *   PublicKey = <base64>             # required
 *   AllowedIPs = 100.64.0.2/32, 10.1.0.0/16   # required; what this peer may send from and is routed to
 *   Endpoint = 192.0.2.1:51820 | relay        # optional; "relay" = through the relay, addressed by the
 *                                             # peer's overlay address (first /32 of AllowedIPs, or OverlayIP)
 *   OverlayIP = 100.64.0.2           # optional; the peer's overlay address when it differs from the first /32
 *   PresharedKey = <base64>          # optional
 *   PersistentKeepalive = 25         # optional, seconds
 *   Inbound = tcp/22, udp/53, icmp   # optional; what this peer may open towards us (policy port
 *                                    # specs: tcp/N, tcp/N-M, udp/N, udp/N-M, icmp, *, or "none").
 *                                    # Default *: no filter (a plain WireGuard peer, as before).
 *                                    # Replies to flows we open pass either way.
 *
 * `#` and `;` start comments. Keys are case-insensitive. Every error names the line and field.
 * This module is pure: it parses text; reading the file is the caller's job.
 */
import { formatAddr, masked, parsePrefix, type Prefix } from '../common';
import { parsePortSpec } from '../policy';

export interface PeerConfig {
  publicKey: string;
  /** Networks (host bits cleared: '10.1.2.3/24' means 10.1.2.0/24). */
  allowedIps: Prefix[];
  /** Direct UDP endpoint, or 'relay', or undefined (learned when the peer writes first). */
  endpoint?: { host: string; port: number } | 'relay';
  /** The overlay address the relay knows this peer by. */
  overlayIp?: string;
  presharedKey?: string;
  persistentKeepaliveSec?: number;
  /** Port specs this peer may open towards us (`tcp/22`, `icmp`, `*`…); [] for none. @default undefined: `*` */
  inbound?: string[];
}

export interface AgentConfig {
  privateKey: string;
  /** The interface address with its prefix length, host bits kept ('100.64.0.1/10'). */
  address: Prefix;
  listenPort?: number;
  listenAddress?: string;
  mtu: number;
  name?: string;
  relay?: { host: string; port: number };
  peers: PeerConfig[];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ERR_CONFIG';
  constructor(readonly line: number, readonly field: string, message: string) {
    super(`line ${line}: ${field}: ${message}`);
  }
}

export const DEFAULT_MTU = 1420;
const KEY_RE = /^[A-Za-z0-9+/]{43}=$/;

export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const m = /^([^:\s]+):(\d{1,5})$/.exec(value.trim());
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1], port };
}

type Section = { kind: 'interface' | 'peer'; line: number; fields: Map<string, { value: string; line: number }> };

function splitSections(text: string): Section[] {
  const sections: Section[] = [];
  let current: Section | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const content = raw.replace(/[#;].*$/, '').trim();
    if (!content) return;
    const header = /^\[(\w+)\]$/.exec(content);
    if (header) {
      const kind = header[1].toLowerCase();
      if (kind !== 'interface' && kind !== 'peer') throw new ConfigError(line, `[${header[1]}]`, 'unknown section (expected [Interface] or [Peer])');
      current = { kind, line, fields: new Map() };
      sections.push(current);
      return;
    }
    const kv = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(content);
    if (!kv) throw new ConfigError(line, content.slice(0, 20), 'expected "Key = Value"');
    if (!current) throw new ConfigError(line, kv[1], 'field outside of a section');
    const key = kv[1].toLowerCase();
    if (current.fields.has(key)) throw new ConfigError(line, kv[1], 'given twice in one section');
    current.fields.set(key, { value: kv[2].trim(), line });
  });
  return sections;
}

function takeKey(section: Section, field: string, required: boolean): string | undefined {
  const f = section.fields.get(field.toLowerCase());
  if (!f) {
    if (required) throw new ConfigError(section.line, field, 'required in this section');
    return undefined;
  }
  if (!KEY_RE.test(f.value)) throw new ConfigError(f.line, field, 'not a base64 32-byte key');
  return f.value;
}

function takeInt(section: Section, field: string, min: number, max: number): number | undefined {
  const f = section.fields.get(field.toLowerCase());
  if (!f) return undefined;
  if (!/^\d+$/.test(f.value) || Number(f.value) < min || Number(f.value) > max) {
    throw new ConfigError(f.line, field, `must be an integer from ${min} to ${max}`);
  }
  return Number(f.value);
}

function takePrefix(f: { value: string; line: number }, field: string): Prefix {
  try {
    return parsePrefix(f.value.trim());
  } catch (err) {
    throw new ConfigError(f.line, field, (err as Error).message);
  }
}

function takeHostPort(section: Section, field: string): { host: string; port: number } | undefined {
  const f = section.fields.get(field.toLowerCase());
  if (!f) return undefined;
  const hp = parseHostPort(f.value);
  if (!hp) throw new ConfigError(f.line, field, 'expected HOST:PORT');
  return hp;
}

const INTERFACE_FIELDS = new Set(['privatekey', 'address', 'listenport', 'listenaddress', 'mtu', 'name', 'relay']);
const PEER_FIELDS = new Set(['publickey', 'allowedips', 'endpoint', 'overlayip', 'presharedkey', 'persistentkeepalive', 'inbound']);

function rejectUnknown(section: Section, known: Set<string>): void {
  for (const [key, f] of section.fields) {
    if (!known.has(key)) throw new ConfigError(f.line, key, `unknown field in [${section.kind === 'peer' ? 'Peer' : 'Interface'}]`);
  }
}

function parsePeer(section: Section): PeerConfig {
  rejectUnknown(section, PEER_FIELDS);
  const publicKey = takeKey(section, 'PublicKey', true)!;
  const allowed = section.fields.get('allowedips');
  if (!allowed) throw new ConfigError(section.line, 'AllowedIPs', 'required in [Peer]');
  const allowedIps = allowed.value.split(',').map((s) => s.trim()).filter(Boolean)
    .map((v) => masked(takePrefix({ value: v, line: allowed.line }, 'AllowedIPs')));
  if (allowedIps.length === 0) throw new ConfigError(allowed.line, 'AllowedIPs', 'needs at least one prefix');
  const peer: PeerConfig = { publicKey, allowedIps };
  const ep = section.fields.get('endpoint');
  if (ep) {
    if (ep.value.toLowerCase() === 'relay') peer.endpoint = 'relay';
    else {
      const hp = parseHostPort(ep.value);
      if (!hp) throw new ConfigError(ep.line, 'Endpoint', 'expected HOST:PORT or "relay"');
      peer.endpoint = hp;
    }
  }
  const overlay = section.fields.get('overlayip');
  if (overlay) {
    const c = takePrefix({ value: overlay.value.includes('/') ? overlay.value : overlay.value + '/32', line: overlay.line }, 'OverlayIP');
    if (c.bits !== 32) throw new ConfigError(overlay.line, 'OverlayIP', 'must be a single address');
    peer.overlayIp = formatAddr(c.addr);
  } else {
    const host = allowedIps.find((c) => c.bits === 32);
    peer.overlayIp = host && formatAddr(host.addr);
  }
  if (peer.endpoint === 'relay' && !peer.overlayIp) {
    throw new ConfigError(section.line, 'OverlayIP', 'a peer reached through the relay needs an overlay address (OverlayIP, or a /32 in AllowedIPs)');
  }
  peer.presharedKey = takeKey(section, 'PresharedKey', false);
  peer.persistentKeepaliveSec = takeInt(section, 'PersistentKeepalive', 0, 65535);
  const inbound = section.fields.get('inbound');
  if (inbound) {
    const specs = inbound.value.split(',').map((v) => v.trim()).filter(Boolean);
    if (specs.length === 0) throw new ConfigError(inbound.line, 'Inbound', 'name at least one port spec, or "none"');
    if (specs.length === 1 && specs[0].toLowerCase() === 'none') peer.inbound = [];
    else {
      for (const v of specs) {
        try {
          parsePortSpec(v);
        } catch (err) {
          throw new ConfigError(inbound.line, 'Inbound', (err as Error).message.replace(/^port: /, ''));
        }
      }
      peer.inbound = specs;
    }
  }
  return peer;
}

export function parseAgentConfig(text: string): AgentConfig {
  const sections = splitSections(text);
  const ifaces = sections.filter((s) => s.kind === 'interface');
  if (ifaces.length === 0) throw new ConfigError(1, '[Interface]', 'missing');
  if (ifaces.length > 1) throw new ConfigError(ifaces[1].line, '[Interface]', 'only one allowed');
  const iface = ifaces[0];
  rejectUnknown(iface, INTERFACE_FIELDS);
  const addr = iface.fields.get('address');
  if (!addr) throw new ConfigError(iface.line, 'Address', 'required in [Interface]');
  const address = takePrefix({ value: addr.value, line: addr.line }, 'Address');
  const name = iface.fields.get('name');
  if (name && !/^[A-Za-z0-9_.-]{1,15}$/.test(name.value)) throw new ConfigError(name.line, 'Name', 'interface names are 1-15 characters of [A-Za-z0-9_.-]');
  const listenAddress = iface.fields.get('listenaddress');
  const config: AgentConfig = {
    privateKey: takeKey(iface, 'PrivateKey', true)!,
    address,
    listenPort: takeInt(iface, 'ListenPort', 0, 65535),
    listenAddress: listenAddress?.value,
    mtu: takeInt(iface, 'MTU', 576, 9000) ?? DEFAULT_MTU,
    name: name?.value,
    relay: takeHostPort(iface, 'Relay'),
    peers: sections.filter((s) => s.kind === 'peer').map(parsePeer),
  };
  const seen = new Set<string>();
  for (const p of config.peers) {
    if (seen.has(p.publicKey)) throw new ConfigError(0, 'PublicKey', `peer ${p.publicKey.slice(0, 8)}… listed twice`);
    seen.add(p.publicKey);
    if (p.endpoint === 'relay' && !config.relay) throw new ConfigError(iface.line, 'Relay', 'a peer uses Endpoint = relay but [Interface] has no Relay');
  }
  return config;
}
