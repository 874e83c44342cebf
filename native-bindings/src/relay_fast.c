/*
 * The relay's local forwarding fast path: see relay_fast.h. Pure C.
 *
 * Per received frame (same checks, same order as relay/forward.ts):
 *   1. relay header (8 bytes), type DATA, from a bound (ip, port)        else: JS
 *   2. payload looks like WireGuard: type 1..4, three zero bytes, at least
 *      `min_payload` bytes                                               else: JS ('malformed' / 'too-short')
 *   3. destination vip bound HERE                                        else: JS (mesh / UNREACHABLE)
 *   4. policy: off -> forward; loading, class unknown, verdict unknown   -> JS (it decides and tells us);
 *      deny -> dropped and counted here (RF_STAT_POLICY_DROPS)
 *   5. bytes 4-7 rewritten to the sender's vip, queued; one send batch (GSO runs) per receive batch.
 * The sender's entry is marked seen at 4 (JS reads the marks on its idle-expiry sweep).
 *
 * Sessions are in one entry pool, chained from two bucket arrays (by vip, by tuple) with a
 * seeded hash; entries are only inserted for authenticated members (JS binds them).
 */
#define _GNU_SOURCE
#include "relay_fast.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "udp_linux.h"

#define NIL 0xffffffffu
/* Relay frame layout (protocol/relay-frame.ts): type at 0, vip (big-endian) at 4, payload at 8. */
#define HDR_LEN 8
#define OFF_VIP 4

typedef struct {
  uint32_t vip, addr;
  uint16_t port;
  uint8_t used, seen;
  int32_t cls;
  uint32_t next_vip, next_tuple; /* chains; next_vip is the free list link of an unused entry */
} rf_entry_t;

struct isthmus_relay_fast_s {
  int enabled;
  int mode;
  uint8_t data_type;
  uint32_t min_payload;
  uint32_t batch;
  double *counters;
  uint32_t *offsets;
  /* entries */
  rf_entry_t *entries;
  uint32_t cap, count, free_head;
  uint32_t *by_vip, *by_tuple; /* heads, nbuckets each */
  uint32_t nbuckets;
  uint32_t seed;
  uint32_t scan; /* drain_seen cursor */
  /* policy */
  uint8_t *verdicts;
  uint32_t vcap;
  /* send scratch, `batch` each */
  const uint8_t **bufs;
  uint32_t *lens, *addrs, *ports;
};

static inline uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  return h;
}

static inline uint32_t hash_vip(const isthmus_relay_fast_t *rf, uint32_t vip) {
  return mix32(vip ^ rf->seed) & (rf->nbuckets - 1);
}

static inline uint32_t hash_tuple(const isthmus_relay_fast_t *rf, uint32_t addr, uint16_t port) {
  return mix32(mix32(addr ^ rf->seed) ^ ((uint32_t)port * 0x9e3779b1U)) & (rf->nbuckets - 1);
}

static uint32_t find_vip(const isthmus_relay_fast_t *rf, uint32_t vip) {
  for (uint32_t i = rf->by_vip[hash_vip(rf, vip)]; i != NIL; i = rf->entries[i].next_vip)
    if (rf->entries[i].vip == vip) return i;
  return NIL;
}

static uint32_t find_tuple(const isthmus_relay_fast_t *rf, uint32_t addr, uint16_t port) {
  for (uint32_t i = rf->by_tuple[hash_tuple(rf, addr, port)]; i != NIL; i = rf->entries[i].next_tuple)
    if (rf->entries[i].addr == addr && rf->entries[i].port == port) return i;
  return NIL;
}

static void link_entry(isthmus_relay_fast_t *rf, uint32_t i) {
  rf_entry_t *e = &rf->entries[i];
  uint32_t hv = hash_vip(rf, e->vip), ht = hash_tuple(rf, e->addr, e->port);
  e->next_vip = rf->by_vip[hv];
  rf->by_vip[hv] = i;
  e->next_tuple = rf->by_tuple[ht];
  rf->by_tuple[ht] = i;
}

