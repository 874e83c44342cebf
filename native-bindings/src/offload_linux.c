/*
 * TSO split and GRO-style coalescing for a TUN opened with IFF_VNET_HDR (offload_linux.h).
 *
 * Checksums are summed over the bytes as they lie in memory (native-order words): the
 * one's-complement sum does not depend on byte order, so a sum taken and stored in native
 * order is the right big-endian checksum on the wire (RFC 1071, section 2(B)). Every part
 * summed (pseudo-header, TCP header, payload) starts at an even offset of the whole.
 */
#define _GNU_SOURCE
#include "offload_linux.h"

#include <linux/virtio_net.h>
#include <string.h>

#define IP_HDR_MIN 20
#define TCP_HDR_MIN 20
#define PROTO_TCP 6
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

typedef struct {
  uint8_t flags, gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
} vnet_hdr_t;

static uint16_t ld16(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}
static void st16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

uint64_t isthmus_csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    sum += (v & 0xffffffffu) + (v >> 32);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t v;
    memcpy(&v, p, 4);
    sum += v;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    sum += ld16(p);
    p += 2;
    len -= 2;
  }
  if (len == 1) {
    uint8_t pad[2] = {p[0], 0};
    sum += ld16(pad);
  }
  return sum;
}

static uint16_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

uint16_t isthmus_csum_finish(uint64_t sum) { return (uint16_t)~fold(sum); }

/* Sum of the TCP/UDP pseudo-header of the IPv4 packet `ip` for an L4 length `l4len`. */
static uint64_t pseudo_sum(const uint8_t *ip, uint32_t l4len) {
  uint8_t ph[12];
  memcpy(ph, ip + 12, 8);
  ph[8] = 0;
  ph[9] = ip[9];
  put_be16(ph + 10, (uint16_t)l4len);
  return isthmus_csum_add(0, ph, sizeof(ph));
}

static void ip_fix_csum(uint8_t *ip, uint32_t ihl) {
  st16(ip + 10, 0);
  st16(ip + 10, isthmus_csum_finish(isthmus_csum_add(0, ip, ihl)));
}

static void parse_vnet(const uint8_t *p, vnet_hdr_t *h) {
  h->flags = p[0];
  h->gso_type = p[1];
  h->hdr_len = ld16(p + 2);
  h->gso_size = ld16(p + 4);
  h->csum_start = ld16(p + 6);
  h->csum_offset = ld16(p + 8);
}

/* A packet without GSO: copied, its checksum completed when the kernel left it to us. */
static int split_none(const vnet_hdr_t *h, const uint8_t *pkt, size_t plen, uint8_t *dst,
                      uint32_t max_len, uint32_t *length) {
  if (plen == 0 || plen > max_len) return -1;
  if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    size_t cs = h->csum_start, co = h->csum_offset;
    if (cs + co + 2 > plen) return -1;
    memcpy(dst, pkt, plen);
    /* The field holds the pseudo-header sum: summing over it gives the final checksum. */
    uint16_t c = isthmus_csum_finish(isthmus_csum_add(0, dst + cs, plen - cs));
    st16(dst + cs + co, c == 0 ? 0xffff : c);
  } else {
    memcpy(dst, pkt, plen);
  }
  *length = (uint32_t)plen;
  return 1;
}

