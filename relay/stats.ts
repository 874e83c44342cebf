/**
 * Relay counters: plain numbers bumped on the hot path (no allocation), read through
 * `snapshot()` for the stats method, the periodic log line and metrics.
 */
import { DROP_REASONS, emptyDropCounters, type DropCounters, type DropReason } from './drop-reason';

export interface RelayStatsSnapshot {
  framesForwarded: number;
  bytesForwarded: number;
  /** datagrams received, any kind */
  framesReceived: number;
  authOk: number;
  challengesSent: number;
  reauthSent: number;
  unreachableSent: number;
  pongsSent: number;
  /** DATA sent to another relay over the mesh / MESH_DATA delivered to a member here */
  meshSent: number;
  meshDelivered: number;
  /** times a malformed access policy was read and refused (the last good one stayed) */
  policyRejected: number;
  sessions: number;
  drops: DropCounters;
  /** sum of drops */
  dropped: number;
}

export class RelayStats {
  framesForwarded = 0;
  bytesForwarded = 0;
  framesReceived = 0;
  authOk = 0;
  challengesSent = 0;
  reauthSent = 0;
  unreachableSent = 0;
  pongsSent = 0;
  meshSent = 0;
  meshDelivered = 0;
  policyRejected = 0;
  readonly drops: DropCounters = emptyDropCounters();

  drop(reason: DropReason): void {
    this.drops[reason]++;
  }

  snapshot(sessions: number): RelayStatsSnapshot {
    let dropped = 0;
    for (const r of DROP_REASONS) dropped += this.drops[r];
    return {
      framesForwarded: this.framesForwarded, bytesForwarded: this.bytesForwarded, framesReceived: this.framesReceived,
      authOk: this.authOk, challengesSent: this.challengesSent, reauthSent: this.reauthSent,
      unreachableSent: this.unreachableSent, pongsSent: this.pongsSent, meshSent: this.meshSent,
      meshDelivered: this.meshDelivered, policyRejected: this.policyRejected, sessions,
      drops: { ...this.drops }, dropped,
    };
  }
}
