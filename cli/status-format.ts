/**
 * `isthmus status` and `isthmus ping` output: pure formatting of the agent's answers. The
 * status document's fields are documented in docs/OPERATIONS.md ("`isthmus status --json`");
 * the table keeps to 120 columns (long hostnames and port lists are cut with …).
 */
import type { ProbeResult } from '../node-agent';

export interface AgentStatus {
  publicKey: string;
  vip: string;
  tun?: string;
  listen?: { ip: string; port: number };
  relay?: { address: string; relayId?: string; ready: boolean; rebinds: number };
  /** Joined agents: the coordinator connection (the last peer-map poll's outcome). */
  coordinator?: { url: string; connected: boolean; lastContactWallMs: number; error?: string };
  drops: Record<string, number>;
  /** Joined agents: the peer-map checks (entries whose addresses overlap another member's are refused). */
  peerMap?: { version?: number; entries?: number; refusedEntries: number; refusedAnswers?: number };
  /** Joined agents: the signed membership record kept in the state dir (times: ms since the epoch), records refused. */
  record?: { issuedWallMs?: number; expiresWallMs?: number; refused: number; error?: string };
  /** The inbound flow filter's reply table (flows this member opened) and the addresses it owns. */
  flows?: { tracked: number; capacity: number; evictions: number; localAddresses: string[] };
  peers: Array<{
    /** From the peer map (joined agents only). */
    vip?: string;
    hostname?: string;
    originalIp?: string;
    tags?: string[];
    publicKey: string;
    allowedIps: string[];
    endpoint?: string;
    /** What the peer may open towards us: `*`, `none`, or specs like `tcp/22,icmp`. */
    inbound?: string;
    rxBytes: number;
    txBytes: number;
    handshakes: number;
    lastHandshakeWallMs: number;
  }>;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function formatAge(ms: number): string {
  if (ms < 0) return 'just now';
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** Cut `v` to `max` characters, marking the cut. */
function fit(v: string, max: number): string {
  return v.length <= max ? v : v.slice(0, max - 1) + '…';
}

/** How long until `ms` from now, roughly: `3d`, `5h`, `12m`, `40s`. */
function formatIn(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

function formatRecord(r: NonNullable<AgentStatus['record']>, nowMs: number): string {
  const exp = r.expiresWallMs;
  let line = exp === undefined ? 'membership record: none (the coordinator does not sign, or none received yet)'
    : `membership record expires ${new Date(exp).toISOString()} (${exp > nowMs ? `in ${formatIn(exp - nowMs)}` : 'EXPIRED'})`;
  if (r.refused > 0) line += `; ${r.refused} refused${r.error ? `, last: ${fit(r.error, 80)}` : ''}`;
  return line;
}

export function formatStatus(s: AgentStatus, nowMs: number): string {
  const lines: string[] = [];
  lines.push(`member ${s.vip}  key ${s.publicKey.slice(0, 8)}…  tun ${s.tun ?? '-'}`);
  if (s.relay) {
    lines.push(`relay  ${s.relay.address}  ${s.relay.ready ? `authenticated${s.relay.relayId ? ` to ${s.relay.relayId}` : ''}` : 'NOT authenticated'}${s.relay.rebinds ? `  (${s.relay.rebinds} failovers)` : ''}`);
  }
  if (s.coordinator) {
    const c = s.coordinator;
    const last = c.lastContactWallMs ? `last answer ${formatAge(nowMs - c.lastContactWallMs)}` : 'never answered';
    lines.push(`coordinator ${c.url}  ${c.connected ? 'connected (peer-map long-poll open)' : 'NOT connected'}, ${last}${c.error ? `; error: ${fit(c.error, 80)}` : ''}`);
  }
  if (s.record) lines.push(formatRecord(s.record, nowMs));
  if (s.peerMap && s.peerMap.version !== undefined) lines.push(`peer map version ${s.peerMap.version}, ${s.peerMap.entries ?? s.peers.length} entries (this member's included)`);
  if (s.listen) lines.push(`listen ${s.listen.ip}:${s.listen.port}`);
  lines.push('');
  const rows = [['PEER', 'VIP', 'ORIGINAL IP', 'PATH', 'HANDSHAKE', 'RX', 'TX', 'MAY OPEN']];
  for (const p of s.peers) {
    const vip = p.vip ?? p.allowedIps[0]?.replace(/\/32$/, '') ?? '-';
    const original = p.originalIp && p.originalIp !== vip ? p.originalIp
      : p.allowedIps.length > 1 ? p.allowedIps.slice(1).join(',') : '-';
    rows.push([
      fit(p.hostname ?? p.publicKey.slice(0, 8) + '…', 20), vip, fit(original, 18),
      !p.endpoint ? '-' : p.endpoint.split(':')[0] === 'relay' ? 'relay' : p.endpoint,
      p.lastHandshakeWallMs ? formatAge(nowMs - p.lastHandshakeWallMs) : 'never',
      formatBytes(p.rxBytes), formatBytes(p.txBytes), fit(p.inbound ?? '*', 18),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) lines.push(r.map((v, c) => v.padEnd(widths[c])).join('  ').trimEnd());
  if (s.peers.length === 0) lines.push('(no peers)');
  const drops = Object.entries(s.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  lines.push('', `drops: ${drops.length ? drops.join(', ') : 'none'}`);
  if (s.flows) {
    // The inbound filter's own reasons always show, so "0" is visible as a fact, not an absence.
    lines.push(`inbound filter: policy ${s.drops.policy ?? 0}, not-our-address ${s.drops['not-our-address'] ?? 0}; `
      + `own addresses ${s.flows.localAddresses.join(', ') || '-'}; reply flows ${s.flows.tracked}/${s.flows.capacity}`
      + (s.flows.evictions ? ` (${s.flows.evictions} evicted early: table too small)` : ''));
  }
  if (s.peerMap?.refusedAnswers) lines.push(`coordinator answers refused: ${s.peerMap.refusedAnswers} (bad or missing signature, or another signing key; see the agent log and docs/SECURITY.md)`);
  if (s.peerMap?.refusedEntries) lines.push(`peer-map entries refused: ${s.peerMap.refusedEntries} (their addresses overlap another member's; see the agent log)`);
  return lines.join('\n') + '\n';
}

/** One `isthmus ping` probe, as a line. */
export function formatProbe(r: ProbeResult): string {
  const who = r.peer.hostname ? `${r.peer.hostname} (${r.peer.vip})` : r.peer.vip;
  let path = '';
  if (r.path?.kind === 'direct') path = ` direct ${r.path.address}`;
  else if (r.path) {
    const mine = `relay ${r.path.relayId || '?'} at ${r.path.address}`;
    path = r.path.meshHop ? ` via ${mine} → mesh → relay ${r.path.peerRelayId}` : ` via ${mine}${r.path.peerRelayId ? ' (same relay)' : ''}`;
  }
  if (r.rttMs !== undefined) {
    const head = `pong from ${who}${path} in ${r.rttMs.toFixed(2)} ms`;
    return r.ok ? head : `${head}, but ${r.message}`;
  }
  return `probe ${r.seq} to ${who}: ${r.message ?? r.reason}`;
}
