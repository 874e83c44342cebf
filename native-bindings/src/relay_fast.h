/*
 * The relay's local forwarding fast path (relay/fast-path.ts is its JS side). Pure C: the
 * N-API glue is relay_fast_napi.c, the hook in binding.c's poll callback calls
 * isthmus_relay_fast_forward on every received batch before JS sees it.
 *
 * The table is a MIRROR of the relay's SessionTable and PolicyGate, kept exact by JS:
 *   member (ip, port) -> entry {vip, class}        (the sender's session)
 *   vip               -> entry {ip, port, class}   (the destination's session)
 *   (class, class)    -> verdict (unknown / allow / deny), and the policy mode.
 * A frame is forwarded here only when every fact it needs is in the mirror; anything else
 * (control frames, unbound sources, remote or unknown destinations, an unknown verdict, a
 * policy still loading) is left for JS, unchanged and in order.
 */
#ifndef ISTHMUS_RELAY_FAST_H
#define ISTHMUS_RELAY_FAST_H

#include <stdint.h>

/* Counter slots in the JS Float64Array handed to the table. */
#define RF_STAT_FORWARDED 0    /* DATA frames forwarded in C */
#define RF_STAT_BYTES 1        /* their bytes (relay header included, as JS counts) */
#define RF_STAT_POLICY_DROPS 2 /* DATA frames refused in C: the policy does not connect the pair */
#define RF_STAT_PASSED 3       /* frames handed to JS */
#define RF_STAT_JS_SKIPPED 4   /* batches forwarded entirely in C (JS not called) */
#define RF_STAT_COUNT 8

/* Policy mode, as relay/policy-gate.ts's POLICY_OFF / POLICY_ON / POLICY_LOADING. */
#define RF_MODE_OFF 0
#define RF_MODE_ON 1
#define RF_MODE_LOADING 2

/* Verdict cells, as policy-gate.ts's matrix. */
#define RF_UNKNOWN 0
#define RF_ALLOW 1
#define RF_DENY 2

/* Classes past this are left to JS (the matrix is RF_MAX_CLASSES^2 bytes at most). */
#define RF_MAX_CLASSES 1024

typedef struct isthmus_relay_fast_s isthmus_relay_fast_t;

/* A table for a socket whose batches hold at most `batch` datagrams; `counters` has
 * RF_STAT_COUNT doubles and `offsets` `batch` u32 (the JS batch's offsets, rewritten for the
 * frames passed on). `data_type`: the DATA frame type; `min_payload`: the smallest WireGuard
 * message. NULL when out of memory. */
isthmus_relay_fast_t *isthmus_relay_fast_new(uint32_t batch, double *counters, uint32_t *offsets,
                                             uint8_t data_type, uint32_t min_payload);
void isthmus_relay_fast_free(isthmus_relay_fast_t *rf);

/* Off: every frame goes to JS, and the JS offsets are the plain slot layout again. */
void isthmus_relay_fast_enable(isthmus_relay_fast_t *rf, int on, uint32_t slot_size, uint32_t headroom);
int isthmus_relay_fast_enabled(const isthmus_relay_fast_t *rf);

/* Mirror of SessionTable.bind: the vip's old tuple and the tuple's old vip are replaced.
 * Same vip and tuple again: only the class changes (the seen mark stays). -ENOMEM on failure. */
int isthmus_relay_fast_set(isthmus_relay_fast_t *rf, uint32_t vip, uint32_t addr, uint16_t port,
                           int32_t cls);
/* Mirror of SessionTable.remove; 1 if the vip had an entry. */
int isthmus_relay_fast_delete(isthmus_relay_fast_t *rf, uint32_t vip);
void isthmus_relay_fast_clear(isthmus_relay_fast_t *rf);
uint32_t isthmus_relay_fast_size(const isthmus_relay_fast_t *rf);

/* A new policy (or mode): every verdict is unknown again. */
void isthmus_relay_fast_policy(isthmus_relay_fast_t *rf, int mode);
/* One verdict cell, as JS decided it; classes past RF_MAX_CLASSES are ignored. */
int isthmus_relay_fast_verdict(isthmus_relay_fast_t *rf, uint32_t a, uint32_t b, uint8_t v);

/* The vips that sent a frame handled here since the last call (at most `max`), marks cleared. */
uint32_t isthmus_relay_fast_drain_seen(isthmus_relay_fast_t *rf, uint32_t *out, uint32_t max);

/* The poll hook: frames 0..n-1 of a received batch (slot i at slab + i * slot_size + headroom).
 * Forwards what it can with one send batch on `fd` (*gso as udp_linux.c's), counts it, and
 * compacts lengths/addrs/ports (and the JS offsets) to the frames left for JS, in order.
 * Returns how many are left; *sent and *errors as isthmus_udp_send_batch's. */
uint32_t isthmus_relay_fast_forward(isthmus_relay_fast_t *rf, int fd, int *gso, uint8_t *slab,
                                    uint32_t slot_size, uint32_t headroom, uint32_t n,
                                    uint32_t *lengths, uint32_t *addrs, uint32_t *ports,
                                    uint32_t *sent, uint32_t *errors);

#endif
