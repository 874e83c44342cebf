/*
 * tcp-rr: request/response and connect/request/response rates over TCP, like netperf's TCP_RR and
 * TCP_CRR (netperf is not in Debian main; sockperf has no connection-per-transaction mode and its
 * ping-pong over a 64-connection feed file hung here). Compiled by
 * `npm run bench` with the system `cc` into a temporary directory and run inside the bench's
 * namespaces, so what is measured is the overlay and the kernel, not a language runtime.
 *
 *   tcp-rr server BIND_IP PORT
 *       Echoes every byte it reads. After the first reply on a connection it reads on; a
 *       connection opened by a CRR client is closed by the server once it has answered (so the
 *       TIME_WAIT state lands on the server side and the client's ephemeral ports free at once).
 *       A CRR client says so by sending 'c' as its request byte; RR clients send 'r'.
 *
 *   tcp-rr client rr|crr SERVER_IP PORT BIND_IP CONNS SECONDS WARMUP_SECONDS
 *       rr:  CONNS connections opened first; each keeps one 1-byte request in flight and sends
 *            the next one when the 1-byte answer arrives.
 *       crr: CONNS transactions in flight; each one is connect, 1 byte each way, the server
 *            closes, the client reads the EOF and closes; then a new connection takes its place.
 *       Transactions completed during the WARMUP_SECONDS are not counted. Prints one JSON line:
 *       {"mode","conns","seconds","transactions","tps","p50Us","p99Us","errors"}; latency is
 *       from the request (rr) or the connect() call (crr) to the answer byte.
 *
 * Single-threaded, epoll, non-blocking sockets, TCP_NODELAY on every socket.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static void die(const char *what) {
  fprintf(stderr, "tcp-rr: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void set_nonblock_nodelay(int fd) {
  int one = 1;
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
}

static struct sockaddr_in addr_of(const char *ip, const char *port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)atoi(port));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "tcp-rr: not an IPv4 address: %s\n", ip);
    exit(2);
  }
  return a;
}

/* ---- server ---- */

static _Noreturn void server(const char *ip, const char *port) {
  struct sockaddr_in a = addr_of(ip, port);
  int one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (lfd < 0) die("socket");
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(lfd, 4096) < 0) die("listen");
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");
  struct epoll_event evs[256];
  char buf[4096];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0) close(c);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        close(fd);
        continue;
      }
      /* 1-byte requests: the reply always fits the send buffer. */
      if (write(fd, buf, (size_t)r) != r || buf[r - 1] == 'c') close(fd);
    }
  }
}

/* ---- client ---- */

struct lat {
  double *v;
  size_t n, cap;
};

static void lat_push(struct lat *l, double x) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 65536;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (!l->v) die("realloc");
  }
  l->v[l->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const struct lat *l, double p) {
  if (l->n == 0) return 0;
  size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
  return l->v[i];
}

enum { ST_CONNECTING, ST_WAIT_REPLY, ST_WAIT_EOF };

struct conn {
  int fd;
  int state;
  double t0;
};

static int open_conn(const struct sockaddr_in *srv, const struct sockaddr_in *bind_to, int blocking) {
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK), 0);
  if (fd < 0) die("socket");
  /* Pick the source port at connect() with the full 4-tuple known, not at bind(). */
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  if (bind(fd, (const struct sockaddr *)bind_to, sizeof *bind_to) < 0) die("bind");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)srv, sizeof *srv) < 0 && errno != EINPROGRESS) die("connect");
  return fd;
}

