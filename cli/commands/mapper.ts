import type { CommandModule } from 'yargs';
import { describeRedis, forComponent, redisSecrets, scrubSecrets, type ReadinessCheck } from '../../common';
import { isLoopbackHost, parseRange, startMapperService, DEFAULT_OVERLAY_CIDR, type ListenAddress, registerMapperMetrics, RedisDirectory } from '../../mapper';
import { CliError, onShutdown } from '../shutdown';
import { checkRedisArgs, checkRedisPrefix, redisGiven, redisOptions, redisSpecFromArgs, type RedisArgs } from '../redis-options';
import { secretFrom } from '../secret-file';
import { METRICS_OPTION, parseListenFlag, startMetrics } from '../metrics';
import { checkExposeArgs, exposeFromArgs, exposeOptions, type ExposeArgs } from '../expose-flags';
import { parseHostPort } from '../flag-values';
import { CONFIG_OPTION, deprecatedFlag, onReload } from '../settings';
import { join } from 'node:path';
import { DEFAULT_STATE_DIR } from '../../node-agent';
import { agentProbe } from '../agent-probe';

interface MapperArgs extends RedisArgs, ExposeArgs {
  config?: string;
  api?: string;
  socks?: string;
  'http-proxy'?: string;
  'socks-user'?: string;
  'socks-pass'?: string;
  'socks-pass-file'?: string;
  prefix?: string;
  'overlay-cidr': string;
  'original-cidr': string[];
  metrics?: string;
  gateway: boolean;
  'agent-socket'?: string;
}

/**
 * `HOST:PORT`, `:PORT` or `PORT`. Without a host, proxies bind to loopback unless
 * credentials are configured (then the wildcard): the mapper is never an open proxy by default.
 */
export function parseListen(flag: string, value: string, defaultHost: string): ListenAddress {
  return parseHostPort(value, `--${flag}`, { defaultHost, example: '127.0.0.1:1080' });
}

