/**
 * `isthmus mapper` flags for port exposure (mapper/expose.ts): declared, checked and turned into
 * ExposeOptions here, so the mapper command only wires them.
 */
import type { Argv } from 'yargs';
import { tryParseAddr, parseDuration } from '../common';
import { DEFAULT_EXPOSE_OPTIONS, parsePortRange, type ExposeOptions } from '../mapper';

export interface ExposeArgs {
  'expose-range'?: string;
  'expose-listen'?: string;
  'expose-advertise'?: string;
  'expose-idle': string;
  'expose-max-per-user': number;
  'gateway-vip'?: string;
}

export function exposeOptions<T>(y: Argv<T>): Argv<T & ExposeArgs> {
  return y
    .option('expose-range', { type: 'string', describe: 'enable port exposure (POST /v1/expose; needs --api and proxy users: --gateway, or --socks-user): allocate exposed ports from FIRST-LAST, e.g. 20000-20999' })
    .option('expose-listen', { type: 'string', describe: 'IPv4 address the exposed ports listen on (default: the --api host)' })
    .option('expose-advertise', { type: 'string', describe: 'IPv4 address answered as gatewayIp (default: --expose-listen; required when that is 0.0.0.0)' })
    .option('expose-idle', { type: 'string', default: '10m', describe: 'an exposed port with no connection and no traffic for this long is closed and its record removed (e.g. 90s, 10m, 1h)' })
    .option('expose-max-per-user', { type: 'number', default: DEFAULT_EXPOSE_OPTIONS.maxPerUser, describe: 'most exposed ports one proxy user may hold on this gateway' })
    .option('gateway-vip', { type: 'string', describe: 'without --gateway: this mapper\'s own virtual IP (its tags for the policy, its id on exposure records); default: the local address inside --overlay-cidr (the agent\'s TUN). --gateway asks its agent instead' }) as Argv<T & ExposeArgs>;
}

function ipv4(flag: string, v: string): string {
  if (typeof v !== 'string' || tryParseAddr(v.trim()) === undefined) throw new Error(`--${flag} ${JSON.stringify(v)}: want an IPv4 address`);
  return v.trim();
}

/**
 * Throws a message naming the flag for anything wrong. `ports` are the mapper's other listening
 * ports (--api, --socks, --http-proxy, --metrics), which the range may not contain.
 */
export function checkExposeArgs(a: ExposeArgs, opts: { api?: { host: string }; credentials: boolean; gateway: boolean; ports: Array<[string, number]> }): void {
  try { parseDuration(a['expose-idle']); } catch { throw new Error(`--expose-idle must be a duration like 90s, 10m, 1h; got ${JSON.stringify(a['expose-idle'])}`); }
  if (parseDuration(a['expose-idle']) < 1000) throw new Error('--expose-idle: at least 1s');
  const max = a['expose-max-per-user'];
  if (!Number.isInteger(max) || max < 1) throw new Error(`--expose-max-per-user must be a whole number ≥ 1, got ${String(max)}`);
  if (a['gateway-vip'] !== undefined) {
    if (opts.gateway) throw new Error('--gateway-vip is for a mapper without --gateway: a gateway asks its agent (--agent-socket) who it is, for the proxies and exposure alike');
    ipv4('gateway-vip', a['gateway-vip']);
  }
  if (a['expose-range'] === undefined) {
    for (const f of ['expose-listen', 'expose-advertise'] as const) if (a[f] !== undefined) throw new Error(`--${f} needs --expose-range`);
    return;
  }
  let range;
  try { range = parsePortRange(String(a['expose-range'])); } catch (err) { throw new Error(`--expose-range ${(err as Error).message}`); }
  if (!opts.api) throw new Error('--expose-range needs --api (exposures are made with POST /v1/expose)');
  if (!opts.credentials) throw new Error('--expose-range needs proxy users: --gateway (central proxy users) or --socks-user with --socks-pass-file (exposed ports need no credentials, so creating one must)');
  for (const [flag, port] of opts.ports) {
    if (port >= range.first && port <= range.last) throw new Error(`--expose-range ${range.first}-${range.last} overlaps ${flag} (port ${port})`);
  }
  const listen = a['expose-listen'] !== undefined ? ipv4('expose-listen', a['expose-listen']) : opts.api.host;
  if (tryParseAddr(listen) === undefined) throw new Error(`--expose-listen: the --api host ${JSON.stringify(listen)} is not an IPv4 address; give --expose-listen`);
  const adv = a['expose-advertise'] !== undefined ? ipv4('expose-advertise', a['expose-advertise']) : listen;
  if (adv === '0.0.0.0') throw new Error('--expose-listen 0.0.0.0 needs --expose-advertise IP: the address callers connect to');
}

/** ExposeOptions from checked args, or undefined when exposure is off. */
export function exposeFromArgs(a: ExposeArgs, apiHost: string): ExposeOptions | undefined {
  if (a['expose-range'] === undefined) return undefined;
  const listenHost = a['expose-listen']?.trim() ?? apiHost;
  return {
    range: parsePortRange(String(a['expose-range'])),
    listenHost,
    advertiseIp: a['expose-advertise']?.trim() ?? listenHost,
    idleMs: parseDuration(a['expose-idle']),
    maxPerUser: a['expose-max-per-user'],
  };
}
