/**
 * @packageDocumentation
 * The member daemon: a TUN device and WireGuard sessions with peers, reached through a relay
 * (or directly). `Agent` wires the engine (device.ts: inside.ts TUN → seal → UDP, outside.ts
 * UDP → open → TUN) to its components (TUN, sockets, clock, logger); `MembershipClient` keeps
 * the peer map in step with the coordinator; the control socket serves `isthmus status`.
 */
export { Agent, RELAY_FAILOVER_TIMING, type AgentComponents } from './agent';
export { ConfigError, DEFAULT_MTU, parseAgentConfig, parseHostPort, type AgentConfig } from './config';
export { readControlSocket, requestControlSocket, serveControlSocket, type ControlHandlers } from './control-socket';
export { Prober, PROBE_REPLIES_PER_SECOND, type DirectoryEntry, type PingFailure, type PingPath, type PingRequest, type ProbeResult } from './ping';
export { Device, DEVICE_HEADROOM, DEVICE_TAILROOM, type DeviceComponents } from './device';
export { Endpoint, EndpointKind } from './endpoint';
export { JoinBackoff, JOIN_BACKOFF_BASE_MS, JOIN_BACKOFF_CAP_MS, JOIN_RETRY_AFTER_MAX_MS, parseRetryAfter, type JoinBackoffOptions, type JoinFailure } from './join-backoff';
export { FlowFilter } from './flow-filter';
export { MembershipClient } from './membership';
export { detectOriginalIp } from './original-ip';
export { PeerSet } from './peer-set';
export { RelayClient, DEFAULT_RELAY_CLIENT_TIMING, type RelayClientInit, type RelayClientStats } from './relay-client';
export { DEFAULT_STATE_DIR, StateDir } from './state-dir';
export { registerAgentMetrics } from './metrics';
