import type { CommandModule } from 'yargs';
import { hostname } from 'node:os';
import { forComponent } from '../../common/logger';
import { systemClock } from '../../common/clock';
import { openBestDatagramSocket } from '../../common/dgram-socket';
import { ipv4ToInt } from '../../common/packet-io';
import Redis from 'ioredis';
import {
  createRelay, MemberFileError, RedisMemberDirectory, RedisSessionRecorder, StaticMemberDirectory,
  type MemberDirectory, type SessionListener,
} from '../../relay';
import { CliError, onShutdown } from '../shutdown';

interface RelayArgs {
  listen?: string;
  members?: string;
  id?: string;
  keepalive?: number;
  'stats-interval'?: number;
  redis?: string;
  'redis-prefix'?: string;
  advertise?: string;
}

/** "HOST:PORT" with an IPv4 host → parts; throws an Error naming `flag` otherwise. */
export function parseHostPort(value: string, flag: string): { host: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(value);
  if (!m) throw new Error(`${flag} must be HOST:PORT (e.g. 0.0.0.0:51820), got ${JSON.stringify(value)}`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`${flag}: port ${port} is out of range 0-65535`);
  try {
    ipv4ToInt(m[1]);
  } catch {
    throw new Error(`${flag}: host must be an IPv4 address, got ${JSON.stringify(m[1])}`);
  }
  return { host: m[1], port };
}

/** `isthmus relay`: the UDP relay members authenticate to and send framed WireGuard messages through. */
export const relayCommand: CommandModule<object, RelayArgs> = {
  command: 'relay',
  describe: 'Run a relay: authenticate members and forward their end-to-end encrypted packets by overlay address',
  builder: (y) => y
    .option('listen', { type: 'string', describe: 'UDP address to listen on, HOST:PORT (IPv4)' })
    .option('members', { type: 'string', normalize: true, describe: 'Static members file: lines "<base64 public key> <overlay IPv4>"' })
    .option('id', { type: 'string', describe: 'Relay id sent to members and logged (default: hostname:port)' })
    .option('keepalive', { type: 'number', default: 10, describe: 'Keepalive interval advertised to members, seconds' })
    .option('stats-interval', { type: 'number', default: 60, describe: 'Log a stats line every N seconds (0: never)' })
    .option('redis', { type: 'string', describe: 'Redis URL: members from P:key:<pub>, sessions recorded in P:session:<vip> (instead of --members)' })
    .option('redis-prefix', { type: 'string', default: 'isthmus:', describe: 'Redis key prefix' })
    .option('advertise', { type: 'string', describe: 'HOST:PORT members reach this relay at (the VIP), recorded in Redis (default: --listen)' })
    .check((a) => {
      if (!a.listen) throw new Error('Missing --listen HOST:PORT');
      parseHostPort(a.listen, '--listen');
      if (!a.members && !a.redis) throw new Error('Missing --members FILE (or --redis URL)');
      if (a.members && a.redis) throw new Error('Give either --members or --redis, not both');
      if (a.redis && !/^rediss?:\/\//.test(a.redis)) throw new Error('--redis must be a redis:// or rediss:// URL');
      if (a.advertise) parseHostPort(a.advertise, '--advertise');
      if (a.keepalive === undefined || !Number.isInteger(a.keepalive) || a.keepalive < 1 || a.keepalive > 3600) {
        throw new Error('--keepalive must be a whole number of seconds between 1 and 3600');
      }
      const si = a['stats-interval'];
      if (si === undefined || !(si >= 0)) throw new Error('--stats-interval must be a number of seconds >= 0');
      if (a.id !== undefined && (a.id.length === 0 || Buffer.byteLength(a.id) > 64)) throw new Error('--id must be 1-64 bytes');
      return true;
    }),
  handler: async (args) => {
    const log = forComponent('isthmus:relay');
    const { host, port } = parseHostPort(args.listen!, '--listen');
    let directory: MemberDirectory;
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
      redis = new Redis(args.redis!, { maxRetriesPerRequest: 3, enableAutoPipelining: true });
      redis.on('error', (e: Error) => log.warn({ err: e.message }, 'redis error'));
      // quit() (not disconnect()) so the session deletions queued by relay.stop() reach Redis.
      onShutdown(() => redis!.quit().catch(() => redis!.disconnect()));
      directory = new RedisMemberDirectory(redis, { prefix: args['redis-prefix'] });
    }
    let opened;
    try {
      opened = await openBestDatagramSocket({ host, port }, (why) => log.info({ why }, 'using node:dgram socket'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new CliError(`cannot listen on --listen ${args.listen}: ${e.code ?? e.message}`);
    }
    const { socket, kind } = opened;
    const id = args.id ?? `${hostname()}:${socket.localAddress.port}`;
    let sessionListener: SessionListener | undefined;
    if (redis) {
      const adv = args.advertise ? parseHostPort(args.advertise, '--advertise') : { host: socket.localAddress.ip, port: socket.localAddress.port };
      sessionListener = new RedisSessionRecorder(redis, {
        relayId: id, relayIp: adv.host, relayPort: adv.port, prefix: args['redis-prefix'], logger: log,
      });
    }
    const relay = createRelay({
      id, keepaliveSeconds: args.keepalive, statsLogIntervalMs: (args['stats-interval'] ?? 0) * 1000,
    })({ logger: log, clock: systemClock, socket, directory, sessionListener });
    onShutdown(() => {
      relay.stop();
      socket.close();
    });
    relay.start();
    log.info({ members, redis: redis ? true : undefined, socket: kind }, 'relay ready');
  },
};
