import type { CommandModule } from 'yargs';
import { forComponent, DEFAULT_PREFIX } from '../../common';
import { parseRange, startMapperService, DEFAULT_OVERLAY_CIDR, type ListenAddress, registerMapperMetrics, RedisDirectory } from '../../mapper';
import { CliError, onShutdown } from '../shutdown';
import { METRICS_OPTION, parseListenFlag, startMetrics } from '../metrics';

interface MapperArgs {
  redis: string;
  api?: string;
  socks?: string;
  'http-proxy'?: string;
  'socks-user'?: string;
  'socks-pass'?: string;
  prefix: string;
  'overlay-cidr': string;
  'original-cidr': string[];
  metrics?: string;
}

/**
 * `HOST:PORT`, `:PORT` or `PORT`. Without a host, proxies bind to loopback unless
 * credentials are configured (then the wildcard): the mapper is never an open proxy by default.
 */
export function parseListen(flag: string, value: string, defaultHost: string): ListenAddress {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`--${flag} ${JSON.stringify(value)}: want HOST:PORT, :PORT or PORT (port 0-65535)`);
  const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : defaultHost;
  return { host, port };
}

export const mapperCommand: CommandModule<object, MapperArgs> = {
  command: 'mapper',
  describe: 'Answer "where is original IP X" (HTTP API) and proxy to members by original IP (SOCKS5 / HTTP); runs on a member host',
  builder: (y) => y
    .option('redis', { type: 'string', demandOption: true, describe: 'Redis URL holding the mapping (redis://host:port)' })
    .option('api', { type: 'string', describe: 'lookup API listen address HOST:PORT' })
    .option('socks', { type: 'string', describe: 'SOCKS5 (and HTTP proxy) listen address HOST:PORT; loopback if only a port is given and no credentials' })
    .option('http-proxy', { type: 'string', describe: 'separate HTTP proxy listen address HOST:PORT (also accepts SOCKS5)' })
    .option('socks-user', { type: 'string', describe: 'require this username (RFC 1929; HTTP proxy: Basic)' })
    .option('socks-pass', { type: 'string', describe: 'password for --socks-user (prefer ISTHMUS_SOCKS_PASS)' })
    .option('prefix', { type: 'string', default: DEFAULT_PREFIX, describe: 'Redis key prefix' })
    .option('overlay-cidr', { type: 'string', default: DEFAULT_OVERLAY_CIDR, describe: 'virtual IP range, dialed as-is' })
    .option('original-cidr', { type: 'string', array: true, default: [] as string[], describe: 'if given, destinations outside these and the overlay are refused as not allowed (repeatable)' })
    .option('metrics', METRICS_OPTION)
    .check((a) => {
      if (a.metrics) parseListenFlag(a.metrics, '--metrics');
      if (!/^rediss?:\/\//.test(a.redis)) throw new Error(`--redis ${JSON.stringify(a.redis)}: want a redis:// or rediss:// URL`);
      if (!a.api && !a.socks && !a['http-proxy']) throw new Error('give at least one of --api, --socks, --http-proxy');
      if (Boolean(a['socks-user']) !== Boolean(a['socks-pass'])) throw new Error('--socks-user and --socks-pass go together');
      if (a['socks-user'] && Buffer.byteLength(a['socks-user']) > 255) throw new Error('--socks-user: at most 255 bytes (RFC 1929)');
      if (a['socks-pass'] && Buffer.byteLength(a['socks-pass']) > 255) throw new Error('--socks-pass: at most 255 bytes (RFC 1929)');
      for (const f of ['api', 'socks', 'http-proxy'] as const) if (a[f]) parseListen(f, a[f]!, '127.0.0.1');
      try { parseRange(a['overlay-cidr']); } catch (err) { throw new Error(`--overlay-cidr: ${(err as Error).message}`); }
      for (const c of a['original-cidr']) {
        try { parseRange(c); } catch (err) { throw new Error(`--original-cidr: ${(err as Error).message}`); }
      }
      return true;
    }),
  handler: async (args) => {
    const log = forComponent('isthmus:mapper');
    const credentials = args['socks-user'] ? { username: args['socks-user'], password: args['socks-pass']! } : undefined;
    const proxyHost = credentials ? '0.0.0.0' : '127.0.0.1';
    let svc;
    try {
      svc = await startMapperService({
        redis: args.redis,
        prefix: args.prefix,
        api: args.api ? parseListen('api', args.api, '127.0.0.1') : undefined,
        socks: args.socks ? parseListen('socks', args.socks, proxyHost) : undefined,
        httpProxy: args['http-proxy'] ? parseListen('http-proxy', args['http-proxy'], proxyHost) : undefined,
        credentials,
        overlayCidr: args['overlay-cidr'],
        originalCidrs: args['original-cidr'].length ? args['original-cidr'] : undefined,
        logger: log,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
      if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') throw new CliError(`cannot listen on ${e.address ?? ''}:${e.port ?? ''}: ${e.code}`);
      throw new CliError(`mapper failed to start (--redis ${args.redis}): ${e.message}`);
    }
    onShutdown(() => svc.stop());
    if (args.metrics) {
      // Ready: listeners bound (they are, once started) and the cache subscribed to Redis's events.
      let serving = true;
      onShutdown(() => { serving = false; });
      const dir = svc.directory;
      const checks = { sockets: () => serving, redis: () => !(dir instanceof RedisDirectory) || dir.isLive };
      const s = svc;
      await startMetrics(args.metrics, log, (r) => registerMapperMetrics(r, s), checks).catch((err: NodeJS.ErrnoException) => {
        throw new CliError(`cannot listen on --metrics ${args.metrics}: ${err.code ?? err.message}`);
      });
    }
    const a = svc.addresses;
    log.info({ api: a.api, socks: a.socks, httpProxy: a.httpProxy, auth: Boolean(credentials) }, 'mapper running');
    process.stdout.write(`isthmus mapper:${a.api ? ` api http://${a.api.host}:${a.api.port}` : ''}${a.socks ? ` socks5 ${a.socks.host}:${a.socks.port}` : ''}${a.httpProxy ? ` http-proxy ${a.httpProxy.host}:${a.httpProxy.port}` : ''}\n`);
  },
};
