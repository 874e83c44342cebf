/**
 * The network lab: what the demo, the netns tests and the benchmarks build on.
 *
 * Network namespaces wired as two isolated VPCs and a hub with a VIP (topology.ts), processes
 * started in them and ended by PID (procs.ts), a private redis-server (redis-server.ts), the
 * isthmus overlay started as real processes in three shapes (peers/isthmus*.ts), the peers we
 * compare against (stock wireguard-go, nebula), and the traffic tools that measure a path
 * (iperf.ts). Everything it creates carries a per-run prefix and is removed on teardown, also
 * when the process dies of a signal.
 *
 * Nothing in the product's daemons imports this part; only `cli/commands/demo.ts`, `bench/`
 * and `test/` do.
 */
export * from './topology';
export * from './procs';
export * from './redis-server';
export * from './relay-cluster';
export * from './redis-sentinel';
export * from './member-namespace';
export * from './iperf';
export * from './rr';
export * from './bench-goals';
export * from './subject';
export * from './peers/isthmus';
export * from './peers/isthmus-cluster';
export {
  startJoinedOverlay, COORDINATOR_PORT, JOINED_RELAY_PORT, COORDINATOR_METRICS_PORT, RELAY_METRICS_PORT,
  type JoinedMember, type JoinOptions, type JoinedOverlay, type JoinedOverlayOptions, type MetricsEndpoint,
} from './peers/isthmus-joined';
export * from './peers/wireguard-go';
export * from './peers/wireguard-go-hub';
export * from './peers/wireguard-go-current';
export * from './peers/nebula';
export { makeCoordinatorTls, type CoordinatorTls } from './tls-certs';
