/**
 * Wakes long-polls when the registry changes. One subscriber connection per coordinator on
 * `P:events`; any coordinator's change (they all publish there) wakes every coordinator's
 * waiters, which then read the change feed (`P:changes`) from Redis.
 */
import type Redis from 'ioredis';
import type { Logger } from '../common';
import { decodeEvent, isNodeEvent } from '../common';

type Waiter = { since: number; wake: () => void };

export class PeerFeed {
  private readonly waiters = new Set<Waiter>();
  private sub?: Redis;
  private closed = false;
  /** Highest version seen on the channel. */
  latest = 0;

  constructor(private readonly redis: Redis, private readonly channel: string, private readonly log: Logger) {}

  async start(): Promise<void> {
    this.sub = this.redis.duplicate();
    this.sub.on('message', (_ch: string, msg: string) => this.onMessage(msg));
    // After a reconnect ioredis re-subscribes; wake everyone so they re-read the feed.
    this.sub.on('ready', () => this.wakeAll());
    await this.sub.subscribe(this.channel);
  }

  private onMessage(msg: string): void {
    const e = decodeEvent(msg);
    // Session events carry no version (peer maps do not change); junk is not ours to judge.
    if (!e || !isNodeEvent(e)) return;
    const version = e.version;
    if (version > this.latest) this.latest = version;
    for (const w of this.waiters) if (version > w.since) w.wake();
  }

  private wakeAll(): void {
    for (const w of this.waiters) w.wake();
  }

  /**
   * Register interest before reading Redis (so no event is lost in between); `wait` resolves
   * on a newer version, timeout, abort or close.
   */
  register(since: number): { wait(timeoutMs: number, signal?: AbortSignal): Promise<void>; cancel(): void } {
    let wake!: () => void;
    const woken = new Promise<void>((r) => { wake = r; });
    const w: Waiter = { since, wake };
    if (this.closed) wake(); else this.waiters.add(w);
    const cancel = () => { this.waiters.delete(w); w.wake(); };
    return {
      cancel,
      wait: async (timeoutMs, signal) => {
        const t = setTimeout(cancel, timeoutMs);
        signal?.addEventListener('abort', cancel, { once: true });
        try {
          await woken;
        } finally {
          clearTimeout(t);
          signal?.removeEventListener('abort', cancel);
          this.waiters.delete(w);
        }
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeAll();
    this.waiters.clear();
    if (this.sub) {
      this.sub.disconnect();
      this.log.debug('peer feed closed');
    }
  }
}
