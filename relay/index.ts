/**
 * The relay: authenticates members, binds member ↔ UDP 4-tuple, forwards end-to-end
 * encrypted WireGuard messages by destination overlay address. See README.md and
 * docs/PROTOCOL.md.
 */
export { createRelay, DEFAULT_RELAY_OPTIONS } from './relay';
export type { Relay, RelayInit, RelayComponents, SessionInfo } from './relay';
export type { SessionListener } from './control';
export { SessionTable, tupleKey } from './session-table';
export type { Session, BindResult } from './session-table';
export { StaticMemberDirectory, MemberFileError, parseMemberFile } from './member-directory';
export type { MemberDirectory, MemberEntry } from './member-directory';
export { DROP_REASONS } from './drop-reason';
export type { DropReason, DropCounters } from './drop-reason';
export type { RelayStatsSnapshot } from './stats';
export { ChallengeIssuer } from './challenge';
export { RedisMemberDirectory, RedisSessionRecorder } from './redis-directory';
export { followMemberRemovals, removedVip } from './member-events';
export { RelayEventSubscriber, type RelayEventsOptions } from './redis-events';
export type { RedisDirectoryOptions, SessionRecorderOptions } from './redis-directory';
export { RedisRelayStatsPublisher, RELAY_STATS_INTERVAL_MS, type RelayStatsPublisherOptions } from './redis-stats';
export { registerRelayMetrics } from './metrics';
export { Mesh, MeshForwardResult } from './mesh';
export type { MeshInit, MeshComponents, MeshHome, MeshRouteSource, MeshSessionEvent, MeshLocal } from './mesh';
export { RedisMeshRegistry } from './mesh-registry';
export type { MeshRegistryOptions } from './mesh-registry';
export {
  MeshFrameType, deriveMeshKey, encodeMeshHello, decodeMeshHello, writeMeshDataHeader, sealMeshData, openMeshData, deriveMeshDataKey,
  readMeshCounter, expandMeshCounter, ReplayWindow, MESH_DATA_HEADER_LEN,
} from './mesh-frame';
export type { PolicySource, PolicySourceEvent } from './policy-source';
export { RedisPolicySource, policySourceEvent, parseStoredTags } from './redis-policy-source';
export type { RedisPolicySourceOptions } from './redis-policy-source';
export { POLICY_OFF, POLICY_ON, POLICY_LOADING } from './policy-gate';
export type { PolicyGateInit } from './policy-gate';
