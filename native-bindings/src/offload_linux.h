/*
 * TUN offloads (IFF_VNET_HDR): every packet read from or written to the TUN carries a
 * 10-byte struct virtio_net_hdr in front. Pure C, no node_api.h: binding.c and tun_linux.c
 * call it, and the addon exposes split/coalesce to JS for tests.
 *
 * Read side (TSO): the kernel hands us TCP super-packets (gso_type TCPV4, up to 64 KB);
 * isthmus_offload_split() cuts one into MSS-sized IPv4/TCP segments with their own IP and
 * TCP checksums, so the rest of the data path sees ordinary packets <= MTU. A packet whose
 * checksum the kernel left to us (VIRTIO_NET_HDR_F_NEEDS_CSUM) gets it completed.
 *
 * Write side (GRO): isthmus_offload_coalesce() merges consecutive in-order TCP segments of
 * one flow from one write batch into a super-packet with a TCPV4 vnet header, so the
 * kernel's TCP stack receives large segments. Anything else goes out with a zero header.
 */
#ifndef ISTHMUS_OFFLOAD_LINUX_H
#define ISTHMUS_OFFLOAD_LINUX_H

#include <stddef.h>
#include <stdint.h>

#define ISTHMUS_VNET_HDR_LEN 10
/* The largest packet a TUN hands us with TSO on (IPv4 tot_len is 16 bits). */
#define ISTHMUS_OFFLOAD_MAX_PACKET 65535

/*
 * Segments of the packet `in` (vnet header + packet, `in_len` bytes), from segment number
 * `first` on: segment k goes to `slab + (k - first) * slot_size + headroom` and its length
 * to lengths[k - first]; at most `max_out` segments and none longer than `max_len`.
 * *total is set to the packet's segment count (1 for a packet without GSO).
 * Returns the number written (the caller continues at first + returned while that is below
 * *total), or -1 for a malformed packet (bad vnet header, not IPv4/TCP under TCPV4 GSO,
 * headers out of bounds, a segment longer than max_len, a checksum range out of bounds).
 */
int isthmus_offload_split(const uint8_t *in, size_t in_len, uint32_t first, uint8_t *slab,
                          uint32_t slot_size, uint32_t headroom, uint32_t max_len, uint32_t max_out,
                          uint32_t *lengths, uint32_t *total);

/*
 * Write-side coalescing over packets 0..n-1 (pkts[i], lens[i]: bare IPv4 packets).
 * `used` (n bytes, zeroed by the caller) marks packets already taken. Starting with packet
 * `start` (not used), builds its group: later packets of the same TCP flow that continue
 * its sequence (same headers, same segment size, the last may be shorter or carry PSH,
 * checksums valid) are appended. When at least two packets merge, writes vnet header +
 * super-packet to `out` (capacity ISTHMUS_VNET_HDR_LEN + ISTHMUS_OFFLOAD_MAX_PACKET),
 * marks them used and returns its length; returns 0 when `start` stays alone (the caller
 * writes it with a zero header). *merged gets the number of packets in the group.
 */
size_t isthmus_offload_coalesce(const uint8_t *const *pkts, const uint32_t *lens, uint32_t n,
                                uint8_t *used, uint32_t start, uint8_t *out, uint32_t *merged);

/* RFC 1071 sum of `len` bytes added to `sum` (not folded). */
uint64_t isthmus_csum_add(uint64_t sum, const uint8_t *p, size_t len);
/* Fold to 16 bits and complement. */
uint16_t isthmus_csum_finish(uint64_t sum);

#endif