static void unlink_entry(isthmus_relay_fast_t *rf, uint32_t i) {
  rf_entry_t *e = &rf->entries[i];
  uint32_t *p = &rf->by_vip[hash_vip(rf, e->vip)];
  while (*p != i) p = &rf->entries[*p].next_vip;
  *p = e->next_vip;
  p = &rf->by_tuple[hash_tuple(rf, e->addr, e->port)];
  while (*p != i) p = &rf->entries[*p].next_tuple;
  *p = e->next_tuple;
  e->used = 0;
  e->seen = 0;
  e->next_vip = rf->free_head;
  rf->free_head = i;
  rf->count--;
}

/* Doubles the bucket arrays (and relinks) when entries outnumber buckets. */
static int grow_buckets(isthmus_relay_fast_t *rf, uint32_t nb) {
  uint32_t *bv = malloc((size_t)nb * sizeof(uint32_t)), *bt = malloc((size_t)nb * sizeof(uint32_t));
  if (!bv || !bt) {
    free(bv);
    free(bt);
    return -ENOMEM;
  }
  memset(bv, 0xff, (size_t)nb * sizeof(uint32_t));
  memset(bt, 0xff, (size_t)nb * sizeof(uint32_t));
  free(rf->by_vip);
  free(rf->by_tuple);
  rf->by_vip = bv;
  rf->by_tuple = bt;
  rf->nbuckets = nb;
  for (uint32_t i = 0; i < rf->cap; i++)
    if (rf->entries[i].used) link_entry(rf, i);
  return 0;
}

static uint32_t alloc_entry(isthmus_relay_fast_t *rf) {
  if (rf->free_head == NIL) {
    uint32_t ncap = rf->cap ? rf->cap * 2 : 64;
    rf_entry_t *ne = realloc(rf->entries, (size_t)ncap * sizeof(rf_entry_t));
    if (!ne) return NIL;
    rf->entries = ne;
    for (uint32_t i = ncap; i-- > rf->cap;) {
      ne[i].used = 0;
      ne[i].seen = 0;
      ne[i].next_vip = rf->free_head;
      rf->free_head = i;
    }
    rf->cap = ncap;
  }
  uint32_t i = rf->free_head;
  rf->free_head = rf->entries[i].next_vip;
  return i;
}

isthmus_relay_fast_t *isthmus_relay_fast_new(uint32_t batch, double *counters, uint32_t *offsets,
                                             uint8_t data_type, uint32_t min_payload) {
  isthmus_relay_fast_t *rf = calloc(1, sizeof(*rf));
  if (!rf) return NULL;
  rf->batch = batch;
  rf->counters = counters;
  rf->offsets = offsets;
  rf->data_type = data_type;
  rf->min_payload = min_payload < 4 ? 4 : min_payload; /* the WireGuard type check reads 4 bytes */
  rf->mode = RF_MODE_LOADING;
  rf->free_head = NIL;
  if (getrandom(&rf->seed, sizeof(rf->seed), GRND_NONBLOCK) != sizeof(rf->seed))
    rf->seed = (uint32_t)(uintptr_t)rf * 0x9e3779b1U;
  rf->bufs = calloc(batch, sizeof(*rf->bufs));
  rf->lens = calloc(batch, sizeof(uint32_t));
  rf->addrs = calloc(batch, sizeof(uint32_t));
  rf->ports = calloc(batch, sizeof(uint32_t));
  if (!rf->bufs || !rf->lens || !rf->addrs || !rf->ports || grow_buckets(rf, 64) < 0) {
    isthmus_relay_fast_free(rf);
    return NULL;
  }
  return rf;
}

void isthmus_relay_fast_free(isthmus_relay_fast_t *rf) {
  if (!rf) return;
  free(rf->entries);
  free(rf->by_vip);
  free(rf->by_tuple);
  free(rf->verdicts);
  free(rf->bufs);
  free(rf->lens);
  free(rf->addrs);
  free(rf->ports);
  free(rf);
}

