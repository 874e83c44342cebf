/**
 * Session tokens this coordinator checked recently, so the long-polls one change wakes do not
 * each re-run the auth script when they poll again (issue 12: Redis work per change independent
 * of the number of members woken).
 *
 * A token is taken from here only while all of these hold, else Redis decides (AUTH_LUA):
 *   - more than half of its TTL is left (below that, the script renews it: tokens still renew on use,
 *     and every token is checked in Redis again at least once per half TTL);
 *   - the member it names is in this coordinator's peer-map cache with the same public key
 *     (removal, and a re-join under another vip, end it as soon as the change feed says so);
 *   - it was not dropped by this coordinator's own leave or admin removal of that vip (at once,
 *     before the answer; another coordinator's removal reaches here with its change event).
 */
import { LRUCache } from 'lru-cache';

interface Entry { vip: string; publicKey: string; until: number }

export class SessionCache {
  private readonly byHash: LRUCache<string, Entry>;
  private readonly byVip = new Map<string, Set<string>>();
  /** Hits and misses (tests, bench). */
  readonly stats = { hits: 0, misses: 0 };

  constructor(max = 262_144) {
    this.byHash = new LRUCache({
      max,
      dispose: (e, hash) => {
        const s = this.byVip.get(e.vip);
        s?.delete(hash);
        if (s?.size === 0) this.byVip.delete(e.vip);
      },
    });
  }

  /** The vip of a cached token, if it may still be used without asking Redis. */
  get(tokenHash: string, now: number, isMember: (vip: string, publicKey: string) => boolean): string | undefined {
    const e = this.byHash.get(tokenHash);
    if (e && now < e.until && isMember(e.vip, e.publicKey)) {
      this.stats.hits++;
      return e.vip;
    }
    if (e) this.byHash.delete(tokenHash);
    this.stats.misses++;
    return undefined;
  }

  /** A token Redis just accepted with `leftMs` to live: usable from here until half the TTL is left. */
  set(tokenHash: string, vip: string, publicKey: string, leftMs: number, ttlMs: number, now: number): void {
    // No shorter cap: a cap would make every re-poll after it ask Redis, which at a change
    // that wakes N members is O(N) again (bench:scale measured it).
    const until = now + leftMs - ttlMs / 2;
    if (leftMs < 0 || until <= now) return; // no TTL (-1), or due for renewal: always ask Redis
    this.byHash.set(tokenHash, { vip, publicKey, until });
    let s = this.byVip.get(vip);
    if (!s) this.byVip.set(vip, s = new Set());
    s.add(tokenHash);
  }

  /** Forget every token of a member (it left or was removed here). */
  dropVip(vip: string): void {
    for (const h of [...this.byVip.get(vip) ?? []]) this.byHash.delete(h);
  }
}