int isthmus_offload_split(const uint8_t *in, size_t in_len, uint32_t first, uint8_t *slab,
                          uint32_t slot_size, uint32_t headroom, uint32_t max_len, uint32_t max_out,
                          uint32_t *lengths, uint32_t *total) {
  *total = 0;
  if (in_len < ISTHMUS_VNET_HDR_LEN || headroom >= slot_size) return -1;
  if (max_len > slot_size - headroom) max_len = slot_size - headroom;
  vnet_hdr_t h;
  parse_vnet(in, &h);
  const uint8_t *pkt = in + ISTHMUS_VNET_HDR_LEN;
  size_t plen = in_len - ISTHMUS_VNET_HDR_LEN;
  uint8_t type = h.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

  if (type == VIRTIO_NET_HDR_GSO_NONE) {
    *total = 1;
    if (first >= 1 || max_out == 0) return 0;
    return split_none(&h, pkt, plen, slab + headroom, max_len, lengths);
  }
  if (type != VIRTIO_NET_HDR_GSO_TCPV4) return -1;

  /* IPv4 + TCP headers, all in bounds; no fragment; the checksum range where TCP's is. */
  if (plen < IP_HDR_MIN + TCP_HDR_MIN || pkt[0] >> 4 != 4) return -1;
  uint32_t ihl = (uint32_t)(pkt[0] & 0x0f) * 4;
  if (ihl < IP_HDR_MIN || pkt[9] != PROTO_TCP || (be16(pkt + 6) & 0x3fff) != 0) return -1;
  if ((size_t)ihl + TCP_HDR_MIN > plen) return -1;
  const uint8_t *tcp = pkt + ihl;
  uint32_t thl = (uint32_t)(tcp[12] >> 4) * 4;
  if (thl < TCP_HDR_MIN || (size_t)ihl + thl > plen) return -1;
  if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && (h.csum_start != ihl || h.csum_offset != 16))
    return -1;
  uint32_t gso = h.gso_size;
  uint32_t hlen = ihl + thl;
  uint32_t payload = (uint32_t)(plen - hlen);
  if (gso == 0) return -1;
  uint32_t segs = payload == 0 ? 1 : (payload + gso - 1) / gso;
  uint32_t first_len = hlen + (payload < gso ? payload : gso);
  if (first_len > max_len) return -1;
  *total = segs;

  uint16_t id0 = be16(pkt + 4);
  uint32_t seq0 = be32(tcp + 4);
  uint32_t n = 0;
  for (uint32_t k = first; k < segs && n < max_out; k++, n++) {
    uint32_t off = k * gso;
    uint32_t seglen = payload - off < gso ? payload - off : gso;
    uint8_t *d = slab + (size_t)n * slot_size + headroom;
    memcpy(d, pkt, hlen);
    memcpy(d + hlen, pkt + hlen + off, seglen);
    put_be16(d + 2, (uint16_t)(hlen + seglen));
    put_be16(d + 4, (uint16_t)(id0 + k));
    ip_fix_csum(d, ihl);
    uint8_t *t = d + ihl;
    put_be32(t + 4, seq0 + off);
    if (k + 1 < segs) t[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (k > 0) t[13] &= (uint8_t)~TCP_CWR;
    st16(t + 16, 0);
    uint64_t s = pseudo_sum(d, thl + seglen);
    st16(t + 16, isthmus_csum_finish(isthmus_csum_add(s, t, thl + seglen)));
    lengths[n] = hlen + seglen;
  }
  return (int)n;
}

/* A segment the coalescer may take: IPv4 without options or fragmentation, TCP with data
 * and only ACK (and PSH), tot_len equal to the length. Returns the TCP header length or 0. */
static uint32_t tcp_candidate(const uint8_t *p, uint32_t len) {
  if (len < IP_HDR_MIN + TCP_HDR_MIN || p[0] != 0x45 || p[9] != PROTO_TCP) return 0;
  if (be16(p + 2) != len || (be16(p + 6) & 0x3fff) != 0) return 0;
  uint32_t thl = (uint32_t)(p[IP_HDR_MIN + 12] >> 4) * 4;
  if (thl < TCP_HDR_MIN || IP_HDR_MIN + thl >= len) return 0;
  uint8_t fl = p[IP_HDR_MIN + 13];
  if ((fl & ~(TCP_ACK | TCP_PSH)) != 0 || !(fl & TCP_ACK)) return 0;
  return thl;
}

