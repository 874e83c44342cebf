/**
 * Each coordinator keeps the peer map in memory and brings it up to date from the change feed
 * (`P:changes`) instead of reading every member hash for every join: a join answers with the
 * whole map, and reading N hashes per join made N joins cost O(N²) Redis work.
 * Refreshes are single-flight: concurrent callers share one read of the feed.
 */
import type { RedisRegistry } from './redis-store';
import type { Peer } from './types';

export class PeerMapCache {
  private version = -1;
  private readonly map = new Map<string, Peer>();
  private list?: Peer[];
  private inflight?: Promise<void>;

  constructor(private readonly registry: RedisRegistry) {}

  /** The map at a version ≥ `minVersion` (pass the caller's own change, or Redis's current version). */
  async current(minVersion = 0): Promise<{ version: number; peers: Peer[] }> {
    for (let round = 0; this.version < minVersion || this.version < 0; round++) {
      // Redis went backwards (flushed / restored): rebuild from a snapshot instead of waiting.
      if (round === 3) this.version = -1;
      if (round > 3 && this.version >= 0) break;
      if (!this.inflight) this.inflight = this.refresh().finally(() => { this.inflight = undefined; });
      await this.inflight;
    }
    if (!this.list) {
      this.list = [...this.map.values()].sort((a, b) => a.vip.localeCompare(b.vip, 'en', { numeric: true }));
    }
    return { version: this.version, peers: this.list };
  }

  private async refresh(): Promise<void> {
    for (;;) {
      const ch = this.version < 0 ? 'full' : await this.registry.changesSince(this.version);
      if (ch === 'full') {
        this.version = -1;
        const snap = await this.registry.snapshot();
        this.map.clear();
        for (const p of snap.peers) this.map.set(p.vip, p);
        this.version = snap.version;
        this.list = undefined;
        return;
      }
      if (ch.version === this.version) return;
      for (const p of ch.upserts) this.map.set(p.vip, p);
      for (const v of ch.removals) this.map.delete(v);
      this.version = ch.version;
      this.list = undefined;
      // changesSince reads at most a page; loop until we reached the version we saw.
    }
  }
}