export const mapperCommand: CommandModule<object, MapperArgs> = {
  command: 'mapper',
  describe: 'Answer "where is original IP X" (HTTP API) and proxy to members by original IP (SOCKS5 / HTTP); runs on a member host',
  builder: (y) => exposeOptions(redisOptions(y.option('config', CONFIG_OPTION), 'Redis URL holding the mapping (redis://host:port or rediss://); the mapper only reads and subscribes (and, with --expose-range, writes its exposure records)'))
    .option('api', { type: 'string', describe: 'lookup API listen address HOST:PORT' })
    .option('socks', { type: 'string', describe: 'SOCKS5 (and HTTP proxy) listen address HOST:PORT; loopback if only a port is given and no credentials' })
    .option('http-proxy', { type: 'string', describe: 'separate HTTP proxy listen address HOST:PORT (also accepts SOCKS5)' })
    .option('socks-user', { type: 'string', describe: 'require this username (RFC 1929; HTTP proxy: Basic)' })
    .option('socks-pass', { type: 'string', describe: 'password for --socks-user (shows in process listings: prefer --socks-pass-file or ISTHMUS_SOCKS_PASS)' })
    .option('socks-pass-file', { type: 'string', describe: 'file holding the password for --socks-user (mode 600/640)' })
    .option('prefix', deprecatedFlag('redis-prefix'))
    .option('overlay-cidr', { type: 'string', default: DEFAULT_OVERLAY_CIDR, describe: 'virtual IP range, dialed as-is' })
    .option('original-cidr', { type: 'string', array: true, default: [] as string[], describe: 'if given, destinations outside these and the overlay are refused as not allowed (repeatable)' })
    .option('metrics', METRICS_OPTION)
    .option('gateway', { type: 'boolean', default: false,
      describe: 'Gateway mode (docs/GATEWAY.md): callers authenticate as proxy users (`isthmus proxy-user`, SOCKS5 username/password, HTTP Proxy-Authorization: Basic), '
        + 'each destination must be allowed by the policy for the user\'s tags and this member\'s, and /readyz needs Redis and the local agent\'s overlay up' })
    .option('agent-socket', { type: 'string', describe: `Gateway mode: the local agent's control socket (default: ${join(DEFAULT_STATE_DIR, 'agent.sock')}; readable by root only)` })
    .check((a) => {
      if (a.metrics) parseListenFlag(a.metrics, '--metrics');
      if (!redisGiven(a)) throw new Error('Missing --redis URL (or --redis-sentinel)');
      if (typeof a.redis === 'object') throw new Error('--redis must be a redis:// or rediss:// URL');
      checkRedisArgs(a);
      checkRedisPrefix(a['redis-prefix']);
      if (!a.api && !a.socks && !a['http-proxy']) throw new Error('give at least one of --api, --socks, --http-proxy');
      if (a['socks-pass'] !== undefined && a['socks-pass-file'] !== undefined) throw new Error('give either --socks-pass or --socks-pass-file, not both');
      const pass = a['socks-pass'] !== undefined || a['socks-pass-file'] !== undefined;
      if (Boolean(a['socks-user']) !== pass) throw new Error('--socks-user and --socks-pass (or --socks-pass-file) go together');
      if (a.gateway && a['socks-user']) throw new Error('--gateway takes proxy users (isthmus proxy-user create), not --socks-user');
      if (a.gateway && !a.socks && !a['http-proxy']) throw new Error('--gateway needs --socks or --http-proxy');
      if (a['agent-socket'] !== undefined && !a.gateway) throw new Error('--agent-socket is for --gateway');
      if (a['socks-user'] && Buffer.byteLength(a['socks-user']) > 255) throw new Error('--socks-user: at most 255 bytes (RFC 1929)');
      if (a['socks-pass'] && Buffer.byteLength(a['socks-pass']) > 255) throw new Error('--socks-pass: at most 255 bytes (RFC 1929)');
      const proxyHost = a['socks-user'] || a.gateway ? '0.0.0.0' : '127.0.0.1';
      for (const f of ['api', 'socks', 'http-proxy'] as const) {
        if (!a[f]) continue;
        const at = parseListen(f, a[f]!, f === 'api' ? '127.0.0.1' : proxyHost);
        if (!a['socks-user'] && !a.gateway && !isLoopbackHost(at.host)) {
          throw new Error(`--${f} ${at.host}: the mapper listens beyond loopback only with credentials (--socks-user and --socks-pass-file, or --gateway's proxy users); anyone who reaches it could use it otherwise`);
        }
      }
      const ports: Array<[string, number]> = [];
      for (const f of ['api', 'socks', 'http-proxy'] as const) if (a[f]) ports.push([`--${f}`, parseListen(f, a[f]!, '127.0.0.1').port]);
      if (a.metrics) ports.push(['--metrics', parseListenFlag(a.metrics, '--metrics').port]);
      checkExposeArgs(a, { api: a.api ? parseListen('api', a.api, '127.0.0.1') : undefined, credentials: Boolean(a['socks-user']) || a.gateway, gateway: a.gateway, ports });
      try { parseRange(a['overlay-cidr']); } catch (err) { throw new Error(`--overlay-cidr: ${(err as Error).message}`); }
      for (const c of a['original-cidr']) {
        try { parseRange(c); } catch (err) { throw new Error(`--original-cidr: ${(err as Error).message}`); }
      }
      return true;
    }),
  handler: async (args) => {
    const log = forComponent(args.gateway ? 'isthmus:gateway' : 'isthmus:mapper');
    // The mapping follows Redis live; SIGHUP applies a new log level (the rest: restart).
    onReload(log);
    const spec = redisSpecFromArgs(args, log);
    const password = secretFrom(args['socks-pass'], args['socks-pass-file'], 'socks-pass');
    if (password !== undefined && Buffer.byteLength(password) > 255) throw new CliError('--socks-pass-file: at most 255 bytes (RFC 1929)');
    const credentials = args['socks-user'] && password !== undefined ? { username: args['socks-user'], password } : undefined;
    const proxyHost = credentials || args.gateway ? '0.0.0.0' : '127.0.0.1';
    const agent = args.gateway ? agentProbe(args['agent-socket'] ?? join(DEFAULT_STATE_DIR, 'agent.sock')) : undefined;
    let svc;
    try {
      svc = await startMapperService({
        redis: spec,
        waitForRedis: true,
        prefix: args['redis-prefix'],
        api: args.api ? parseListen('api', args.api, '127.0.0.1') : undefined,
        socks: args.socks ? parseListen('socks', args.socks, proxyHost) : undefined,
        httpProxy: args['http-proxy'] ? parseListen('http-proxy', args['http-proxy'], proxyHost) : undefined,
        credentials,
        gateway: agent ? { selfVip: async () => (await agent()).vip } : undefined,
        overlayCidr: args['overlay-cidr'],
        originalCidrs: args['original-cidr'].length ? args['original-cidr'] : undefined,
        gatewayVip: args['gateway-vip']?.trim(),
        expose: exposeFromArgs(args, args.api ? parseListen('api', args.api, '127.0.0.1').host : '127.0.0.1'),
        logger: log,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
      if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') throw new CliError(`cannot listen on ${e.address ?? ''}:${e.port ?? ''}: ${e.code}`);
      throw new CliError(`mapper failed to start (Redis ${describeRedis(spec)}): ${scrubSecrets(e.message, [...redisSecrets(spec), password])}`);
    }
    onShutdown(() => svc.stop());
    if (args.metrics) {
      // Ready: listeners bound (they are, once started) and the cache subscribed to Redis's events.
      let serving = true;
      onShutdown(() => { serving = false; });
      const dir = svc.directory;
      const users = svc.proxyUsers;
      const checks: Record<string, ReadinessCheck> = { sockets: () => serving, redis: () => (!(dir instanceof RedisDirectory) || dir.isLive) && (!users || users.isLive) };
      // A gateway also needs its overlay: without the agent's TUN and relay session it can dial no one.
      if (agent) checks.overlay = async () => (await agent()).overlayUp;
      const s = svc;
      await startMetrics(args.metrics, log, (r) => registerMapperMetrics(r, s), checks).catch((err: NodeJS.ErrnoException) => {
        throw new CliError(`cannot listen on --metrics ${args.metrics}: ${err.code ?? err.message}`);
      });
    }
    const a = svc.addresses;
    log.info({ api: a.api, socks: a.socks, httpProxy: a.httpProxy, auth: args.gateway ? 'gateway' : Boolean(credentials), gateway: args.gateway }, 'mapper running');
    const ex = exposeFromArgs(args, '');
    process.stdout.write(`isthmus mapper:${a.api ? ` api http://${a.api.host}:${a.api.port}` : ''}${a.socks ? ` socks5 ${a.socks.host}:${a.socks.port}` : ''}${a.httpProxy ? ` http-proxy ${a.httpProxy.host}:${a.httpProxy.port}` : ''}${ex ? ` expose ${ex.range.first}-${ex.range.last}` : ''}\n`);
  },
};
