/**
 * prom-client metrics for an agent, read from its counters at scrape time (peer stats, the
 * device's drop counters, the relay client): nothing is added to the data path.
 *
 * Per-peer series are labelled by the peer's overlay address (never its key) and exist only
 * for the peers the agent holds, so their number is bounded by the peer count; a removed
 * peer's series go away at the next scrape.
 */
import type { Registry } from 'prom-client';
import { byLabel, counterFrom, formatAddr, formatPrefix, gaugeFrom, labelledFrom } from '../common';
import { x25519Operations } from '../protocol';
import type { Agent } from './agent';
import { AGENT_DROP_REASONS } from './drop-reason';
import { EndpointKind } from './endpoint';
import type { Peer } from './peer';
import type { PeerStats } from './peer';
import type { RelayClientState } from './relay-client';

const RELAY_STATES: readonly RelayClientState[] = ['idle', 'authenticating', 'ready', 'stopped'];

/** The peer's overlay address: its relay endpoint's, else its first /32, else its first prefix. */
export function peerLabel(p: Peer): string {
  if (p.endpoint?.kind === EndpointKind.Relay) return formatAddr(p.endpoint.vip);
  const host = p.allowedIps.find((c) => c.bits === 32) ?? p.allowedIps[0];
  return host ? (host.bits === 32 ? formatAddr(host.addr) : formatPrefix(host)) : 'none';
}

export function registerAgentMetrics(registry: Registry, agent: Pick<Agent, 'peers' | 'device' | 'relayClient' | 'relayRebinds'>): void {
  const perPeer = (kind: 'counter' | 'gauge', name: string, help: string, pick: (s: PeerStats) => number | undefined) =>
    labelledFrom(registry, kind, name, help, ['peer'], function* () {
      for (const p of agent.peers.all()) {
        const v = pick(p.stats);
        if (v !== undefined) yield [{ peer: peerLabel(p) }, v] as const;
      }
    });
  perPeer('counter', 'isthmus_agent_peer_received_bytes_total', 'Plaintext bytes received from the peer (after decryption)', (s) => s.rxBytes);
  perPeer('counter', 'isthmus_agent_peer_sent_bytes_total', 'Plaintext bytes sent to the peer (before encryption)', (s) => s.txBytes);
  perPeer('counter', 'isthmus_agent_peer_received_packets_total', 'Packets received from the peer', (s) => s.rxPackets);
  perPeer('counter', 'isthmus_agent_peer_sent_packets_total', 'Packets sent to the peer', (s) => s.txPackets);
  perPeer('counter', 'isthmus_agent_peer_handshakes_total', 'Completed handshakes with the peer', (s) => s.handshakes);
  perPeer('gauge', 'isthmus_agent_peer_last_handshake_timestamp_seconds', 'Unix time of the last completed handshake with the peer (absent before the first)',
    (s) => (s.lastHandshakeWallMs > 0 ? s.lastHandshakeWallMs / 1000 : undefined));
  gaugeFrom(registry, 'isthmus_agent_peers', 'Peers this agent holds', () => agent.peers.size);
  gaugeFrom(registry, 'isthmus_agent_live_peers', 'Peers holding session state (crypto, timers): talked to recently; the others are directory records', () => agent.peers.liveCount);
  labelledFrom(registry, 'counter', 'isthmus_agent_drops_total', 'Packets dropped by the agent, by reason', ['reason'],
    () => byLabel('reason', AGENT_DROP_REASONS, agent.device.drops));
  counterFrom(registry, 'isthmus_agent_x25519_operations_total', 'X25519 scalar multiplications done by the agent (the handshake\'s expensive work)', () => x25519Operations());
  gaugeFrom(registry, 'isthmus_agent_handshake_rate_limit_sources', 'Sources holding a handshake rate-limit bucket (seen in the last second)',
    () => agent.device.handshakes.rateLimitSources);
  labelledFrom(registry, 'gauge', 'isthmus_agent_relay_state', 'The relay session\'s state: 1 for the current one (no series without a relay)', ['state'],
    function* () {
      const r = agent.relayClient;
      if (r) for (const s of RELAY_STATES) yield [{ state: s }, r.state === s ? 1 : 0] as const;
    });
  gaugeFrom(registry, 'isthmus_agent_relay_up', '1 while authenticated to a relay, 0 otherwise', () => (agent.relayClient?.state === 'ready' ? 1 : 0));
  counterFrom(registry, 'isthmus_agent_relay_rebinds_total', 'Relay failovers: the relay stopped answering and the agent rebound on a new source port', () => agent.relayRebinds);
  const relayStat = (name: string, help: string, pick: (r: NonNullable<Agent['relayClient']>) => number) =>
    counterFrom(registry, name, help, () => { const r = agent.relayClient; return r ? pick(r) : 0; });
  relayStat('isthmus_agent_relay_auth_ok_total', 'Authentications accepted by the relay (this relay session)', (r) => r.stats.authOk);
  relayStat('isthmus_agent_relay_auth_failed_total', 'Authentications the relay refused (this relay session)', (r) => r.stats.authFailed);
  relayStat('isthmus_agent_relay_pings_sent_total', 'Keepalive PINGs sent to the relay (this relay session)', (r) => r.stats.pingsSent);
  relayStat('isthmus_agent_relay_pongs_received_total', 'PONGs received from the relay (this relay session)', (r) => r.stats.pongsReceived);
  gaugeFrom(registry, 'isthmus_agent_relay_rtt_seconds', 'Round trip of the last answered PING to the relay', () => {
    const ms = agent.relayClient?.stats.lastRttMs;
    return ms === undefined || Number.isNaN(ms) ? undefined : ms / 1000;
  });
}
