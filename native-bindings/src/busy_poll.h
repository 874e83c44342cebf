/*
 * Adaptive busy-polling (pure C, no N-API): right after a handle's callback had traffic, keep
 * polling the process's addon fds with a zero timeout for a short budget instead of going back
 * to epoll_wait, so a packet that follows within the budget is handled without a wake-up.
 * binding.c supplies the fds (every open, polling handle: TUN and UDP alike) and the dispatch.
 */
#ifndef ISTHMUS_BUSY_POLL_H
#define ISTHMUS_BUSY_POLL_H

#include <stdint.h>

#define ISTHMUS_BP_MAX_FDS 64
/* Upper bound of the budget (1 ms): more is a spinning loop, not a latency aid. */
#define ISTHMUS_BP_MAX_BUDGET_NS 1000000ull
/* A drain of this many packets or more is bulk traffic: no round starts after it and a round
 * that sees one ends, so packets queue up into full batches again (busy-polling hands them
 * over one or two at a time, which costs throughput). */
#define ISTHMUS_BP_BULK 8

typedef struct {
  double rounds;  /* busy-poll rounds started (after a callback with traffic) */
  double hits;    /* handle drains inside a round that found packets */
  double packets; /* packets those drains read */
  double spin_ns; /* time spent polling inside rounds (dispatch excluded) */
  double capped;  /* rounds ended by the total cap while traffic kept coming */
  double bulk;    /* rounds ended by a drain of ISTHMUS_BP_BULK packets or more */
} isthmus_bp_stats_t;

/* Fills fds[i].fd / owners[i] for every fd to watch; returns how many (<= max). */
typedef int (*isthmus_bp_collect_fn)(void *arg, int *fds, void **owners, int max);
/* Drains one readable owner and runs its handlers; returns packets read (0: nothing), -1: stop.
 * A return of ISTHMUS_BP_BULK or more ends the round. */
typedef int (*isthmus_bp_dispatch_fn)(void *arg, void *owner);

uint64_t isthmus_bp_now_ns(void);

/*
 * One round: poll(…, 0) the collected fds until `budget_ns` passes without traffic (each
 * packet restarts the window) or `cap_ns` passed in all, so the event loop is never held
 * longer than the cap. Never blocks. Re-collects the fds after every dispatch (a handler may
 * close or open handles).
 */
void isthmus_busy_poll(uint64_t budget_ns, uint64_t cap_ns, isthmus_bp_collect_fn collect,
                       isthmus_bp_dispatch_fn dispatch, void *arg, isthmus_bp_stats_t *stats);

#endif
