import type { CommandModule } from 'yargs';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { connectRedis, forComponent, isRedisUnavailableError, watchRedis, systemClock, redisReadiness, type ReadinessCheck } from '../../common';
import { openBestDatagramSocket, setBusyPoll } from '../../native-bindings';
import type Redis from 'ioredis';
import { createRelay, deriveMeshKey, followMemberRemovals, Mesh, MemberFileError, RedisMeshRegistry, RedisMemberDirectory, RedisPolicySource, RedisRelayStatsPublisher, RelayEventSubscriber, RedisSessionRecorder, StaticMemberDirectory, type MemberDirectory, type SessionListener, registerRelayMetrics } from '../../relay';
import { CliError, onShutdown } from '../shutdown';
import { worldAccess } from '../secret-file';
import { checkRedisArgs, checkRedisPrefix, redisGiven, redisOptions, redisSpecFromArgs, type RedisArgs } from '../redis-options';
import { METRICS_OPTION, parseListenFlag, startHealthPort, startMetrics } from '../metrics';
import { BUSY_POLL_OPTION, busyPollFlag, durationFlag, parseHostPort as parseAddress } from '../flag-values';
import { CONFIG_OPTION, onReload } from '../settings';

interface RelayArgs extends RedisArgs {
  listen?: string;
  members?: string;
  id?: string;
  config?: string;
  keepalive: string;
  'stats-interval': string;
  advertise?: string;
  mesh?: string;
  'mesh-key'?: string;
  'mesh-advertise'?: string;
  'session-refresh': string;
  'mesh-route-cache'?: number;
  metrics?: string;
  'health-tcp'?: string;
  'fast-path': boolean;
  'busy-poll': string;
}

/** "HOST:PORT" with an IPv4 host → parts; throws an Error naming `flag` otherwise. */
export function parseHostPort(value: string, flag: string): { host: string; port: number } {
  return parseAddress(value, flag, { ipv4: true, example: '0.0.0.0:7000' });
}

/** The relay's durations (a bare number: seconds, as before they took a unit). */
const DURATIONS = {
  keepalive: { bare: 's', min: 1000, max: 3_600_000 },
  'stats-interval': { bare: 's', min: 0 },
  'session-refresh': { bare: 's', min: 1 },
} as const;
const ms = (a: RelayArgs, f: keyof typeof DURATIONS) => durationFlag(a[f], `--${f}`, DURATIONS[f]);

