/** `isthmus status` output: pure formatting of the agent's status document. */

export interface AgentStatus {
  publicKey: string;
  vip: string;
  tun?: string;
  listen?: { ip: string; port: number };
  relay?: { address: string; relayId?: string; ready: boolean; rebinds: number };
  drops: Record<string, number>;
  /** Joined agents: the peer-map checks (entries whose addresses overlap another member's are refused). */
  peerMap?: { refusedEntries: number; refusedAnswers?: number };
  /** The inbound flow filter's reply table (flows this member opened) and the addresses it owns. */
  flows?: { tracked: number; capacity: number; evictions: number; localAddresses: string[] };
  peers: Array<{
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

export function formatStatus(s: AgentStatus, nowMs: number): string {
  const lines: string[] = [];
  lines.push(`member ${s.vip}  key ${s.publicKey.slice(0, 8)}…  tun ${s.tun ?? '-'}`);
  if (s.relay) {
    lines.push(`relay  ${s.relay.address}  ${s.relay.ready ? `authenticated${s.relay.relayId ? ` to ${s.relay.relayId}` : ''}` : 'NOT authenticated'}${s.relay.rebinds ? `  (${s.relay.rebinds} failovers)` : ''}`);
  }
  if (s.listen) lines.push(`listen ${s.listen.ip}:${s.listen.port}`);
  lines.push('');
  const rows = [['peer', 'key', 'endpoint', 'handshake', 'rx', 'tx', 'may open']];
  for (const p of s.peers) {
    rows.push([
      p.allowedIps.join(','), p.publicKey.slice(0, 8) + '…', p.endpoint ?? '-',
      p.lastHandshakeWallMs ? formatAge(nowMs - p.lastHandshakeWallMs) : 'never',
      formatBytes(p.rxBytes), formatBytes(p.txBytes), p.inbound ?? '*',
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
