/**
 * Anti-replay sliding window after RFC 6479 (and wireguard-go replay/replay.go).
 *
 * The window is a ring of `RING_BLOCKS` u32 blocks; bit `c % 32` of block `(c / 32) % RING_BLOCKS`
 * records counter `c`. Moving the window forward clears whole blocks, never shifts bits, so
 * the cost of a far jump is bounded by RING_BLOCKS regardless of the distance.
 *
 *   ring:  | blk 0 | blk 1 | ... | blk 255 |      256 × 32 bits = 8192 bits
 *   WINDOW_SIZE = (RING_BLOCKS - 1) × 32 = 8160 counters behind the highest seen are tracked;
 *   the block that holds `last` may be partly in the future, hence "− 1 block".
 *
 * Representation: counters are JS numbers. Every arithmetic step (`/ 32`, `% 32`,
 * `% RING_BLOCKS`, differences) is exact for integers below 2^53, so the window accepts
 * counters in [0, MAX_SAFE_COUNTER) and rejects everything at or above it, as well as
 * anything at or above the caller's `limit` (REJECT_AFTER_MESSAGES). 2^53 messages is
 * 285 years at 1 Mpps, so no honest peer reaches it; rejecting beyond it is always safe
 * (it can only drop, never accept a replay). bigint inputs are accepted for convenience
 * (they are converted once), numbers are the allocation-free path.
 */
import { REJECT_AFTER_MESSAGES } from './constants';

const BLOCK_BITS = 32;
/** Power of two; 256 blocks × 32 bits = 8192 bits like wireguard-go (128 × 64). */
export const RING_BLOCKS = 256;
/** Counters this far behind the highest accepted one are still checked individually. */
export const WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS;
/** First counter the window cannot represent exactly (2^53). */
export const MAX_SAFE_COUNTER = 2 ** 53;

/** REJECT_AFTER_MESSAGES clamped into the number domain, the default `limit`. */
export const REJECT_AFTER_MESSAGES_NUM = Number(REJECT_AFTER_MESSAGES) > MAX_SAFE_COUNTER
  ? MAX_SAFE_COUNTER : Number(REJECT_AFTER_MESSAGES);

export class ReplayWindow {
  private readonly ring = new Uint32Array(RING_BLOCKS);
  /** Highest counter accepted so far (0 before any: counter 0 is then "inside" the window). */
  private last = 0;

  reset(): void {
    this.ring.fill(0);
    this.last = 0;
  }

  /** Highest counter accepted so far. */
  get highest(): number {
    return this.last;
  }

  /**
   * Check `counter` and record it. True when it is new and inside the window; false when it
   * is a duplicate, too old (more than WINDOW_SIZE behind the highest), or >= limit.
   * Call only after the packet has been authenticated, or an attacker moves the window.
   */
  validateCounter(counter: bigint | number, limit: bigint | number = REJECT_AFTER_MESSAGES_NUM): boolean {
    let c: number;
    if (typeof counter === 'bigint') {
      if (counter < 0n || counter >= BigInt(MAX_SAFE_COUNTER)) return false;
      c = Number(counter);
    } else {
      c = counter;
    }
    if (!(c >= 0 && c < MAX_SAFE_COUNTER) || c !== Math.floor(c)) return false;
    // A bigint limit above 2^53 cannot bind any representable counter: skip the comparison.
    if (typeof limit === 'bigint') {
      if (limit < BigInt(MAX_SAFE_COUNTER) && c >= Number(limit)) return false;
    } else if (c >= limit) {
      return false;
    }

    const block = Math.floor(c / BLOCK_BITS);
    if (c > this.last) {
      // Clear the blocks between the old head block and the new one (at most the whole ring).
      const current = Math.floor(this.last / BLOCK_BITS);
      let diff = block - current;
      if (diff > RING_BLOCKS) diff = RING_BLOCKS;
      for (let i = 1; i <= diff; i++) this.ring[(current + i) % RING_BLOCKS] = 0;
      this.last = c;
    } else if (this.last - c > WINDOW_SIZE) {
      return false;
    }
    const idx = block % RING_BLOCKS;
    const bit = 1 << (c % BLOCK_BITS);
    const old = this.ring[idx];
    if ((old & bit) !== 0) return false;
    this.ring[idx] = old | bit;
    return true;
  }
}
