/**
 * Use-after-batch detection shared by the memory fakes (memory-tun.ts, memory-bind.ts).
 *
 * Every receive slab has a generation, bumped when a batch's handler returns and the memory
 * goes back for reuse. An in-place send or write (`sendInPlace`, `writeInPlace`) takes a
 * stamp of the slab its bytes live in and gives it back when it is flushed. Two engine bugs
 * show, even when the views cross devices (a TUN write of bytes that live in a socket's slab):
 *  - the batch ends while in-place views into it are still unflushed (`retireBatch` returns
 *    how many): the engine forgot to flush before returning from the handler;
 *  - a view is flushed after its slab's generation moved (`release` returns false).
 */
interface SlabState {
  generation: number;
  /** in-place views taken in this generation and not yet flushed */
  outstanding: number;
}

const slabs = new WeakMap<ArrayBufferLike, SlabState>();

/** Register `slab` as receive memory. */
export function guardSlab(slab: Uint8Array): void {
  if (!slabs.has(slab.buffer)) slabs.set(slab.buffer, { generation: 0, outstanding: 0 });
}

/** The batch living in `slab` is over. Returns the in-place views into it still unflushed. */
export function retireBatch(slab: Uint8Array): number {
  const s = slabs.get(slab.buffer);
  if (!s) return 0;
  const left = s.outstanding;
  s.generation++;
  s.outstanding = 0;
  return left;
}

/** An in-place view into `view`'s memory was queued: its stamp (-1: memory no fake owns). */
export function stamp(view: Uint8Array): number {
  const s = slabs.get(view.buffer);
  if (!s) return -1;
  s.outstanding++;
  return s.generation;
}

/** The view stamped `st` is flushed (or dropped); false if its batch had already ended. */
export function release(view: Uint8Array, st: number): boolean {
  if (st < 0) return true;
  const s = slabs.get(view.buffer);
  if (!s || s.generation !== st) return false;
  s.outstanding--;
  return true;
}