/* Both checksums verify (the kernel would drop it; a coalesced one it would not check). */
static int csums_ok(const uint8_t *p, uint32_t len) {
  if (isthmus_csum_finish(isthmus_csum_add(0, p, IP_HDR_MIN)) != 0) return 0;
  uint64_t s = pseudo_sum(p, len - IP_HDR_MIN);
  return isthmus_csum_finish(isthmus_csum_add(s, p + IP_HDR_MIN, len - IP_HDR_MIN)) == 0;
}

size_t isthmus_offload_coalesce(const uint8_t *const *pkts, const uint32_t *lens, uint32_t n,
                                uint8_t *used, uint32_t start, uint8_t *out, uint32_t *merged) {
  *merged = 1;
  used[start] = 1;
  const uint8_t *a = pkts[start];
  uint32_t alen = lens[start];
  uint32_t thl = tcp_candidate(a, alen);
  if (thl == 0 || (a[IP_HDR_MIN + 13] & TCP_PSH)) return 0;
  const uint8_t *at = a + IP_HDR_MIN;
  uint32_t hlen = IP_HDR_MIN + thl;
  uint32_t gso = alen - hlen;
  uint32_t next_seq = be32(at + 4) + gso;
  size_t total = alen;
  int checked = 0;
  uint8_t last_flags = at[13];
  uint8_t *sp = out + ISTHMUS_VNET_HDR_LEN;

  for (uint32_t j = start + 1; j < n; j++) {
    if (used[j]) continue;
    const uint8_t *b = pkts[j];
    uint32_t blen = lens[j];
    if (blen < IP_HDR_MIN || b[0] >> 4 != 4) continue;
    /* Another flow: skipped. The same flow: it continues the group, or ends it. */
    if (memcmp(a + 12, b + 12, 8) != 0 || b[9] != PROTO_TCP) continue;
    if (b[0] != 0x45 || blen < IP_HDR_MIN + TCP_HDR_MIN) break;
    if (memcmp(at, b + IP_HDR_MIN, 4) != 0) continue;
    const uint8_t *bt = b + IP_HDR_MIN;
    if (tcp_candidate(b, blen) != thl || a[1] != b[1] || a[8] != b[8] || (a[6] & 0x40) != (b[6] & 0x40) ||
        be32(bt + 4) != next_seq || memcmp(at + 8, bt + 8, 4) != 0 || memcmp(at + 14, bt + 14, 2) != 0 ||
        memcmp(at + TCP_HDR_MIN, bt + TCP_HDR_MIN, thl - TCP_HDR_MIN) != 0)
      break;
    uint32_t bpay = blen - hlen;
    if (bpay > gso || total + bpay > ISTHMUS_OFFLOAD_MAX_PACKET) break;
    if (!checked) {
      if (!csums_ok(a, alen)) return 0;
      checked = 1;
      memcpy(sp, a, alen);
    }
    if (!csums_ok(b, blen)) break;
    memcpy(sp + total, b + hlen, bpay);
    total += bpay;
    next_seq += bpay;
    used[j] = 1;
    (*merged)++;
    last_flags = bt[13];
    if (bpay < gso || (last_flags & TCP_PSH)) break;
  }
  if (*merged < 2) return 0;

  put_be16(sp + 2, (uint16_t)total);
  ip_fix_csum(sp, IP_HDR_MIN);
  uint8_t *t = sp + IP_HDR_MIN;
  t[13] |= (uint8_t)(last_flags & TCP_PSH);
  /* CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, not complemented. */
  st16(t + 16, fold(pseudo_sum(sp, (uint32_t)total - IP_HDR_MIN)));

  out[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  out[1] = VIRTIO_NET_HDR_GSO_TCPV4;
  st16(out + 2, (uint16_t)hlen);
  st16(out + 4, (uint16_t)gso);
  st16(out + 6, IP_HDR_MIN);
  st16(out + 8, 16);
  return ISTHMUS_VNET_HDR_LEN + total;
}