static int client(int crr, const char *sip, const char *sport, const char *bip, int conns, double seconds, double warmup) {
  struct sockaddr_in srv = addr_of(sip, sport);
  struct sockaddr_in bind_to = addr_of(bip, "0");
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  struct conn *cs = calloc((size_t)conns, sizeof *cs);
  if (!cs) die("calloc");
  const char req = crr ? 'c' : 'r';
  struct lat lat = {0};
  long errors = 0, count = 0;
  double start = now_us();
  double measure_from = start + warmup * 1e6, end = measure_from + seconds * 1e6;

  for (int i = 0; i < conns; i++) {
    if (crr) {
      cs[i].fd = open_conn(&srv, &bind_to, 0);
      cs[i].state = ST_CONNECTING;
      cs[i].t0 = now_us();
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) die("epoll_ctl");
    } else {
      cs[i].fd = open_conn(&srv, &bind_to, 1);
      set_nonblock_nodelay(cs[i].fd);
      struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) die("epoll_ctl");
    }
  }
  if (!crr) {
    start = now_us();
    measure_from = start + warmup * 1e6;
    end = measure_from + seconds * 1e6;
    for (int i = 0; i < conns; i++) {
      cs[i].state = ST_WAIT_REPLY;
      cs[i].t0 = now_us();
      if (write(cs[i].fd, &req, 1) != 1) die("write");
    }
  }

  struct epoll_event evs[256];
  char buf[64];
  for (;;) {
    double t = now_us();
    if (t >= end) break;
    int n = epoll_wait(ep, evs, 256, (int)((end - t) / 1000) + 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int k = 0; k < n; k++) {
      struct conn *c = &cs[evs[k].data.u32];
      int idx = (int)evs[k].data.u32;
      if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || write(c->fd, &req, 1) != 1) goto fail;
        c->state = ST_WAIT_REPLY;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        continue;
      }
      ssize_t r = read(c->fd, buf, sizeof buf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (c->state == ST_WAIT_REPLY) {
        if (r <= 0) goto fail;
        double t1 = now_us();
        if (t1 >= measure_from && t1 < end) {
          count++;
          lat_push(&lat, t1 - c->t0);
        }
        if (crr) {
          c->state = ST_WAIT_EOF;
          if (r > 1) goto fail; /* the server sent more than one byte */
          continue;
        }
        c->t0 = t1;
        if (write(c->fd, &req, 1) != 1) goto fail;
        continue;
      }
      /* ST_WAIT_EOF (crr): the server closed; close and start the next transaction. */
      if (r != 0) goto fail;
      close(c->fd);
      goto reopen;
    fail:
      errors++;
      close(c->fd);
      if (!crr) {
        /* An RR connection that broke is not replaced: the JSON shows the error count. */
        c->fd = -1;
        continue;
      }
    reopen:
      c->fd = open_conn(&srv, &bind_to, 0);
      c->state = ST_CONNECTING;
      c->t0 = now_us();
      {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)idx};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
      }
    }
  }
  qsort(lat.v, lat.n, sizeof *lat.v, cmp_double);
  printf("{\"mode\":\"%s\",\"conns\":%d,\"seconds\":%.3f,\"transactions\":%ld,\"tps\":%.1f,\"p50Us\":%.1f,\"p99Us\":%.1f,\"errors\":%ld}\n",
         crr ? "crr" : "rr", conns, seconds, count, (double)count / seconds, pct(&lat, 0.5), pct(&lat, 0.99), errors);
  for (int i = 0; i < conns; i++)
    if (cs[i].fd >= 0) close(cs[i].fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "server") == 0) server(argv[2], argv[3]);
  if (argc == 9 && strcmp(argv[1], "client") == 0 && (strcmp(argv[2], "rr") == 0 || strcmp(argv[2], "crr") == 0)) {
    int conns = atoi(argv[6]);
    double seconds = atof(argv[7]), warmup = atof(argv[8]);
    if (conns < 1 || conns > 10000 || !(seconds > 0) || warmup < 0) {
      fprintf(stderr, "tcp-rr: CONNS must be 1..10000, SECONDS > 0, WARMUP_SECONDS >= 0\n");
      return 2;
    }
    return client(strcmp(argv[2], "crr") == 0, argv[3], argv[4], argv[5], conns, seconds, warmup);
  }
  fprintf(stderr,
          "usage: tcp-rr server BIND_IP PORT\n"
          "       tcp-rr client rr|crr SERVER_IP PORT BIND_IP CONNS SECONDS WARMUP_SECONDS\n");
  return 2;
}
