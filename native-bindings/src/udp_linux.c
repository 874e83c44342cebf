/*
 * Batched UDP for Linux. Pure C: the N-API glue in binding.c is the only caller.
 *
 * EAGAIN on send: we drop and count rather than park on UV_WRITABLE. The socket has a
 * 4 MiB send buffer, so EAGAIN means the host is saturated; holding packets would only
 * add latency for a tunnel whose inner transport retransmits anyway (wireguard-go
 * does the same with its per-peer staged queue being bounded).
 */
#define _GNU_SOURCE
#include "udp_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int isthmus_udp_open(uint32_t host, uint16_t port, int reuse_port, int buf_bytes) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;

  int one = 1;
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  if (buf_bytes > 0) {
    /* Best effort: FORCE needs CAP_NET_ADMIN; plain SO_*BUF is capped by rmem_max. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf_bytes, sizeof(buf_bytes)) < 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf_bytes, sizeof(buf_bytes));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf_bytes, sizeof(buf_bytes)) < 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf_bytes, sizeof(buf_bytes));
  }

  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(host);
  if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int isthmus_udp_local_port(int fd) {
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0) return -errno;
  return ntohs(sin.sin_port);
}

int isthmus_udp_recv_batch(int fd, uint8_t *slab, uint32_t slot_size, uint32_t headroom,
                           uint32_t max, uint32_t *lengths, uint32_t *addrs, uint32_t *ports,
                           uint32_t *truncated) {
  if (max > ISTHMUS_UDP_MAX_BATCH) max = ISTHMUS_UDP_MAX_BATCH;
  struct mmsghdr msgs[ISTHMUS_UDP_MAX_BATCH];
  struct iovec iovs[ISTHMUS_UDP_MAX_BATCH];
  struct sockaddr_in names[ISTHMUS_UDP_MAX_BATCH];

  uint32_t n = 0; /* datagrams kept in the batch so far (slots 0..n-1) */
  while (n < max) {
    uint32_t want = max - n;
    for (uint32_t i = 0; i < want; i++) {
      uint32_t slot = n + i;
      iovs[i].iov_base = slab + (size_t)slot * slot_size + headroom;
      iovs[i].iov_len = slot_size - headroom;
      memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &names[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
    }
    int r = recvmmsg(fd, msgs, want, MSG_DONTWAIT, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (n == 0) return -errno;
      break;
    }
    if (r == 0) break;
    uint32_t kept = n;
    for (int i = 0; i < r; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        (*truncated)++;
        continue;
      }
      uint32_t from = n + (uint32_t)i;
      if (from != kept) {
        /* Rare: a truncated datagram left a hole; move this one down. */
        memmove(slab + (size_t)kept * slot_size + headroom,
                slab + (size_t)from * slot_size + headroom, msgs[i].msg_len);
      }
      lengths[kept] = msgs[i].msg_len;
      addrs[kept] = ntohl(names[i].sin_addr.s_addr);
      ports[kept] = ntohs(names[i].sin_port);
      kept++;
    }
    n = kept;
    if ((uint32_t)r < want) break; /* drained */
  }
  return (int)n;
}

/* Linux UDP GRO (UDP_GRO sockopt, 5.0+): the kernel may hand one receive a train of
 * datagrams of one flow, gso_size bytes each (the last may be shorter), instead of
 * segmenting it first: trains sent with GSO then cross the receiver's stack as one skb.
 * Trains land in the socket's bounce buffers and are split into one slot per datagram here,
 * so callers see exactly the datagrams that were sent. A train that does not fit the free
 * slots stays pending for the next batch (isthmus_udp_gro_pending). */
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

isthmus_gro_t *isthmus_udp_enable_gro(int fd) {
  int one = 1;
  if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) < 0) return NULL;
  isthmus_gro_t *g = calloc(1, sizeof(*g));
  if (!g) {
    int zero = 0;
    (void)setsockopt(fd, SOL_UDP, UDP_GRO, &zero, sizeof(zero));
  }
  return g;
}

void isthmus_udp_gro_free(isthmus_gro_t *g) { free(g); }