/** `isthmus relay`: the UDP relay members authenticate to and send framed WireGuard messages through. */
export const relayCommand: CommandModule<object, RelayArgs> = {
  command: 'relay',
  describe: 'Run a relay: authenticate members and forward their end-to-end encrypted packets by overlay address',
  builder: (y) => redisOptions(y, 'Redis URL: members from P:key:<pub>, sessions recorded in P:session:<vip>, access policy from P:policy (instead of --members)')
    .option('config', CONFIG_OPTION)
    .option('listen', { type: 'string', describe: 'UDP address to listen on, HOST:PORT (IPv4)' })
    .option('members', { type: 'string', normalize: true, describe: 'Static members file: lines "<base64 public key> <overlay IPv4>"' })
    .option('id', { type: 'string', describe: 'Relay id sent to members and logged (default: hostname:port)' })
    .option('keepalive', { type: 'string', default: '10s', describe: 'Keepalive interval advertised to members, whole seconds (1s-1h)' })
    .option('stats-interval', { type: 'string', default: '60s', describe: 'Log a stats line this often (0s: never)' })
    .option('advertise', { type: 'string', describe: 'HOST:PORT members reach this relay at (the VIP), recorded in Redis (default: --listen)' })
    .option('mesh', { type: 'string', describe: 'UDP address for relay-to-relay forwarding, HOST:PORT (needs --redis and --id): the relays behind one VIP become one service' })
    .option('mesh-key', { type: 'string', normalize: true, describe: 'File holding the shared mesh secret (>= 16 bytes; default: P:mesh-key in Redis, created once)' })
    .option('mesh-advertise', { type: 'string', describe: 'HOST:PORT other relays reach the mesh socket at (default: --mesh; required when --mesh binds 0.0.0.0)' })
    .option('mesh-route-cache', { type: 'number', default: 65_536, describe: 'Mesh routes (vip -> home relay, also "nowhere") cached, least recently used evicted first' })
    .option('session-refresh', { type: 'string', default: '10s', describe: 'Re-assert this relay\'s P:session records this often (TTL refresh, re-created after a Redis restart)' })
    .option('fast-path', { type: 'boolean', default: true, describe: 'Forward DATA between members bound here in the native addon, before JS (native UDP socket only); --fast-path=false sends every frame through the JS forwarder' })
    .option('busy-poll', BUSY_POLL_OPTION)
    .option('metrics', METRICS_OPTION)
    .option('health-tcp', { type: 'string', describe: 'TCP HOST:PORT that accepts connections only while /readyz would answer 200, for connect-only load balancer checks' })
    .check((a) => {
      if (a.metrics) parseListenFlag(a.metrics, '--metrics');
      if (a['health-tcp']) parseListenFlag(a['health-tcp'], '--health-tcp');
      if (!a.listen) throw new Error('Missing --listen HOST:PORT');
      parseHostPort(a.listen, '--listen');
      busyPollFlag(a['busy-poll']);
      if (!a.members && !redisGiven(a)) throw new Error('Missing --members FILE (or --redis URL)');
      if (a.members && redisGiven(a)) throw new Error('Give either --members or --redis, not both');
      if (redisGiven(a)) {
        if (typeof a.redis === 'object') throw new Error('--redis must be a redis:// or rediss:// URL');
        checkRedisArgs(a);
      }
      if (a.advertise) parseHostPort(a.advertise, '--advertise');
      if (a.mesh) {
        parseHostPort(a.mesh, '--mesh');
        if (!redisGiven(a)) throw new Error('--mesh needs --redis URL (routes and relay registry live in Redis)');
        if (!a.id) throw new Error('--mesh needs --id ID (relays find each other by id)');
        const adv = parseHostPort(a['mesh-advertise'] ?? a.mesh, '--mesh-advertise');
        if (adv.host === '0.0.0.0') throw new Error('--mesh binds 0.0.0.0: give --mesh-advertise HOST:PORT');
      } else if (a['mesh-key'] || a['mesh-advertise']) {
        throw new Error('--mesh-key and --mesh-advertise need --mesh HOST:PORT');
      }
      const rc = a['mesh-route-cache'];
      if (rc === undefined || !Number.isInteger(rc) || rc < 1 || rc > 16_777_216) {
        throw new Error('--mesh-route-cache must be a whole number of routes between 1 and 16777216');
      }
      for (const f of Object.keys(DURATIONS) as (keyof typeof DURATIONS)[]) ms(a, f);
      if (ms(a, 'keepalive') % 1000 !== 0) throw new Error(`--keepalive must be whole seconds (members are told it in seconds), got ${JSON.stringify(a.keepalive)}`);
      checkRedisPrefix(a['redis-prefix']);
      if (a.id !== undefined && (a.id.length === 0 || Buffer.byteLength(a.id) > 64)) throw new Error('--id must be 1-64 bytes');
      return true;
    }),
  handler: async (args) => {
    const log = forComponent('isthmus:relay');
    // The access policy follows Redis live (isthmus policy set); the log level follows SIGHUP.
    onReload(log);
    const { host, port } = parseHostPort(args.listen!, '--listen');
    let directory: MemberDirectory;
    let redisDirectory: RedisMemberDirectory | undefined;
    let members: number | undefined;
    let redis: Redis | undefined;
    if (args.members) {
      try {
        const d = StaticMemberDirectory.fromFile(args.members);
        members = d.size;
        directory = d;
      } catch (err) {
        if (err instanceof MemberFileError) throw new CliError(`--members: ${err.message}`);
        throw new CliError(`cannot read --members ${args.members}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    } else {
      const spec = redisSpecFromArgs(args, log);
      redis = connectRedis(spec);
      // One log line per change of reachability (scrubbed); the relay starts whether Redis answers yet or not.
      watchRedis(redis, spec, log);
      // quit() (not disconnect()) so the session deletions queued by relay.stop() reach Redis.
      onShutdown(() => redis!.quit().catch(() => redis!.disconnect()));
      redisDirectory = new RedisMemberDirectory(redis, { prefix: args['redis-prefix'] });
      directory = redisDirectory;
    }
    let opened;
    try {
      opened = await openBestDatagramSocket({ host, port }, (why) => log.info({ why }, 'using node:dgram socket'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new CliError(`cannot listen on --listen ${args.listen}: ${e.code ?? e.message}`);
    }
    const { socket, kind } = opened;
    const busyPollUs = kind === 'native' ? busyPollFlag(args['busy-poll']) : 0;
    if (kind === 'native') setBusyPoll(busyPollUs);
    // Listeners first, so /readyz answers (503) while the Redis-dependent setup below waits for
    // Redis; the relay's own metrics are registered once it exists.
    let serving = true;
    let setupDone = false;
    onShutdown(() => { serving = false; });
    const checks: Record<string, ReadinessCheck> = { socket: () => serving, setup: () => setupDone };
    if (redis) checks.redis = redisReadiness(redis);
    let metricsRegistry;
    try {
      if (args.metrics) metricsRegistry = (await startMetrics(args.metrics, log, () => {}, checks)).registry;
    } catch (err) {
      throw new CliError(`cannot listen on --metrics: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    /** Run a Redis step, waiting (however long) while Redis is unreachable; other errors throw. */
    const whenRedis = async <T>(step: () => Promise<T>): Promise<T> => {
      for (;;) {
        if (redis && redis.status !== 'ready') {
          const r = redis;
          await new Promise<void>((ok) => { const t = setTimeout(ok, 1000); r.once('ready', () => { clearTimeout(t); ok(); }); });
          continue;
        }
        try {
          return await step();
        } catch (err) {
          if (!isRedisUnavailableError(err)) throw err;
        }
      }
    };
    const id = args.id ?? `${hostname()}:${socket.localAddress.port}`;
    // One subscription to P:events for the mesh routes, the policy and member removals; opened
    // by the first of them to start, closed last (hooks run in reverse).
    let events: RelayEventSubscriber | undefined;
    if (redis) {
      const ev = new RelayEventSubscriber(redis, { prefix: args['redis-prefix'], logger: log });
      onShutdown(() => ev.stop());
      events = ev;
    }
    let mesh: Mesh | undefined;
    let registry: RedisMeshRegistry | undefined;
    if (args.mesh && redis) {
      const m = parseHostPort(args.mesh, '--mesh');
      const madv = parseHostPort(args['mesh-advertise'] ?? args.mesh, '--mesh-advertise');
      const ladv = args.advertise ? parseHostPort(args.advertise, '--advertise') : { host: socket.localAddress.ip, port: socket.localAddress.port };
      let meshSocket;
      try {
        meshSocket = (await openBestDatagramSocket({ host: m.host, port: m.port })).socket;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new CliError(`cannot listen on --mesh ${args.mesh}: ${e.code ?? e.message}`);
      }
      const ms = meshSocket;
      onShutdown(() => ms.close());
      registry = new RedisMeshRegistry(redis, {
        relayId: id, meshIp: madv.host, meshPort: args['mesh-advertise'] ? madv.port : meshSocket.localAddress.port,
        listenIp: ladv.host, listenPort: ladv.port, prefix: args['redis-prefix'], logger: log, events,
      });
      let secret: Uint8Array;
      if (args['mesh-key']) {
        try {
          secret = readFileSync(args['mesh-key']);
        } catch (err) {
          throw new CliError(`cannot read --mesh-key ${args['mesh-key']}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        const exposed = worldAccess(args['mesh-key'], '--mesh-key');
        if (exposed) log.warn(exposed);
        if (secret.length < 16) throw new CliError(`--mesh-key ${args['mesh-key']}: the secret must be at least 16 bytes`);
      } else {
        try {
          const reg = registry;
          secret = await whenRedis(() => reg.loadSharedKey());
        } catch (err) {
          throw new CliError(`cannot load the mesh key from Redis: ${(err as Error).message}`);
        }
      }
      mesh = new Mesh({ relayId: id, key: deriveMeshKey(secret), routeCacheSize: args['mesh-route-cache'] }, { logger: log, clock: systemClock, socket: meshSocket, routes: registry });
    }
    let sessionListener: SessionListener | undefined;
    if (redis) {
      const adv = args.advertise ? parseHostPort(args.advertise, '--advertise') : { host: socket.localAddress.ip, port: socket.localAddress.port };
      sessionListener = new RedisSessionRecorder(redis, {
        relayId: id, relayIp: adv.host, relayPort: adv.port, prefix: args['redis-prefix'], logger: log,
        eventFields: registry?.eventFields(),
      });
    }
    // The access policy and members' tags (P:policy, P:node:<vip>.tags, P:events): with Redis only.
    let policy: RedisPolicySource | undefined;
    if (redis) {
      const p = new RedisPolicySource(redis, { prefix: args['redis-prefix'], logger: log, events });
      onShutdown(() => p.stop());
      try {
        await whenRedis(() => p.start());
      } catch (err) {
        throw new CliError(`cannot subscribe to policy events in Redis: ${(err as Error).message}`);
      }
      policy = p;
    }
    const relay = createRelay({
      id, keepaliveSeconds: ms(args, 'keepalive') / 1000, statsLogIntervalMs: ms(args, 'stats-interval'),
      sessionRefreshMs: ms(args, 'session-refresh'), fastPath: args['fast-path'],
    })({ logger: log, clock: systemClock, socket, directory, sessionListener, mesh, policy });
    onShutdown(() => {
      relay.stop();
      socket.close();
    });
    if (registry) {
      const reg = registry;
      // Hooks run in reverse: this leaves the registry before the relay stops and Redis quits.
      onShutdown(() => reg.stop());
      try {
        await whenRedis(() => reg.start());
      } catch (err) {
        throw new CliError(`cannot register the relay in Redis: ${(err as Error).message}`);
      }
    }
    if (events && redisDirectory) {
      const d = redisDirectory;
      try {
        const ev = events;
        const stop = await whenRedis(() => followMemberRemovals(ev, (vip) => {
          d.forgetVip(vip);
          relay.removeMember(vip);
        }));
        onShutdown(stop);
      } catch (err) {
        throw new CliError(`cannot subscribe to member events in Redis: ${(err as Error).message}`);
      }
    }
    relay.start();
    if (redis) {
      // Counters for the coordinator's dashboard (P:relay-stats:<id>); hooks run in reverse, so
      // the record is deleted before Redis quits.
      const statsPublisher = new RedisRelayStatsPublisher(redis, { relayId: id, stats: () => relay.stats(), prefix: args['redis-prefix'], logger: log });
      statsPublisher.start();
      onShutdown(() => statsPublisher.stop());
    }
    // Each time Redis is (again) reachable — a restart, a Sentinel failover to a replica that
    // may lack the newest writes — re-assert this relay's session records at once.
    if (redis) redis.on('ready', () => relay.refreshSessions());
    try {
      await relay.policyReady();
    } catch (err) {
      throw new CliError(`cannot read the access policy (P:policy) from Redis: ${(err as Error).message}`);
    }
    // Ready: the member socket (and mesh socket) bound and serving, Redis reachable when used.
    if (metricsRegistry) registerRelayMetrics(metricsRegistry, relay);
    setupDone = true;
    // The TCP health port (open only while ready) once set up: it opens at once.
    try {
      if (args['health-tcp']) await startHealthPort(args['health-tcp'], log, checks);
    } catch (err) {
      throw new CliError(`cannot listen on --health-tcp: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    log.info({ members, policyRules: policy ? relay.policyRules() : undefined, redis: redis ? true : undefined, socket: kind, fastPath: kind === 'native' && args['fast-path'], busyPollUs, mesh: mesh ? `${mesh.meshAddress.ip}:${mesh.meshAddress.port}` : undefined }, 'relay ready');
  },
};
