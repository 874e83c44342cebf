/**
 * The relay's PolicySource in memory (what `P:policy`, `P:node:<vip>`.tags and the
 * policy-changed / node-changed events are in Redis), for in-process relays (testnet.ts, unit
 * tests). Events are delivered asynchronously, as pub/sub would; lookups answer on a later
 * tick, or when the test releases them (`holdLookups`), to watch frames wait for tags.
 */
import { parseAddr } from '../../common/ipv4';
import { EventType } from '../../common/redis-schema';
import type { PolicySource, PolicySourceEvent } from '../../relay/policy-source';

export class MemoryPolicySource implements PolicySource {
  private text: string | null = null;
  private readonly tags = new Map<number, readonly string[]>();
  private readonly listeners: ((e: PolicySourceEvent | undefined) => void)[] = [];
  private held: (() => void)[] | undefined;
  /** Tag lookups answered so far. */
  lookups = 0;
  /** Make every lookup fail (a Redis outage). */
  failing = false;

  /** Set (or clear, with null) the policy text and publish policy-changed. */
  setPolicy(text: string | null): void {
    this.text = text;
    this.publish({ type: EventType.PolicyChanged });
  }

  /** A member's tags (dotted vip), as a join or an admin writes them; publishes node-changed unless `quiet`. */
  setTags(vip: string, tags: readonly string[], quiet = false): void {
    const v = parseAddr(vip);
    this.tags.set(v, [...tags]);
    if (!quiet) this.publish({ type: EventType.NodeChanged, vip: v });
  }

  removeNode(vip: string): void {
    const v = parseAddr(vip);
    this.tags.delete(v);
    this.publish({ type: EventType.NodeRemoved, vip: v });
  }

  /** Queue tag lookups until releaseLookups(). */
  holdLookups(): void {
    this.held ??= [];
  }

  releaseLookups(): void {
    const h = this.held ?? [];
    this.held = undefined;
    for (const f of h) f();
  }

  /** A reconnect: listeners must re-read everything. */
  reconnect(): void {
    this.publish(undefined);
  }

  async loadPolicy(): Promise<string | null> {
    if (this.failing) throw new Error('policy source unavailable');
    return this.text;
  }

  lookupTags(vip: number): Promise<readonly string[] | undefined> {
    return new Promise((resolve, reject) => {
      const answer = (): void => {
        this.lookups++;
        if (this.failing) reject(new Error('policy source unavailable'));
        else resolve(this.tags.get(vip >>> 0));
      };
      if (this.held) this.held.push(answer);
      else queueMicrotask(answer);
    });
  }

  onEvent(listener: (e: PolicySourceEvent | undefined) => void): void {
    this.listeners.push(listener);
  }

  private publish(e: PolicySourceEvent | undefined): void {
    queueMicrotask(() => {
      for (const l of this.listeners) l(e);
    });
  }
}
