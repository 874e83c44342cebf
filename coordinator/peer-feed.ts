/**
 * Wakes long-polls when the registry changes. One subscriber connection per coordinator on
 * `P:events`; any coordinator's change (they all publish there) wakes every coordinator's
 * waiters, which then read the change feed (`P:changes`) from Redis.
 */
import type Redis from 'ioredis';
import { type Logger, type ClusterEvent, EventType, decodeEvent, isNodeEvent } from '../common';

type Waiter = { since: number; wake: () => void };

export class PeerFeed {
  private readonly waiters = new Set<Waiter>();
  /** Every well-formed event, and `undefined` after a resubscribe (events may have been missed): the dashboard. */
  private readonly listeners = new Set<(e: ClusterEvent | undefined) => void>();
  /** Told of every change that may move peer maps (and of a resubscribe or rebase): the streams (peer-stream.ts). */
  private readonly changeListeners = new Set<() => void>();
  private sub?: Redis;
  private closed = false;
  /** Version of the last change event seen on the channel. */
  latest = 0;
  /** Member change events seen on the channel (metrics). */
  changes = 0;

  constructor(private readonly redis: Redis, private readonly channel: string, private readonly log: Logger) {}

  async start(): Promise<void> {
    this.sub = this.redis.duplicate();
    // Reachability is logged once per change on the main client (watchRedis); not per retry here.
    this.sub.on('error', () => {});
    this.sub.on('message', (_ch: string, msg: string) => this.onMessage(msg));
    // After a reconnect ioredis re-subscribes; wake everyone so they re-read the feed. Redis may
    // have restarted with lower versions: forget the last one seen.
    this.sub.on('ready', () => { this.latest = 0; this.wakeAll(); this.tell(undefined); });
    await this.sub.subscribe(this.channel);
  }

  private onMessage(msg: string): void {
    const e = decodeEvent(msg);
    if (e) this.tell(e);
    // Session events carry no version (peer maps do not change); junk is not ours to judge.
    // A policy change may change every map: it wakes every waiter behind it too.
    if (!e || !(isNodeEvent(e) || e.type === EventType.PolicyChanged)) return;
    this.changes++;
    const version = e.version;
    // The last event's version (events come in order from one Redis; lower: Redis went back).
    this.latest = version;
    for (const w of this.waiters) if (version > w.since) w.wake();
    this.changed();
  }

  /** Call `listener` after every change that may move peer maps (no argument: read `latest`); returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => { this.changeListeners.delete(listener); };
  }

  private changed(): void {
    for (const l of this.changeListeners) {
      try {
        l();
      } catch (err) {
        this.log.warn({ err }, 'change listener failed');
      }
    }
  }

  /** Call `listener` with every event seen from now on; returns the unsubscribe function. */
  onEvent(listener: (e: ClusterEvent | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  private tell(e: ClusterEvent | undefined): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.log.warn({ err }, 'change-feed listener failed');
      }
    }
  }

  /** Long-polls waiting for a change (metrics). */
  get waiting(): number {
    return this.waiters.size;
  }

  /**
   * A version learned other than from an event (the state in Redis was rebuilt under us, see
   * server.ts): every waiter re-reads the feed at it (a member the rebuilt registry does not
   * hold then gets 401 and re-asserts its record).
   */
  rebase(version: number): void {
    this.latest = version;
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const w of this.waiters) w.wake();
    this.changed();
  }

  /**
   * Interest in versions after `since` (the version the caller's answer was computed at):
   * `wait` resolves at once if a newer one was already seen, else on a newer version,
   * timeout, abort or close. `onlyNew`: ignore versions already seen (the caller could not
   * reach them in Redis; waiting for the next event instead of spinning).
   */
  register(since: number, opts: { onlyNew?: boolean } = {}): { wait(timeoutMs: number, signal?: AbortSignal): Promise<void>; cancel(): void } {
    let wake!: () => void;
    const woken = new Promise<void>((r) => { wake = r; });
    const w: Waiter = { since, wake };
    if (this.closed || (!opts.onlyNew && this.latest > since)) wake(); else this.waiters.add(w);
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
    this.listeners.clear();
    this.changeListeners.clear();
    if (this.sub) {
      this.sub.disconnect();
      this.log.debug('peer feed closed');
    }
  }
}