int isthmus_udp_gro_pending(const isthmus_gro_t *g) { return g && g->cur < g->count; }

int isthmus_udp_recv_batch_gro(int fd, isthmus_gro_t *g, uint8_t *slab, uint32_t slot_size,
                               uint32_t headroom, uint32_t max, uint32_t *lengths,
                               uint32_t *addrs, uint32_t *ports, uint32_t *truncated) {
  struct mmsghdr msgs[ISTHMUS_GRO_MSGS];
  struct iovec iovs[ISTHMUS_GRO_MSGS];
  struct sockaddr_in names[ISTHMUS_GRO_MSGS];
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctrl[ISTHMUS_GRO_MSGS];
  uint32_t cap = slot_size - headroom;
  uint32_t n = 0;
  int drained = 0;
  for (;;) {
    /* Split what is held into slots. */
    while (g->cur < g->count && n < max) {
      uint32_t m = g->cur, len = g->lens[m];
      uint32_t l = len - g->off < g->segs[m] ? len - g->off : g->segs[m];
      if (l > cap) {
        (*truncated)++; /* a datagram larger than a slot: dropped, as without GRO */
      } else {
        if (l > 0) memcpy(slab + (size_t)n * slot_size + headroom, g->bounce[m] + g->off, l);
        lengths[n] = l;
        addrs[n] = g->addrs[m];
        ports[n] = g->ports[m];
        n++;
      }
      g->off += l;
      if (g->off >= len) {
        g->cur++;
        g->off = 0;
      }
    }
    if (g->cur < g->count || n >= max || drained) return (int)n;
    g->cur = g->count = g->off = 0;
    for (uint32_t i = 0; i < ISTHMUS_GRO_MSGS; i++) {
      iovs[i].iov_base = g->bounce[i];
      iovs[i].iov_len = ISTHMUS_GRO_BYTES;
      memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &names[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
      msgs[i].msg_hdr.msg_control = ctrl[i].buf;
      msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i].buf);
    }
    int r = recvmmsg(fd, msgs, ISTHMUS_GRO_MSGS, MSG_DONTWAIT, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return (int)n;
      return n == 0 ? -errno : (int)n;
    }
    if (r == 0) return (int)n;
    if (r < ISTHMUS_GRO_MSGS) drained = 1;
    for (int i = 0; i < r; i++) {
      uint32_t len = msgs[i].msg_len, seg = len;
      for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr); cm;
           cm = CMSG_NXTHDR(&msgs[i].msg_hdr, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
          int v;
          memcpy(&v, CMSG_DATA(cm), sizeof(v));
          if (v > 0) seg = (uint32_t)v;
        }
      }
      if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || (len > 0 && seg == 0)) {
        (*truncated)++; /* cannot happen with a 64 KiB bounce; never deliver a partial train */
        continue;
      }
      uint32_t k = g->count++;
      if (k != (uint32_t)i) memmove(g->bounce[k], g->bounce[i], len);
      g->lens[k] = len;
      g->segs[k] = len == 0 ? 1 : seg;
      g->addrs[k] = ntohl(names[i].sin_addr.s_addr);
      g->ports[k] = ntohs(names[i].sin_port);
    }
  }
}

/* Linux UDP GSO (UDP_SEGMENT, 4.18+): consecutive datagrams to the same address with the
 * same length (the last of a run may be shorter) go down as ONE sendmsg whose iovecs point
 * at their slots; the kernel builds one skb and segments it as late as possible (on veth:
 * at the receiving socket), so routing, netfilter and the device are paid once per run.
 * The datagrams on the wire are exactly the ones sendmmsg would have sent. */
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000

/* sendmmsg of msgs[0..nmsgs) (segs[m] datagrams each) until done or EAGAIN. Returns the
 * datagrams sent; *gso_failed_at = index of a GSO message the kernel refused, else -1. */
