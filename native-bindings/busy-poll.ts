/**
 * Adaptive busy-polling (src/busy_poll.c): after a TUN or UDP handle's callback had traffic,
 * the addon keeps polling every open handle of this thread with a zero timeout until the budget
 * passes without a packet (each packet restarts it; at most 8 × budget, at least 200 µs, in
 * all), then returns to the event loop. A packet that follows within the budget (a reply, the
 * next request) is handled without an epoll_wait sleep and wake-up. Never spins when idle: a
 * round starts only right after traffic.
 */
import { InvalidOptionError } from './errors';
import { type BusyPollStats, loadNative } from './load';

export type { BusyPollStats } from './load';

/** Largest budget the addon takes, microseconds. */
export const BUSY_POLL_MAX_US = 1000;

/** Sets the busy-poll budget (microseconds, 0 = off) for every addon handle of this thread. */
export function setBusyPoll(microseconds: number): void {
  if (!Number.isInteger(microseconds) || microseconds < 0 || microseconds > BUSY_POLL_MAX_US) {
    throw new InvalidOptionError(`busy-poll budget must be an integer number of microseconds in [0, ${BUSY_POLL_MAX_US}], got ${microseconds}`);
  }
  loadNative().busyPoll(microseconds);
}

/** This thread's busy-poll counters (all zero while it is off and never was on). */
export function busyPollStats(): BusyPollStats {
  return loadNative().busyPollStats();
}
