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
 * to out_name (ISTHMUS_IFNAMSIZ bytes). Returns the fd. */
int isthmus_tun_open(const char *name, char *out_name);

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
