/*
 * Pure C batched UDP (IPv4) for Linux: recvmmsg/sendmmsg over JS-owned slabs.
 *
 * Receive slab: datagram i at `slab + i * slot_size + headroom`, at most
 * `slot_size - headroom` bytes; lengths[i], addrs[i] (host-order IPv4), ports[i].
 * Send: datagram i at `bufs[i]` (a tx slab slot, or in place in a caller's buffer) with
 * lengths/addrs/ports likewise.
 * Functions return >= 0 on success and -errno on failure.
 */
#ifndef ISTHMUS_UDP_LINUX_H
#define ISTHMUS_UDP_LINUX_H

#include <stdint.h>

/* Hard cap on one batch, sizes the on-stack mmsghdr arrays. */
#define ISTHMUS_UDP_MAX_BATCH 1024

/* socket + SO_REUSEPORT (optional) + buffer sizes + bind. `host` is host-order.
 * Buffers: SO_*BUFFORCE first (works as root, ignores rmem_max), then SO_*BUF. */
int isthmus_udp_open(uint32_t host, uint16_t port, int reuse_port, int buf_bytes);

/* Bound port (getsockname), or -errno. */
int isthmus_udp_local_port(int fd);

/* recvmmsg until EAGAIN or `max`. Datagrams that did not fit a slot (MSG_TRUNC) are
 * removed from the batch (later ones are moved down) and counted in *truncated.
 * Returns the count, or -errno if nothing was received and the error was not EAGAIN. */
int isthmus_udp_recv_batch(int fd, uint8_t *slab, uint32_t slot_size, uint32_t headroom,
                           uint32_t max, uint32_t *lengths, uint32_t *addrs, uint32_t *ports,
                           uint32_t *truncated);

/* UDP GRO receive state of one socket: trains received but not yet split into slots. */
#define ISTHMUS_GRO_MSGS 8
#define ISTHMUS_GRO_BYTES 65536
typedef struct isthmus_gro_s {
  uint8_t bounce[ISTHMUS_GRO_MSGS][ISTHMUS_GRO_BYTES];
  uint32_t lens[ISTHMUS_GRO_MSGS], segs[ISTHMUS_GRO_MSGS];
  uint32_t addrs[ISTHMUS_GRO_MSGS], ports[ISTHMUS_GRO_MSGS];
  uint32_t count, cur, off;
} isthmus_gro_t;

/* Turn UDP GRO on (setsockopt UDP_GRO) and allocate its state; NULL if the kernel refuses. */
isthmus_gro_t *isthmus_udp_enable_gro(int fd);
void isthmus_udp_gro_free(isthmus_gro_t *g);
/* Datagrams held from a train that did not fit the last batch (call recv again, no poll). */
int isthmus_udp_gro_pending(const isthmus_gro_t *g);

/* Like isthmus_udp_recv_batch for a socket with GRO on: one slot per datagram of a train. */
int isthmus_udp_recv_batch_gro(int fd, isthmus_gro_t *g, uint8_t *slab, uint32_t slot_size,
                               uint32_t headroom, uint32_t max, uint32_t *lengths,
                               uint32_t *addrs, uint32_t *ports, uint32_t *truncated);

/* sendmmsg of datagrams 0..count-1, continuing after partial sends. A datagram the
 * kernel refuses (e.g. EMSGSIZE, ENETUNREACH) is skipped and counted in *errors;
 * on EAGAIN the remainder is dropped and counted in *errors (never blocks).
 * Returns how many were sent.
 * *gso > 0: runs of same-destination, same-size datagrams go as one UDP_SEGMENT send (see
 * udp_linux.c); set to 0 here when the kernel refuses GSO, and the batch is sent plainly. */
int isthmus_udp_send_batch(int fd, const uint8_t *const *bufs,
                           const uint32_t *lengths, const uint32_t *addrs,
                           const uint32_t *ports, uint32_t count, uint32_t *errors,
                           int *gso);

#endif
