/* Adaptive busy-polling: see busy_poll.h. */
#include "busy_poll.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <time.h>

uint64_t isthmus_bp_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void isthmus_busy_poll(uint64_t budget_ns, uint64_t cap_ns, isthmus_bp_collect_fn collect,
                       isthmus_bp_dispatch_fn dispatch, void *arg, isthmus_bp_stats_t *stats) {
  struct pollfd pfd[ISTHMUS_BP_MAX_FDS];
  int fds[ISTHMUS_BP_MAX_FDS];
  void *owners[ISTHMUS_BP_MAX_FDS];
  if (budget_ns == 0) return;
  uint64_t start = isthmus_bp_now_ns();
  uint64_t end = start + cap_ns;
  uint64_t quiet_until = start + budget_ns;
  uint64_t dispatch_ns = 0;
  int n = collect(arg, fds, owners, ISTHMUS_BP_MAX_FDS);
  for (int i = 0; i < n; i++) pfd[i].fd = fds[i];
  stats->rounds++;
  uint64_t now = start;
  while (n > 0) {
    for (int i = 0; i < n; i++) {
      pfd[i].events = POLLIN;
      pfd[i].revents = 0;
    }
    int r = poll(pfd, (nfds_t)n, 0);
    if (r < 0 && errno != EINTR) break;
    int stop = 0, got = 0;
    if (r > 0) {
      uint64_t t0 = isthmus_bp_now_ns();
      for (int i = 0; i < n && !stop; i++) {
        if (!(pfd[i].revents & POLLIN)) continue; /* errors: left to the uv_poll callback */
        int k = dispatch(arg, owners[i]);
        if (k < 0) stop = 1;
        if (k > 0) {
          stats->hits++;
          stats->packets += k;
          got = 1;
        }
        if (k >= ISTHMUS_BP_BULK) {
          stats->bulk++;
          stop = 1;
        }
      }
      now = isthmus_bp_now_ns();
      dispatch_ns += now - t0;
      if (stop) break;
      /* A handler may have closed or opened handles. */
      n = collect(arg, fds, owners, ISTHMUS_BP_MAX_FDS);
      for (int i = 0; i < n; i++) pfd[i].fd = fds[i];
    } else {
      /* Nothing yet: hand the core to any other runnable task (the next hop of the packet we
       * just sent may be waiting for it on this 2-core machine); returns at once when none. */
      sched_yield();
      now = isthmus_bp_now_ns();
    }
    if (got) quiet_until = now + budget_ns;
    if (now >= end) {
      if (got) stats->capped++;
      break;
    }
    if (now >= quiet_until) break;
  }
  uint64_t total = now - start;
  stats->spin_ns += (double)(total > dispatch_ns ? total - dispatch_ns : 0);
}