void isthmus_relay_fast_enable(isthmus_relay_fast_t *rf, int on, uint32_t slot_size, uint32_t headroom) {
  rf->enabled = on != 0;
  if (!rf->enabled)
    for (uint32_t i = 0; i < rf->batch; i++) rf->offsets[i] = i * slot_size + headroom;
}

int isthmus_relay_fast_enabled(const isthmus_relay_fast_t *rf) { return rf->enabled; }

int isthmus_relay_fast_set(isthmus_relay_fast_t *rf, uint32_t vip, uint32_t addr, uint16_t port,
                           int32_t cls) {
  uint32_t i = find_vip(rf, vip);
  if (i != NIL && rf->entries[i].addr == addr && rf->entries[i].port == port) {
    rf->entries[i].cls = cls;
    return 0;
  }
  if (i != NIL) unlink_entry(rf, i);
  uint32_t j = find_tuple(rf, addr, port);
  if (j != NIL) unlink_entry(rf, j);
  if (rf->count + 1 > rf->nbuckets && rf->nbuckets < (1u << 30) && grow_buckets(rf, rf->nbuckets * 2) < 0)
    return -ENOMEM;
  uint32_t k = alloc_entry(rf);
  if (k == NIL) return -ENOMEM;
  rf_entry_t *e = &rf->entries[k];
  e->vip = vip;
  e->addr = addr;
  e->port = port;
  e->cls = cls;
  e->used = 1;
  e->seen = 0;
  link_entry(rf, k);
  rf->count++;
  return 0;
}

int isthmus_relay_fast_delete(isthmus_relay_fast_t *rf, uint32_t vip) {
  uint32_t i = find_vip(rf, vip);
  if (i == NIL) return 0;
  unlink_entry(rf, i);
  return 1;
}

void isthmus_relay_fast_clear(isthmus_relay_fast_t *rf) {
  rf->free_head = NIL;
  for (uint32_t i = rf->cap; i-- > 0;) {
    rf->entries[i].used = 0;
    rf->entries[i].seen = 0;
    rf->entries[i].next_vip = rf->free_head;
    rf->free_head = i;
  }
  memset(rf->by_vip, 0xff, (size_t)rf->nbuckets * sizeof(uint32_t));
  memset(rf->by_tuple, 0xff, (size_t)rf->nbuckets * sizeof(uint32_t));
  rf->count = 0;
  rf->scan = 0;
}

uint32_t isthmus_relay_fast_size(const isthmus_relay_fast_t *rf) { return rf->count; }

void isthmus_relay_fast_policy(isthmus_relay_fast_t *rf, int mode) {
  rf->mode = mode;
  if (rf->verdicts) memset(rf->verdicts, RF_UNKNOWN, (size_t)rf->vcap * rf->vcap);
}

int isthmus_relay_fast_verdict(isthmus_relay_fast_t *rf, uint32_t a, uint32_t b, uint8_t v) {
  if (a >= RF_MAX_CLASSES || b >= RF_MAX_CLASSES) return 0; /* left to JS */
  uint32_t need = (a > b ? a : b) + 1;
  if (need > rf->vcap) {
    uint32_t nc = rf->vcap ? rf->vcap : 16;
    while (nc < need) nc *= 2;
    uint8_t *m = calloc((size_t)nc * nc, 1);
    if (!m) return -ENOMEM;
    for (uint32_t r = 0; r < rf->vcap; r++) memcpy(m + (size_t)r * nc, rf->verdicts + (size_t)r * rf->vcap, rf->vcap);
    free(rf->verdicts);
    rf->verdicts = m;
    rf->vcap = nc;
  }
  rf->verdicts[(size_t)a * rf->vcap + b] = v;
  return 0;
}

