/**
 * prom-client metrics for a relay, read from `relay.stats()` at scrape time: nothing is
 * added to the hot path.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { DROP_REASONS } from './drop-reason';
import type { Relay } from './relay';

export function registerRelayMetrics(registry: Registry, relay: Pick<Relay, 'stats'>): void {
  const registers = [registry];
  new Counter({
    name: 'isthmus_relay_drops_total', help: 'Datagrams dropped by the relay, by reason', labelNames: ['reason'], registers,
    collect() {
      const s = relay.stats();
      this.reset();
      for (const r of DROP_REASONS) this.inc({ reason: r }, s.drops[r]);
    },
  });
  const counter = (name: string, help: string, pick: (s: ReturnType<Relay['stats']>) => number): void => {
    new Counter({
      name, help, registers,
      collect() {
        this.reset();
        this.inc(pick(relay.stats()));
      },
    });
  };
  counter('isthmus_relay_forwarded_frames_total', 'DATA frames forwarded', (s) => s.framesForwarded);
  counter('isthmus_relay_forwarded_bytes_total', 'Bytes of DATA frames forwarded', (s) => s.bytesForwarded);
  counter('isthmus_relay_received_frames_total', 'Datagrams received', (s) => s.framesReceived);
  counter('isthmus_relay_auth_ok_total', 'Successful member authentications', (s) => s.authOk);
  counter('isthmus_relay_policy_rejected_total', 'Malformed access policies read and refused (the last good one stayed)', (s) => s.policyRejected);
  new Gauge({
    name: 'isthmus_relay_sessions', help: 'Bound member sessions', registers,
    collect() {
      this.set(relay.stats().sessions);
    },
  });
}
