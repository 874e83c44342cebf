/**
 * prom-client metrics for a mapper, read at scrape time from the directory cache's stats and
 * the proxy fronts' outcome counters (`ProxyContext.counters`, labels like `socks.connect.ok`,
 * `http.refused.unknown`, `socks.udp.drop.malformed`; gateway mode adds `*.refused.policy`,
 * `socks.auth-unavailable`, `http.503`). The label values come from the code,
 * not from clients, so the series are bounded.
 */
import type { Registry } from 'prom-client';
import { counterFrom, gaugeFrom, labelledFrom } from '../common';
import { RedisDirectory } from './directory';
import type { MapperService } from './service';
import { VERIFY_RESULTS } from './proxy-users';

type Series = Iterable<readonly [Record<string, string>, number]>;

/** Counters whose label starts with `prefix` (and not with any of `except`), the rest as `label`. */
function* outcomes(counters: Map<string, number>, prefix: string, label: string, except: string[] = [], rename: Record<string, string> = {}): Series {
  for (const [k, v] of counters) {
    if (!k.startsWith(prefix) || except.some((e) => k.startsWith(e))) continue;
    const rest = k.slice(prefix.length);
    yield [{ [label]: rename[rest] ?? rest }, v] as const;
  }
}

export function registerMapperMetrics(registry: Registry, svc: Pick<MapperService, 'context' | 'directory'> & Partial<Pick<MapperService, 'expose' | 'proxyUsers'>>): void {
  const counters = svc.context.counters;
  const dir = svc.directory instanceof RedisDirectory ? svc.directory : undefined;
  if (dir) {
    counterFrom(registry, 'isthmus_mapper_lookups_total', 'Directory lookups (lookup API, SOCKS5 and HTTP proxy destinations), cached or not', () => dir.stats.hits + dir.stats.misses);
    counterFrom(registry, 'isthmus_mapper_cache_hits_total', 'Directory lookups answered from the cache', () => dir.stats.hits);
    counterFrom(registry, 'isthmus_mapper_events_total', 'Change events received from Redis (each drops the named member\'s cache entries)', () => dir.stats.events);
    counterFrom(registry, 'isthmus_mapper_cache_flushes_total', 'Whole-cache flushes (events subscription lost or restored)', () => dir.stats.flushes);
    gaugeFrom(registry, 'isthmus_mapper_cache_live', '1 while subscribed to change events (the cache is in use), 0 otherwise', () => (dir.isLive ? 1 : 0));
  }
  labelledFrom(registry, 'counter', 'isthmus_mapper_socks_connections_total', 'SOCKS5 connections by result (connect.ok, auth-failed, refused reasons, stage.<code>, ...)', ['result'],
    () => outcomes(counters, 'socks.', 'result', ['socks.udp.']));
  labelledFrom(registry, 'counter', 'isthmus_mapper_http_connections_total', 'HTTP proxy requests by result (connect.ok, forward.ok, 407, refused.<why>, dial.<error>, ...)', ['result'],
    () => outcomes(counters, 'http.', 'result'));
  labelledFrom(registry, 'counter', 'isthmus_mapper_socks_udp_associations_total', 'SOCKS5 UDP ASSOCIATE requests by result', ['result'],
    () => outcomes(counters, 'socks.udp.', 'result', ['socks.udp.drop.', 'socks.udp.in', 'socks.udp.out'], { associate: 'ok' }));
  labelledFrom(registry, 'counter', 'isthmus_mapper_socks_udp_datagrams_total', 'SOCKS5 UDP datagrams relayed, by direction (out: client to member)', ['direction'],
    function* () {
      for (const d of ['in', 'out']) yield [{ direction: d }, counters.get(`socks.udp.${d}`) ?? 0] as const;
    });
  labelledFrom(registry, 'counter', 'isthmus_mapper_socks_udp_drops_total', 'SOCKS5 UDP datagrams dropped, by reason', ['reason'],
    () => outcomes(counters, 'socks.udp.drop.', 'reason'));
  const expose = svc.expose;
  if (expose?.enabled) {
    gaugeFrom(registry, 'isthmus_mapper_exposures_open', 'Ports exposed on this gateway now (POST /v1/expose)', () => expose.size);
    labelledFrom(registry, 'counter', 'isthmus_mapper_exposures_total', 'Exposure outcomes: created, deleted, closed.<idle|deleted|record-gone|stopped>, refused.<error>', ['result'],
      () => outcomes(counters, 'expose.', 'result', ['expose.conn.']));
    labelledFrom(registry, 'counter', 'isthmus_mapper_expose_connections_total', 'Connections to exposed ports by result (ok, policy-denied, unknown-original-ip, dial-failed, ...)', ['result'],
      () => outcomes(counters, 'expose.conn.', 'result'));
  }
  const users = svc.proxyUsers;
  if (users) {
    labelledFrom(registry, 'counter', 'isthmus_gateway_proxy_user_checks_total',
      'Gateway proxy-user credential checks by result (ok: scrypt verified; cached: no Redis call; revalidated: stored hash re-read, unchanged; unknown-user; bad-password; unavailable: Redis error)', ['result'],
      function* () { for (const r of VERIFY_RESULTS) yield [{ result: r }, users.results[r]] as const; });
    gaugeFrom(registry, 'isthmus_gateway_events_live', '1 while the gateway is subscribed to proxy-user and policy events, 0 otherwise', () => (users.isLive ? 1 : 0));
  }
  labelledFrom(registry, 'counter', 'isthmus_mapper_front_rejected_total', 'Proxy connections closed before a protocol was recognised, by reason', ['reason'],
    () => outcomes(counters, 'front.', 'reason'));
}