uint32_t isthmus_relay_fast_drain_seen(isthmus_relay_fast_t *rf, uint32_t *out, uint32_t max) {
  uint32_t n = 0;
  while (rf->scan < rf->cap && n < max) {
    rf_entry_t *e = &rf->entries[rf->scan++];
    if (e->used && e->seen) {
      e->seen = 0;
      out[n++] = e->vip;
    }
  }
  if (rf->scan >= rf->cap) rf->scan = 0;
  return n;
}

static inline uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

#define PASS 0
#define FORWARD 1
#define DROP 2

/* What to do with one frame; on FORWARD *dst is the destination entry. */
static inline int classify(isthmus_relay_fast_t *rf, const uint8_t *p, uint32_t len, uint32_t addr,
                           uint32_t port, rf_entry_t **src_out, rf_entry_t **dst_out) {
  if (len < HDR_LEN + rf->min_payload || p[0] != rf->data_type) return PASS;
  const uint8_t *w = p + HDR_LEN;
  if (w[0] < 1 || w[0] > 4 || w[1] != 0 || w[2] != 0 || w[3] != 0) return PASS;
  uint32_t si = find_tuple(rf, addr, (uint16_t)port);
  if (si == NIL) return PASS;
  uint32_t di = find_vip(rf, rd32(p + OFF_VIP));
  if (di == NIL) return PASS;
  rf_entry_t *src = &rf->entries[si], *dst = &rf->entries[di];
  if (rf->mode == RF_MODE_ON) {
    int32_t a = src->cls, b = dst->cls;
    if (a < 0 || b < 0 || (uint32_t)a >= rf->vcap || (uint32_t)b >= rf->vcap) return PASS;
    uint8_t v = rf->verdicts[(size_t)a * rf->vcap + (uint32_t)b];
    if (v == RF_UNKNOWN) return PASS;
    *src_out = src;
    if (v != RF_ALLOW) return DROP;
  } else if (rf->mode != RF_MODE_OFF) {
    return PASS;
  }
  *src_out = src;
  *dst_out = dst;
  return FORWARD;
}

uint32_t isthmus_relay_fast_forward(isthmus_relay_fast_t *rf, int fd, int *gso, uint8_t *slab,
                                    uint32_t slot_size, uint32_t headroom, uint32_t n,
                                    uint32_t *lengths, uint32_t *addrs, uint32_t *ports,
                                    uint32_t *sent, uint32_t *errors) {
  uint32_t keep = 0, q = 0;
  double fwd_bytes = 0;
  uint32_t drops = 0;
  if (n > rf->batch) n = rf->batch; /* cannot happen: the socket's batch sized both */
  for (uint32_t i = 0; i < n; i++) {
    uint32_t off = i * slot_size + headroom, len = lengths[i];
    uint8_t *p = slab + off;
    rf_entry_t *src = NULL, *dst = NULL;
    int what = classify(rf, p, len, addrs[i], ports[i], &src, &dst);
    if (what == FORWARD) {
      wr32(p + OFF_VIP, src->vip);
      src->seen = 1;
      rf->bufs[q] = p;
      rf->lens[q] = len;
      rf->addrs[q] = dst->addr;
      rf->ports[q] = dst->port;
      q++;
      fwd_bytes += len;
    } else if (what == DROP) {
      src->seen = 1;
      drops++;
    } else {
      lengths[keep] = len;
      addrs[keep] = addrs[i];
      ports[keep] = ports[i];
      rf->offsets[keep] = off;
      keep++;
    }
  }
  *sent = 0;
  if (q > 0) *sent = (uint32_t)isthmus_udp_send_batch(fd, rf->bufs, rf->lens, rf->addrs, rf->ports, q, errors, gso);
  rf->counters[RF_STAT_FORWARDED] += q;
  rf->counters[RF_STAT_BYTES] += fwd_bytes;
  rf->counters[RF_STAT_POLICY_DROPS] += drops;
  rf->counters[RF_STAT_PASSED] += keep;
  if (keep == 0) rf->counters[RF_STAT_JS_SKIPPED]++;
  return keep;
}
