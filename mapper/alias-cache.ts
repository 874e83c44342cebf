/**
 * The mapper's name cache (original IP → vip, hostname → vip) with a reverse index vip →
 * names, so an event for one member drops exactly that member's names in O(its names), never
 * by scanning the cache. Pure: times and generations come in as arguments.
 *
 * A negative slot (`vip: null`, "nobody owns this name") belongs to no member and is not
 * indexed; it carries the negative generation it was cached under, and the owner
 * (RedisDirectory) retires every negative slot at once by bumping its generation (O(1)).
 *
 * Bounded: at `maxEntries` the oldest slot (insertion order) is evicted, index included.
 */

export interface AliasSlot {
  /** the owner's vip, or null: nobody owns the name */
  vip: string | null;
  /** when it was cached (ms) */
  at: number;
  /** negative slots: the generation they were cached under */
  negGen: number;
}

export class AliasCache {
  private readonly slots = new Map<string, AliasSlot>();
  private readonly namesOf = new Map<string, Set<string>>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.slots.size;
  }

  /** Number of vips with at least one cached name (for tests and stats). */
  get indexedVips(): number {
    return this.namesOf.size;
  }

  get(name: string): AliasSlot | undefined {
    return this.slots.get(name);
  }

  set(name: string, slot: AliasSlot): void {
    this.delete(name);
    if (this.slots.size >= this.maxEntries) {
      const oldest = this.slots.keys().next();
      if (!oldest.done) this.delete(oldest.value);
    }
    this.slots.set(name, slot);
    if (slot.vip === null) return;
    let names = this.namesOf.get(slot.vip);
    if (!names) {
      names = new Set();
      this.namesOf.set(slot.vip, names);
    }
    names.add(name);
  }

  delete(name: string): void {
    const slot = this.slots.get(name);
    if (!slot) return;
    this.slots.delete(name);
    if (slot.vip === null) return;
    const names = this.namesOf.get(slot.vip);
    if (!names) return;
    names.delete(name);
    if (names.size === 0) this.namesOf.delete(slot.vip);
  }

  /** Drop every name that points at `vip`; returns how many. */
  dropVip(vip: string): number {
    const names = this.namesOf.get(vip);
    if (!names) return 0;
    this.namesOf.delete(vip);
    for (const n of names) this.slots.delete(n);
    return names.size;
  }

  clear(): void {
    this.slots.clear();
    this.namesOf.clear();
  }
}
