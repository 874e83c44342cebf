/**
 * prom-client metrics for a relay, read from `relay.stats()` at scrape time: nothing is
 * added to the hot path. Names are listed in docs/OPERATIONS.md ("Metrics").
 */
import type { Registry } from 'prom-client';
import { byLabel, counterFrom, gaugeFrom, labelledFrom } from '../common';
import { DROP_REASONS } from './drop-reason';
import type { Relay } from './relay';
import type { RelayStatsSnapshot } from './stats';

export function registerRelayMetrics(registry: Registry, relay: Pick<Relay, 'stats'>): void {
  const counter = (name: string, help: string, pick: (s: RelayStatsSnapshot) => number): void =>
    counterFrom(registry, name, help, () => pick(relay.stats()));
  labelledFrom(registry, 'counter', 'isthmus_relay_drops_total', 'Datagrams dropped by the relay, by reason', ['reason'],
    () => byLabel('reason', DROP_REASONS, relay.stats().drops));
  counter('isthmus_relay_received_frames_total', 'Datagrams received on the member socket and the mesh socket, any kind', (s) => s.framesReceived);
  counter('isthmus_relay_forwarded_frames_total', 'DATA frames forwarded to a member (local or delivered from the mesh)', (s) => s.framesForwarded);
  counter('isthmus_relay_forwarded_bytes_total', 'Bytes of DATA frames forwarded to members', (s) => s.bytesForwarded);
  counter('isthmus_relay_policy_rejected_total', 'Malformed access policies read and refused (the last good one stayed)', (s) => s.policyRejected);
  counter('isthmus_relay_auth_ok_total', 'Successful member authentications (failures: isthmus_relay_drops_total{reason=~"auth-.*"})', (s) => s.authOk);
  counter('isthmus_relay_challenges_sent_total', 'CHALLENGE frames sent to members saying HELLO', (s) => s.challengesSent);
  counter('isthmus_relay_reauth_sent_total', 'REAUTH frames sent to unbound sources', (s) => s.reauthSent);
  counter('isthmus_relay_unreachable_sent_total', 'UNREACHABLE frames sent for destinations with no session', (s) => s.unreachableSent);
  counter('isthmus_relay_pongs_sent_total', 'PONG frames sent to members\' keepalive PINGs', (s) => s.pongsSent);
  counter('isthmus_relay_mesh_sent_frames_total', 'DATA frames sent over the mesh to a member\'s home relay', (s) => s.meshSent);
  counter('isthmus_relay_mesh_delivered_frames_total', 'MESH_DATA frames from other relays delivered to a member here', (s) => s.meshDelivered);
  gaugeFrom(registry, 'isthmus_relay_sessions', 'Authenticated member sessions bound to this relay', () => relay.stats().sessions);
}
