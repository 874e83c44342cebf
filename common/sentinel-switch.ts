/**
 * Moving every Redis client of a process to the new master the moment the sentinels switch.
 *
 * A planned failover (`SENTINEL FAILOVER`, an upgrade) leaves the old master running as a
 * master for some 8–10 s after the sentinels switched, until they turn it into a replica, which
 * then resyncs and drops whatever was written to it meanwhile; its subscribers miss what the new
 * master publishes. A client must leave it at once. ioredis' own `failoverDetector` does this per
 * client, but its disconnect can land while that client is asking the sentinels where to
 * reconnect, which ends the client for good (status `end`, never retried): seen as subscribers
 * that never came back after a kill -9 failover.
 *
 * So one follower per process and sentinel set: a subscription to `+switch-master` on each
 * sentinel (so any one of them suffices); on a switch of our master, every registered client
 * that is ready and still connected elsewhere reconnects (`disconnect(true)`: it asks the
 * sentinels again, and resends what was in flight); one that is not ready is reconnecting anyway
 * and is checked when it becomes ready. Clients leave the registry when they end; the
 * sentinel connections close when the last one has.
 */
import Redis, { type RedisOptions } from 'ioredis';

/** `+switch-master` payload: `<name> <old ip> <old port> <new ip> <new port>`; the new master, if it is `name`'s. */
export function parseSwitchMaster(message: string, name: string): { host: string; port: number } | undefined {
  const f = message.trim().split(/\s+/);
  if (f.length !== 5 || f[0] !== name || !/^\d{1,5}$/.test(f[4])) return undefined;
  return { host: f[3], port: Number(f[4]) };
}

/** How long after a switch a client becoming ready is checked against the new master. */
const SWITCH_WINDOW_MS = 30_000;

class SwitchFollower {
  private readonly clients = new Set<Redis>();
  private subs: Redis[] = [];
  /** The master announced last (undefined until a switch was seen), and when. */
  private master: { host: string; port: number; at: number } | undefined;
  /** Switches seen; a client is bounced at most once per switch. */
  private seq = 0;
  private readonly bounced = new WeakMap<Redis, number>();

  constructor(private readonly opts: RedisOptions, private readonly onEmpty: () => void) {}

  add(client: Redis): void {
    if (this.clients.size === 0) this.open();
    this.clients.add(client);
    client.once('end', () => this.remove(client));
    // A client that (re)connects after a switch: to the announced master, or again.
    client.on('ready', () => this.check(client));
  }

  private remove(client: Redis): void {
    if (!this.clients.delete(client) || this.clients.size > 0) return;
    for (const s of this.subs) s.disconnect();
    this.subs = [];
    this.onEmpty();
  }

  private open(): void {
    const name = this.opts.name!;
    this.subs = (this.opts.sentinels ?? []).map((s) => {
      const sub = new Redis({
        host: s.host, port: s.port, username: this.opts.sentinelUsername, password: this.opts.sentinelPassword,
        tls: this.opts.enableTLSForSentinelMode ? this.opts.sentinelTLS : undefined,
        // A sentinel that is down is retried quietly (the others still report switches).
        retryStrategy: (n: number) => Math.min(250 * n, 5_000), enableReadyCheck: false, maxRetriesPerRequest: null,
      });
      sub.on('error', () => {});
      sub.on('message', (_ch: string, msg: string) => {
        const m = parseSwitchMaster(msg, name);
        if (!m) return;
        this.master = { ...m, at: Date.now() };
        this.seq++;
        for (const c of this.clients) this.check(c);
      });
      sub.subscribe('+switch-master').catch(() => { /* re-made by ioredis on reconnect */ });
      return sub;
    });
  }

  /**
   * Reconnect `c` if it is ready on a node other than the master announced in the last
   * `SWITCH_WINDOW_MS`; once per client and switch (an address that never matches, behind NAT,
   * costs one reconnect, not a loop).
   */
  private check(c: Redis): void {
    const m = this.master;
    if (!m || c.status !== 'ready' || Date.now() - m.at > SWITCH_WINDOW_MS || this.bounced.get(c) === this.seq) return;
    const s = c.stream as { remoteAddress?: string; remotePort?: number } | undefined;
    const addr = s?.remoteAddress?.replace(/^::ffff:/, '');
    if (addr === m.host && s?.remotePort === m.port) return;
    this.bounced.set(c, this.seq);
    c.disconnect(true);
  }
}

const followers = new Map<string, SwitchFollower>();

/** A client whose duplicates (subscribers) are registered too. */
class FollowingRedis extends Redis {
  override duplicate(override?: Partial<RedisOptions>): Redis {
    const d = new FollowingRedis({ ...this.options, ...override });
    followSentinelSwitches(d);
    return d;
  }
}

/** `new Redis(options)`, registered with the follower of its sentinels (when it has some), as its duplicates will be. */
export function createFollowingRedis(options: RedisOptions): Redis {
  const c = new FollowingRedis(options);
  followSentinelSwitches(c);
  return c;
}

/** Registers a client built with Sentinel options; no-op for others. */
export function followSentinelSwitches(client: Redis): void {
  const o = client.options;
  if (!o.sentinels?.length || !o.name) return;
  const key = JSON.stringify([o.name, o.sentinels.map((s) => `${s.host}:${s.port}`)]);
  let f = followers.get(key);
  if (!f) {
    f = new SwitchFollower(o, () => followers.delete(key));
    followers.set(key, f);
  }
  f.add(client);
}
