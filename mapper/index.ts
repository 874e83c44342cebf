/**
 * The mapper: "where is original IP X?" answered by an HTTP API, an SDK, and SOCKS5 / HTTP
 * proxy fronts that dial the mapped virtual IP through the local overlay. See README.md.
 */
export { Mapper, DEFAULT_MAPPER_OPTIONS, type MapperOptions } from './sdk';
export type { MapResult } from './lookup-api';
export { buildLookupApi, MAX_BATCH, type LookupApiOptions } from './lookup-api';
export { RedisDirectory, DEFAULT_DIRECTORY_OPTIONS, type MemberDirectory, type MapEntry, type DirectoryOptions } from './directory';
export { startMapperService, DEFAULT_OVERLAY_CIDR, type MapperService, type MapperServiceOptions, type ListenAddress } from './service';
export { netDialer, type Dialer } from './dialer';
export { UnknownOriginalIpError, InvalidIpError, MapperApiError, DirectoryClosedError } from './errors';
export { InvalidCidrError, isLoopbackHost, parseRange } from './addr';
export { Command, encodeRequest } from './socks5/codec';
export { registerMapperMetrics } from './metrics';
export { ExposureManager, ExposeRefusedError, parsePortRange, DEFAULT_EXPOSE_OPTIONS, type ExposeOptions, type ExposureView, type PortRange } from './expose';
export { EXPOSE_RECORD_TTL_MS, type ExposureRecord } from './expose-store';
export { RedisProxyUsers, DEFAULT_REVALIDATE_MS, VERIFY_RESULTS, type ProxyUser, type ProxyUserVerifier, type RedisProxyUsersOptions, type VerifyResult } from './proxy-users';
export { GatewayAccess, redisPolicyLoader, type AccessRefusal, type GatewayAccessOptions, type GatewayIdentity } from './gateway';
