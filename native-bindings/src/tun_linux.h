/*
 * Pure C TUN device I/O for Linux (no node_api.h here; testable from plain C).
 *
 * Slab layout shared with JS (see ../index.ts): packet i lives in slot i, i.e. at
 * `slab + i * slot_size + headroom`, at most `slot_size - headroom` bytes; its length
 * goes to lengths[i]. All functions return >= 0 on success and -errno on failure.
 */
#ifndef ISTHMUS_TUN_LINUX_H
#define ISTHMUS_TUN_LINUX_H

#include <stddef.h>
#include <stdint.h>

#define ISTHMUS_IFNAMSIZ 16

/* Opens /dev/net/tun as IFF_TUN|IFF_NO_PI, non-blocking, close-on-exec. `name` may be
 * NULL/"" (kernel picks "tunN") or a pattern such as "isth%d". The real name is written
 * to out_name (ISTHMUS_IFNAMSIZ bytes). Returns the fd.
 * With *offload set, it first tries IFF_VNET_HDR with TUNSETOFFLOAD(TUN_F_CSUM|TUN_F_TSO4);
 * a kernel that refuses gets a plain device and *offload = 0. */
int isthmus_tun_open(const char *name, char *out_name, int *offload);

/* Per-device state of the offload path (tun opened with IFF_VNET_HDR). */
typedef struct isthmus_tun_offload_s isthmus_tun_offload_t;
isthmus_tun_offload_t *isthmus_tun_offload_new(void);
void isthmus_tun_offload_free(isthmus_tun_offload_t *o);
/* A super-packet read but not yet fully split into slots (the batch was full). */
int isthmus_tun_offload_pending(const isthmus_tun_offload_t *o);

/* Offload counters (added to, never reset). */
typedef struct {
  uint32_t malformed;   /* vnet header or GSO packet we cannot split: dropped */
  uint32_t rx_super;    /* GSO packets read (split into more than one segment) */
  uint32_t tx_super;    /* coalesced packets written */
} isthmus_offload_counts_t;

/* Like isthmus_tun_read_batch on a IFF_VNET_HDR device: each read is split into
 * segments of at most `max_len` bytes (isthmus_offload_split), one per slot. */
int isthmus_tun_read_batch_offload(int fd, isthmus_tun_offload_t *o, uint8_t *slab,
                                   uint32_t slot_size, uint32_t headroom, uint32_t max_len,
                                   uint32_t max, uint32_t *lengths, isthmus_offload_counts_t *c);

/* Like isthmus_tun_write_batch on a IFF_VNET_HDR device: runs of one TCP flow are
 * coalesced (isthmus_offload_coalesce), everything else written with a zero vnet header.
 * Returns the packets (segments) written. */
int isthmus_tun_write_batch_offload(int fd, isthmus_tun_offload_t *o, const uint8_t *const *bufs,
                                    const uint32_t *lengths, uint32_t count, uint32_t *errors,
                                    isthmus_offload_counts_t *c);

/* MTU (SIOCSIFMTU). */
int isthmus_tun_set_mtu(const char *ifname, int mtu);

/* IPv4 address (host-order) and prefix length (SIOCSIFADDR + SIOCSIFNETMASK). */
int isthmus_tun_set_ipv4(const char *ifname, uint32_t addr, int prefix_len);

/* IFF_UP|IFF_RUNNING (SIOCGIFFLAGS + SIOCSIFFLAGS). */
int isthmus_tun_set_up(const char *ifname);

/* Reads until EAGAIN or `max` packets. Returns the count (0 if nothing was ready),
 * or -errno if the very first read failed with something other than EAGAIN. */
int isthmus_tun_read_batch(int fd, uint8_t *slab, uint32_t slot_size, uint32_t headroom,
                           uint32_t max, uint32_t *lengths);

/* Writes packets 0..count-1, packet i at bufs[i] (a tx slab slot or a caller's buffer).
 * A packet the kernel rejects (EINVAL, ...) is skipped and counted in *errors; on EAGAIN
 * the rest is dropped and counted in *errors too. Returns how many were written. */
int isthmus_tun_write_batch(int fd, const uint8_t *const *bufs, const uint32_t *lengths,
                            uint32_t count, uint32_t *errors);

#endif
