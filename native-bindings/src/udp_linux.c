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

int isthmus_udp_send_batch(int fd, const uint8_t *slab, uint32_t slot_size,
                           const uint32_t *lengths, const uint32_t *addrs,
                           const uint32_t *ports, uint32_t count, uint32_t *errors) {
  struct mmsghdr msgs[ISTHMUS_UDP_MAX_BATCH];
  struct iovec iovs[ISTHMUS_UDP_MAX_BATCH];
  struct sockaddr_in names[ISTHMUS_UDP_MAX_BATCH];
  if (count > ISTHMUS_UDP_MAX_BATCH) {
    *errors += count - ISTHMUS_UDP_MAX_BATCH;
    count = ISTHMUS_UDP_MAX_BATCH;
  }
  for (uint32_t i = 0; i < count; i++) {
    iovs[i].iov_base = (void *)(slab + (size_t)i * slot_size);
    iovs[i].iov_len = lengths[i];
    memset(&names[i], 0, sizeof(names[i]));
    names[i].sin_family = AF_INET;
    names[i].sin_port = htons((uint16_t)ports[i]);
    names[i].sin_addr.s_addr = htonl(addrs[i]);
    memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &names[i];
    msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
  }
  uint32_t done = 0;
  int sent = 0;
  while (done < count) {
    int r = sendmmsg(fd, msgs + done, count - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *errors += count - done;
        break;
      }
      /* sendmmsg reports an error only when the first datagram fails: skip it. */
      (*errors)++;
      done++;
      continue;
    }
    done += (uint32_t)r;
    sent += r;
  }
  return sent;
}