static int send_all(int fd, struct mmsghdr *msgs, const uint32_t *segs, uint32_t nmsgs,
                    uint32_t *errors, int *gso_failed_at) {
  uint32_t done = 0;
  int sent = 0;
  *gso_failed_at = -1;
  while (done < nmsgs) {
    int r = sendmmsg(fd, msgs + done, nmsgs - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        for (uint32_t i = done; i < nmsgs; i++) *errors += segs[i];
        break;
      }
      /* EIO/EINVAL on a GSO message: this path cannot segment (no checksum offload, ...). */
      if (segs[done] > 1 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT ||
                             errno == EOPNOTSUPP)) {
        *gso_failed_at = (int)done;
        return sent;
      }
      /* sendmmsg reports an error only when the first message fails: skip it. */
      *errors += segs[done];
      done++;
      continue;
    }
    for (int i = 0; i < r; i++) sent += (int)segs[done + (uint32_t)i];
    done += (uint32_t)r;
  }
  return sent;
}

int isthmus_udp_send_batch(int fd, const uint8_t *const *bufs,
                           const uint32_t *lengths, const uint32_t *addrs,
                           const uint32_t *ports, uint32_t count, uint32_t *errors,
                           int *gso) {
  static __thread struct mmsghdr msgs[ISTHMUS_UDP_MAX_BATCH];
  static __thread struct iovec iovs[ISTHMUS_UDP_MAX_BATCH];
  static __thread struct sockaddr_in names[ISTHMUS_UDP_MAX_BATCH];
  static __thread uint32_t segs[ISTHMUS_UDP_MAX_BATCH];
  static __thread union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctrl[ISTHMUS_UDP_MAX_BATCH];
  if (count > ISTHMUS_UDP_MAX_BATCH) {
    *errors += count - ISTHMUS_UDP_MAX_BATCH;
    count = ISTHMUS_UDP_MAX_BATCH;
  }
  int use_gso = *gso > 0;
  int total = 0;
  for (;;) {
    uint32_t nmsgs = 0;
    for (uint32_t i = 0; i < count;) {
      uint32_t first = i, bytes = lengths[i];
      i++;
      /* Extend the run: same destination, same size as the first, and stop after a shorter one. */
      while (use_gso && i < count && i - first < GSO_MAX_SEGMENTS && addrs[i] == addrs[first] &&
             ports[i] == ports[first] && lengths[i] > 0 && lengths[i] <= lengths[first] &&
             bytes + lengths[i] <= GSO_MAX_BYTES && lengths[i - 1] == lengths[first]) {
        bytes += lengths[i];
        i++;
      }
      uint32_t m = nmsgs++;
      for (uint32_t k = first; k < i; k++) {
        iovs[k].iov_base = (void *)bufs[k];
        iovs[k].iov_len = lengths[k];
      }
      memset(&names[m], 0, sizeof(names[m]));
      names[m].sin_family = AF_INET;
      names[m].sin_port = htons((uint16_t)ports[first]);
      names[m].sin_addr.s_addr = htonl(addrs[first]);
      memset(&msgs[m], 0, sizeof(msgs[m]));
      msgs[m].msg_hdr.msg_iov = &iovs[first];
      msgs[m].msg_hdr.msg_iovlen = i - first;
      msgs[m].msg_hdr.msg_name = &names[m];
      msgs[m].msg_hdr.msg_namelen = sizeof(names[m]);
      segs[m] = i - first;
      if (i - first > 1) {
        msgs[m].msg_hdr.msg_control = ctrl[m].buf;
        msgs[m].msg_hdr.msg_controllen = sizeof(ctrl[m].buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gso_size = (uint16_t)lengths[first];
        memcpy(CMSG_DATA(cm), &gso_size, sizeof(gso_size));
      }
    }
    int failed_at;
    total += send_all(fd, msgs, segs, nmsgs, errors, &failed_at);
    if (failed_at < 0) return total;
    /* Rare: GSO refused. Turn it off for this socket and send the rest one by one. */
    *gso = 0;
    use_gso = 0;
    uint32_t skip = 0;
    for (int k = 0; k < failed_at; k++) skip += segs[k];
    bufs += skip;
    lengths += skip;
    addrs += skip;
    ports += skip;
    count -= skip;
  }
}
