/*
 * N-API glue (with relay_fast_napi.c, the relay fast path's): the OS work is in tun_linux.c and
 * udp_linux.c; this file owns the uv_poll_t, the JS callbacks and the teardown.
 *
 * Memory: every buffer is JS-owned. The handle (isthmus_io_t) is a Buffer of
 * `sizeof_isthmus_io_t` bytes that JS allocates; the slabs, length/addr/port arrays and
 * the Float64Array of counters are handed to C once in ioInit. While the handle is open,
 * C holds a strong reference to the JS façade object (ctx), which keeps all of them alive;
 * it is dropped in the uv_close callback.
 *
 * Read path: uv_poll readable -> drain into the rx slab -> ONE napi_make_callback(count).
 * Teardown: an async env cleanup hook sets `exiting`, closes every fd and waits for the
 * uv_close callbacks; callbacks check `exiting` before touching JS.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "aead.h"
#include "busy_poll.h"
#include "offload_linux.h"
#include "relay_fast_napi.h"
#include "tun_linux.h"
#include "udp_linux.h"

#define KIND_TUN 1
#define KIND_UDP 2

/* Counter slots in the JS Float64Array (doubles: exact to 2^53, no BigInt on read). */
#define STAT_RX_PACKETS 0
#define STAT_RX_BATCHES 1
#define STAT_TX_PACKETS 2
#define STAT_TX_DROPS 3
#define STAT_RX_TRUNCATED 4
#define STAT_RX_ERRORS 5
#define STAT_OFFLOAD_MALFORMED 6 /* TUN offloads: vnet header or GSO packet dropped */
#define STAT_RX_SUPER 7          /* TUN offloads: GSO super-packets read and split */
#define STAT_TX_SUPER 8          /* TUN offloads: coalesced super-packets written */
#define STAT_COUNT 10

typedef struct isthmus_env_s isthmus_env_t;

typedef struct isthmus_io_s {
  uv_poll_t poll;
  isthmus_env_t *envd;
  struct isthmus_io_s *prev, *next; /* open handles, for the cleanup hook */
  int fd;
  int kind;
  int poll_inited;
  int polling;
  int closing;
  int udp_gso; /* 1: try UDP GSO on send; 0: off (refused once, or disabled) */
  isthmus_gro_t *gro; /* UDP GRO on: receive through the splitting path */
  isthmus_tun_offload_t *tso; /* TUN opened with IFF_VNET_HDR + TSO: split reads, coalesce writes */
  isthmus_relay_fast_t *rf; /* UDP: the relay's forwarding fast path (relay_fast.c), if attached */
  uint32_t mtu; /* TUN: segments of a split are at most this long (0: the slot's room) */
  uint32_t batch, slot_size, headroom;
  uint8_t *rx_slab;
  uint32_t *rx_lengths, *rx_addrs, *rx_ports;
  uint8_t *tx_slab;
  uint32_t *tx_lengths, *tx_addrs, *tx_ports;
  double *stats;
  napi_ref ctx_ref;
  napi_ref onread_ref;
  napi_async_context async_ctx;
  char ifname[ISTHMUS_IFNAMSIZ];
} isthmus_io_t;

struct isthmus_env_s {
  napi_env env;
  int exiting;
  int pending_closes;
  isthmus_io_t *head;
  napi_async_cleanup_hook_handle hook;
  int hook_done;
  isthmus_aead_t *aead; /* lazily created; per env, so per thread */
  uint64_t busy_poll_ns; /* busy_poll.c budget after a callback with traffic (0: off) */
  int busy_polling;      /* a round is running (no nesting) */
  isthmus_bp_stats_t bp;
};

#define CHECK_NAPI(call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, "EINVAL", "native binding: bad arguments");    \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

/* Throws Error{code: uv_err_name, errno, syscall} with a human message. */
static napi_value throw_errno(napi_env env, int neg, const char *syscall, const char *msg) {
  char buf[256];
  if (msg == NULL) {
    snprintf(buf, sizeof(buf), "%s: %s", syscall, uv_strerror(neg));
    msg = buf;
  }
  napi_value code, message, err, sc, no;
  napi_create_string_utf8(env, uv_err_name(neg), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &err);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, err, "syscall", sc);
  napi_create_int32(env, neg, &no);
  napi_set_named_property(env, err, "errno", no);
  napi_throw(env, err);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return -1;
  return 0;
}

/* Pointer to the bytes of a Buffer/TypedArray (adjusted for byteOffset), or NULL for null. */
static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_null || t == napi_undefined) {
    *data = NULL;
    if (len) *len = 0;
    return 0;
  }
  napi_typedarray_type tt;
  size_t n;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &tt, &n, data, &ab, &off) != napi_ok) return -1;
  if (len) *len = n;
  return 0;
}

static size_t elem_size(napi_typedarray_type t) {
  switch (t) {
    case napi_int16_array: case napi_uint16_array: return 2;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: return 4;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: return 8;
    default: return 1;
  }
}

/* Like get_bytes, but the length is in bytes whatever the element type. */
static int get_byte_len(napi_env env, napi_value v, void **data, size_t *bytes) {
  napi_valuetype vt;
  napi_typeof(env, v, &vt);
  if (vt == napi_null || vt == napi_undefined) {
    *data = NULL;
    *bytes = 0;
    return 0;
  }
  napi_typedarray_type tt;
  size_t n, off;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &tt, &n, data, &ab, &off) != napi_ok) return -1;
  *bytes = n * elem_size(tt);
  return 0;
}

static isthmus_io_t *get_handle(napi_env env, napi_value v) {
  void *p;
  size_t n;
  if (get_bytes(env, v, &p, &n) != 0 || p == NULL || n < sizeof(isthmus_io_t)) return NULL;
  if (((uintptr_t)p & 7) != 0) return NULL;
  return (isthmus_io_t *)p;
}

static void list_remove(isthmus_io_t *h) {
  if (h->prev) h->prev->next = h->next;
  else if (h->envd->head == h) h->envd->head = h->next;
  if (h->next) h->next->prev = h->prev;
  h->prev = h->next = NULL;
}

static void maybe_finish_cleanup(isthmus_env_t *e) {
  if (e->exiting && !e->hook_done && e->head == NULL && e->pending_closes == 0) {
    e->hook_done = 1;
    napi_remove_async_cleanup_hook(e->hook);
  }
}

static void on_close(uv_handle_t *uvh) {
  isthmus_io_t *h = (isthmus_io_t *)uvh->data;
  isthmus_env_t *e = h->envd;
  e->pending_closes--;
  isthmus_udp_gro_free(h->gro);
  h->gro = NULL;
  isthmus_tun_offload_free(h->tso);
  h->tso = NULL;
  isthmus_relay_fast_free(h->rf);
  h->rf = NULL;
  if (!e->exiting) {
    napi_env env = e->env;
    if (h->async_ctx) napi_async_destroy(env, h->async_ctx);
    if (h->onread_ref) napi_delete_reference(env, h->onread_ref);
    /* Last: this may let GC free the handle Buffer (h) itself. */
    napi_ref ctx = h->ctx_ref;
    h->async_ctx = NULL;
    h->onread_ref = NULL;
    h->ctx_ref = NULL;
    if (ctx) napi_delete_reference(env, ctx);
  }
  maybe_finish_cleanup(e);
}

/* Stops polling, closes the fd and starts uv_close. Safe to call twice. */
static void io_close(isthmus_io_t *h) {
  if (h->closing) return;
  h->closing = 1;
  h->polling = 0;
  if (h->poll_inited) {
    uv_poll_stop(&h->poll);
    list_remove(h);
  }
  if (h->fd >= 0) {
    close(h->fd);
    h->fd = -1;
  }
  if (h->poll_inited) {
    h->envd->pending_closes++;
    uv_close((uv_handle_t *)&h->poll, on_close);
  } else {
    isthmus_tun_offload_free(h->tso); /* no uv_close callback will */
    h->tso = NULL;
  }
}

/* Reads what is there (up to a batch, and the rest of a GRO train or TSO super-packet) and
 * runs the handlers (relay fast path, JS); returns the packets read. */
static int io_drain(isthmus_io_t *h) {
  isthmus_env_t *e = h->envd;
  int total = 0;
  do {
    int n;
    if (h->kind == KIND_TUN && h->tso) {
      isthmus_offload_counts_t c = {0, 0, 0};
      uint32_t room = h->slot_size - h->headroom;
      n = isthmus_tun_read_batch_offload(h->fd, h->tso, h->rx_slab, h->slot_size, h->headroom,
                                         h->mtu > 0 && h->mtu < room ? h->mtu : room, h->batch,
                                         h->rx_lengths, &c);
      h->stats[STAT_OFFLOAD_MALFORMED] += c.malformed;
      h->stats[STAT_RX_SUPER] += c.rx_super;
    } else if (h->kind == KIND_TUN) {
      n = isthmus_tun_read_batch(h->fd, h->rx_slab, h->slot_size, h->headroom, h->batch,
                                 h->rx_lengths);
    } else {
      uint32_t trunc = 0;
      n = h->gro ? isthmus_udp_recv_batch_gro(h->fd, h->gro, h->rx_slab, h->slot_size,
                                              h->headroom, h->batch, h->rx_lengths,
                                              h->rx_addrs, h->rx_ports, &trunc)
                 : isthmus_udp_recv_batch(h->fd, h->rx_slab, h->slot_size, h->headroom,
                                          h->batch, h->rx_lengths, h->rx_addrs, h->rx_ports,
                                          &trunc);
      h->stats[STAT_RX_TRUNCATED] += trunc;
    }
    if (n < 0) {
      h->stats[STAT_RX_ERRORS]++;
      /* A TUN whose interface vanished (EBADFD/EIO) would spin the level-triggered poll. */
      if (h->kind == KIND_TUN) {
        uv_poll_stop(&h->poll);
        h->polling = 0;
      }
      return total;
    }
    if (n == 0) return total;
    total += n;
    h->stats[STAT_RX_PACKETS] += n;
    h->stats[STAT_RX_BATCHES] += 1;
    if (h->rf && isthmus_relay_fast_enabled(h->rf)) {
      /* The relay's local DATA is forwarded here; JS gets the rest (or nothing). */
      uint32_t sent = 0, errors = 0;
      n = (int)isthmus_relay_fast_forward(h->rf, h->fd, &h->udp_gso, h->rx_slab, h->slot_size,
                                          h->headroom, (uint32_t)n, h->rx_lengths, h->rx_addrs,
                                          h->rx_ports, &sent, &errors);
      h->stats[STAT_TX_PACKETS] += sent;
      h->stats[STAT_TX_DROPS] += errors;
      if (n == 0) continue;
    }

    napi_env env = e->env;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value ctx, fn, argv[1], result;
    napi_get_reference_value(env, h->ctx_ref, &ctx);
    napi_get_reference_value(env, h->onread_ref, &fn);
    napi_create_uint32(env, (uint32_t)n, &argv[0]);
    if (napi_make_callback(env, h->async_ctx, ctx, fn, 1, argv, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
    napi_close_handle_scope(env, scope);
    /* The rest of a GRO train (or of a TSO super-packet) that did not fit: the fd may not
     * poll readable again. */
  } while (!h->closing && !e->exiting &&
           ((h->gro && isthmus_udp_gro_pending(h->gro)) || isthmus_tun_offload_pending(h->tso)));
  return total;
}

/* Busy-poll hooks: every open, polling handle of this env (TUN and UDP alike). */
static int bp_collect(void *arg, int *fds, void **owners, int max) {
  isthmus_env_t *e = (isthmus_env_t *)arg;
  int n = 0;
  if (e->exiting) return 0;
  for (isthmus_io_t *h = e->head; h != NULL && n < max; h = h->next) {
    if (!h->polling || h->closing || h->fd < 0) continue;
    fds[n] = h->fd;
    owners[n] = h;
    n++;
  }
  return n;
}

static int bp_dispatch(void *arg, void *owner) {
  isthmus_env_t *e = (isthmus_env_t *)arg;
  isthmus_io_t *h = (isthmus_io_t *)owner;
  if (e->exiting) return -1;
  /* Closed by a handler in this round: its memory lives until uv_close's callback, which
   * runs in a later loop turn, so the flag is still readable here. */
  if (h->closing || !h->polling) return 0;
  return io_drain(h);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  isthmus_io_t *h = (isthmus_io_t *)p->data;
  isthmus_env_t *e = h->envd;
  if (e->exiting || h->closing) return;
  if (status < 0 || !(events & UV_READABLE)) {
    h->stats[STAT_RX_ERRORS]++;
    return;
  }
  int n = io_drain(h);
  /* Only right after light traffic: an idle process never spins, and bulk traffic (a drain of
   * ISTHMUS_BP_BULK or more) is left to batching. The cap keeps libuv's other work (timers,
   * control sockets) served under continuous load. */
  if (n > 0 && n < ISTHMUS_BP_BULK && e->busy_poll_ns > 0 && !e->busy_polling && !e->exiting) {
    e->busy_polling = 1;
    uint64_t cap = e->busy_poll_ns * 8;
    if (cap < 200000) cap = 200000;
    isthmus_busy_poll(e->busy_poll_ns, cap, bp_collect, bp_dispatch, e, &e->bp);
    e->busy_polling = 0;
  }
}

static void on_env_cleanup(napi_async_cleanup_hook_handle hook, void *arg) {
  isthmus_env_t *e = (isthmus_env_t *)arg;
  e->exiting = 1;
  while (e->head != NULL) io_close(e->head); /* io_close unlinks */
  maybe_finish_cleanup(e);
}

static void env_finalize(napi_env env, void *data, void *hint) {
  isthmus_env_t *e = (isthmus_env_t *)data;
  isthmus_aead_free(e->aead);
  e->aead = NULL;
  /* A close still in flight would touch e afterwards: leak it rather than risk that. */
  if (e->head == NULL && e->pending_closes == 0) free(e);
}

static isthmus_env_t *get_envd(napi_env env) {
  void *d = NULL;
  napi_get_instance_data(env, &d);
  return (isthmus_env_t *)d;
}

/* tunOpen(handle, name, offload) -> { name, offload }: the actual interface name, and
 * whether TUN offloads are on (asked for, not disabled by ISTHMUS_NO_TUN_OFFLOAD, and
 * accepted by the kernel). Leaves handle.fd set. */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  CHECK_NAPI(get_args(env, info, 3, argv) == 0 ? napi_ok : napi_invalid_arg);
  bool want_offload;
  CHECK_NAPI(napi_get_value_bool(env, argv[2], &want_offload));
  isthmus_io_t *h = get_handle(env, argv[0]);
  if (!h) return throw_errno(env, -EINVAL, "tunOpen", "tunOpen: bad handle buffer");
  char name[ISTHMUS_IFNAMSIZ + 1] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[1], name, sizeof(name), &len) != napi_ok)
    return throw_errno(env, -EINVAL, "tunOpen", "tunOpen: name must be a string");
  if (len >= ISTHMUS_IFNAMSIZ)
    return throw_errno(env, -EINVAL, "tunOpen", "interface name longer than 15 bytes");
  memset(h, 0, sizeof(*h));
  h->fd = -1;
  int offload = want_offload && getenv("ISTHMUS_NO_TUN_OFFLOAD") == NULL;
  isthmus_tun_offload_t *tso = NULL;
  if (offload && !(tso = isthmus_tun_offload_new())) offload = 0;
  int fd = isthmus_tun_open(name, h->ifname, &offload);
  if (fd < 0 || !offload) {
    isthmus_tun_offload_free(tso);
    tso = NULL;
  }
  if (fd == -EPERM || fd == -EACCES)
    return throw_errno(env, fd, "ioctl(TUNSETIFF)",
                       "creating a TUN device needs CAP_NET_ADMIN: run as root");
  if (fd < 0) return throw_errno(env, fd, fd == -ENOENT ? "open(/dev/net/tun)" : "ioctl(TUNSETIFF)", NULL);
  h->fd = fd;
  h->kind = KIND_TUN;
  h->tso = tso;
  napi_value out, nm, off;
  napi_create_object(env, &out);
  napi_create_string_utf8(env, h->ifname, NAPI_AUTO_LENGTH, &nm);
  napi_get_boolean(env, tso != NULL, &off);
  napi_set_named_property(env, out, "name", nm);
  napi_set_named_property(env, out, "offload", off);
  return out;
}

/* tunConfigure(handle, mtu, addr (host-order u32), prefixLen (-1: no address), up) */
static napi_value tun_configure(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  CHECK_NAPI(get_args(env, info, 5, argv) == 0 ? napi_ok : napi_invalid_arg);
  isthmus_io_t *h = get_handle(env, argv[0]);
  if (!h || h->kind != KIND_TUN) return throw_errno(env, -EINVAL, "tunConfigure", "bad handle");
  int32_t mtu, prefix;
  uint32_t addr;
  bool up;
  CHECK_NAPI(napi_get_value_int32(env, argv[1], &mtu));
  CHECK_NAPI(napi_get_value_uint32(env, argv[2], &addr));
  CHECK_NAPI(napi_get_value_int32(env, argv[3], &prefix));
  CHECK_NAPI(napi_get_value_bool(env, argv[4], &up));
  int r;
  if (mtu > 0 && (r = isthmus_tun_set_mtu(h->ifname, mtu)) < 0)
    return throw_errno(env, r, "ioctl(SIOCSIFMTU)", NULL);
  if (mtu > 0) h->mtu = (uint32_t)mtu;
  if (prefix >= 0 && (r = isthmus_tun_set_ipv4(h->ifname, addr, prefix)) < 0)
    return throw_errno(env, r, "ioctl(SIOCSIFADDR)", NULL);
  if (up && (r = isthmus_tun_set_up(h->ifname)) < 0)
    return throw_errno(env, r, "ioctl(SIOCSIFFLAGS)", NULL);
  return NULL;
}

/* udpOpen(handle, host (host-order u32), port, reusePort, bufBytes) -> bound port */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  CHECK_NAPI(get_args(env, info, 5, argv) == 0 ? napi_ok : napi_invalid_arg);
  isthmus_io_t *h = get_handle(env, argv[0]);
  if (!h) return throw_errno(env, -EINVAL, "udpOpen", "udpOpen: bad handle buffer");
  uint32_t host, port;
  bool reuse;
  int32_t bufsz;
  CHECK_NAPI(napi_get_value_uint32(env, argv[1], &host));
  CHECK_NAPI(napi_get_value_uint32(env, argv[2], &port));
  CHECK_NAPI(napi_get_value_bool(env, argv[3], &reuse));
  CHECK_NAPI(napi_get_value_int32(env, argv[4], &bufsz));
  if (port > 65535) return throw_errno(env, -EINVAL, "bind", "port out of range");
  memset(h, 0, sizeof(*h));
  h->fd = -1;
  int fd = isthmus_udp_open(host, (uint16_t)port, reuse, bufsz);
  if (fd < 0) return throw_errno(env, fd, "bind", NULL);
  h->fd = fd;
  h->kind = KIND_UDP;
  h->udp_gso = getenv("ISTHMUS_NO_UDP_GSO") == NULL;
  int p = isthmus_udp_local_port(fd);
  if (p < 0) {
    close(fd);
    h->fd = -1;
    return throw_errno(env, p, "getsockname", NULL);
  }
  napi_value out;
  napi_create_uint32(env, (uint32_t)p, &out);
  return out;
}

/* ioInit(handle, ctx, onread, stats, batch, slotSize, headroom,
 *        rxSlab, rxLengths, rxAddrs|null, rxPorts|null,
 *        txSlab, txLengths, txAddrs|null, txPorts|null) */
static napi_value io_init(napi_env env, napi_callback_info info) {
  napi_value argv[15];
  CHECK_NAPI(get_args(env, info, 15, argv) == 0 ? napi_ok : napi_invalid_arg);
  isthmus_io_t *h = get_handle(env, argv[0]);
  if (!h || h->fd < 0 || h->poll_inited) return throw_errno(env, -EINVAL, "ioInit", "bad handle");
  void *stats;
  size_t stats_len;
  CHECK_NAPI(get_bytes(env, argv[3], &stats, &stats_len) == 0 ? napi_ok : napi_invalid_arg);
  if (stats == NULL || stats_len < STAT_COUNT)
    return throw_errno(env, -EINVAL, "ioInit", "stats must be a Float64Array(STAT_COUNT)");
  h->stats = (double *)stats;
  CHECK_NAPI(napi_get_value_uint32(env, argv[4], &h->batch));
  CHECK_NAPI(napi_get_value_uint32(env, argv[5], &h->slot_size));
  CHECK_NAPI(napi_get_value_uint32(env, argv[6], &h->headroom));
  void *p[8];
  size_t n[8];
  for (int i = 0; i < 8; i++)
    CHECK_NAPI(get_bytes(env, argv[7 + i], &p[i], &n[i]) == 0 ? napi_ok : napi_invalid_arg);
  size_t slab_need = (size_t)h->batch * h->slot_size;
  int udp = h->kind == KIND_UDP;
  if (h->batch == 0 || h->headroom >= h->slot_size || !p[0] || n[0] < slab_need ||
      !p[1] || n[1] < h->batch || !p[4] || n[4] < slab_need || !p[5] || n[5] < h->batch ||
      (udp && (!p[2] || n[2] < h->batch || !p[3] || n[3] < h->batch || !p[6] ||
               n[6] < h->batch || !p[7] || n[7] < h->batch)) ||
      (udp && h->batch > ISTHMUS_UDP_MAX_BATCH))
    return throw_errno(env, -EINVAL, "ioInit", "ioInit: slab or array too small");
  h->rx_slab = p[0];
  h->rx_lengths = p[1];
  h->rx_addrs = p[2];
  h->rx_ports = p[3];
  h->tx_slab = p[4];
  h->tx_lengths = p[5];
  h->tx_addrs = p[6];
  h->tx_ports = p[7];

  isthmus_env_t *e = get_envd(env);
  uv_loop_t *loop;
  CHECK_NAPI(napi_get_uv_event_loop(env, &loop));
  int r = uv_poll_init(loop, &h->poll, h->fd);
  if (r < 0) return throw_errno(env, r, "uv_poll_init", NULL);
  h->poll.data = h;
  h->poll_inited = 1;
  /* UDP GRO: trains from GSO senders arrive as one skb; split into slots in udp_linux.c. */
  if (udp && getenv("ISTHMUS_NO_UDP_GRO") == NULL) h->gro = isthmus_udp_enable_gro(h->fd);
  h->envd = e;
  h->next = e->head;
  if (e->head) e->head->prev = h;
  e->head = h;
  napi_value name;
  napi_create_string_utf8(env, h->kind == KIND_TUN ? "isthmus:tun" : "isthmus:udp",
                          NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[1], 1, &h->ctx_ref);
  napi_create_reference(env, argv[2], 1, &h->onread_ref);
  napi_async_init(env, argv[1], name, &h->async_ctx);
  return NULL;
}

/* ioStart(handle): begin polling for readability (once a receive handler exists). */
static napi_value io_start(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  CHECK_NAPI(get_args(env, info, 1, argv) == 0 ? napi_ok : napi_invalid_arg);
  isthmus_io_t *h = get_handle(env, argv[0]);
  if (!h || !h->poll_inited || h->closing) return throw_errno(env, -EBADF, "ioStart", "handle is closed");
  int r = uv_poll_start(&h->poll, UV_READABLE, on_poll);
  if (r < 0) return throw_errno(env, r, "uv_poll_start", NULL);
  h->polling = 1;
  return NULL;
}

/* ioFlush(handle, count, ext|null, extOffsets|null) -> packets written; drops are counted in
 * stats. Packet i is tx slot i, or, when extOffsets[i] != 0xffffffff, the bytes at
 * ext + extOffsets[i] (sent in place from the caller's buffer, e.g. an rx slab: no copy). */
#define EXT_NONE 0xffffffffu
static napi_value io_flush(napi_env env, napi_callback_info info) {
  static __thread const uint8_t *bufs[4096];
  napi_value argv[4];
  size_t argc = 4;
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_errno(env, -EINVAL, "ioFlush", "ioFlush: handle and count");
  isthmus_io_t *h = get_handle(env, argv[0]);
  uint32_t count;
  CHECK_NAPI(napi_get_value_uint32(env, argv[1], &count));
  if (!h || !h->poll_inited) return throw_errno(env, -EBADF, "ioFlush", "handle is not open");
  void *ext = NULL, *ext_off = NULL;
  size_t ext_len = 0, ext_off_bytes = 0;
  if (argc >= 4) {
    CHECK_NAPI(get_byte_len(env, argv[2], &ext, &ext_len) == 0 ? napi_ok : napi_invalid_arg);
    CHECK_NAPI(get_byte_len(env, argv[3], &ext_off, &ext_off_bytes) == 0 ? napi_ok : napi_invalid_arg);
  }
  uint32_t errors = 0;
  int sent = 0;
  if (count > h->batch) count = h->batch;
  if (count > 4096) count = 4096;
  const uint32_t *eo = ext_off && ext && ext_off_bytes >= 4 * (size_t)count ? ext_off : NULL;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t o = eo ? eo[i] : EXT_NONE;
    if (o == EXT_NONE) {
      bufs[kept] = h->tx_slab + (size_t)i * h->slot_size;
    } else if ((size_t)o + h->tx_lengths[i] <= ext_len) {
      bufs[kept] = (const uint8_t *)ext + o;
    } else {
      errors++; /* out of the caller's buffer: never read past it */
      continue;
    }
    /* Compact the per-packet arrays over any dropped entry (rare). */
    h->tx_lengths[kept] = h->tx_lengths[i];
    if (h->kind == KIND_UDP) {
      h->tx_addrs[kept] = h->tx_addrs[i];
      h->tx_ports[kept] = h->tx_ports[i];
    }
    kept++;
  }
  if (h->closing) {
    errors += kept;
  } else if (h->kind == KIND_TUN && h->tso) {
    isthmus_offload_counts_t c = {0, 0, 0};
    sent = isthmus_tun_write_batch_offload(h->fd, h->tso, bufs, h->tx_lengths, kept, &errors, &c);
    h->stats[STAT_TX_SUPER] += c.tx_super;
  } else if (h->kind == KIND_TUN) {
    sent = isthmus_tun_write_batch(h->fd, bufs, h->tx_lengths, kept, &errors);
  } else {
    sent = isthmus_udp_send_batch(h->fd, bufs, h->tx_lengths, h->tx_addrs, h->tx_ports, kept,
                                  &errors, &h->udp_gso);
  }
  h->stats[STAT_TX_PACKETS] += sent;
  h->stats[STAT_TX_DROPS] += errors;
  napi_value out;
  napi_create_uint32(env, (uint32_t)sent, &out);
  return out;
}

/* ioClose(handle): idempotent; also closes a handle that never reached ioInit. */
static napi_value io_close_js(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  CHECK_NAPI(get_args(env, info, 1, argv) == 0 ? napi_ok : napi_invalid_arg);
  isthmus_io_t *h = get_handle(env, argv[0]);
  if (!h) return throw_errno(env, -EINVAL, "ioClose", "bad handle");
  io_close(h);
  return NULL;
}

/* aeadSealBatch / aeadOpenBatch(keys, keyIdx|null, data, offsets, lengths, counters, count, ok|null)
 * -> successes. All arrays are checked against `count` here; per-packet bounds in aead.c. */
static napi_value aead_batch(napi_env env, napi_callback_info info, int seal) {
  napi_value argv[8];
  CHECK_NAPI(get_args(env, info, 8, argv) == 0 ? napi_ok : napi_invalid_arg);
  void *p[8];
  size_t b[8];
  for (int i = 0; i < 8; i++) {
    if (i == 6) continue;
    CHECK_NAPI(get_byte_len(env, argv[i], &p[i], &b[i]) == 0 ? napi_ok : napi_invalid_arg);
  }
  uint32_t count;
  CHECK_NAPI(napi_get_value_uint32(env, argv[6], &count));
  if (!p[0] || b[0] < ISTHMUS_AEAD_KEY_LEN || b[0] % ISTHMUS_AEAD_KEY_LEN != 0)
    return throw_errno(env, -EINVAL, "aead", "keys must be a non-empty multiple of 32 bytes");
  if ((p[1] && b[1] < 4 * (size_t)count) || !p[2] || !p[3] || b[3] < 4 * (size_t)count ||
      !p[4] || b[4] < 4 * (size_t)count || !p[5] || b[5] < 8 * (size_t)count ||
      (p[7] && b[7] < count) || (!seal && !p[7]))
    return throw_errno(env, -EINVAL, "aead", "aead: an array is shorter than count (open needs ok)");
  isthmus_env_t *e = get_envd(env);
  if (!e->aead && !(e->aead = isthmus_aead_new()))
    return throw_errno(env, -ENOMEM, "EVP_CIPHER_CTX_new", "OpenSSL chacha20-poly1305 unavailable");
  uint32_t nkeys = (uint32_t)(b[0] / ISTHMUS_AEAD_KEY_LEN);
  int r = (seal ? isthmus_aead_seal_batch : isthmus_aead_open_batch)(
      e->aead, p[0], nkeys, p[1], p[2], b[2], p[3], p[4], p[5], count, p[7]);
  if (r < 0) return throw_errno(env, -EIO, "EVP_CipherInit_ex2", "OpenSSL cipher init failed");
  napi_value out;
  napi_create_uint32(env, (uint32_t)r, &out);
  return out;
}

static napi_value aead_seal(napi_env env, napi_callback_info info) { return aead_batch(env, info, 1); }
static napi_value aead_open(napi_env env, napi_callback_info info) { return aead_batch(env, info, 0); }

/* offloadSplit(input: vnet header + packet, maxLen) -> Buffer[] (its segments), or null when
 * the read path would drop it as malformed. For tests: the device calls the same C. */
static napi_value offload_split_js(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  CHECK_NAPI(get_args(env, info, 2, argv) == 0 ? napi_ok : napi_invalid_arg);
  void *in;
  size_t in_len;
  uint32_t max_len;
  CHECK_NAPI(get_byte_len(env, argv[0], &in, &in_len) == 0 ? napi_ok : napi_invalid_arg);
  CHECK_NAPI(napi_get_value_uint32(env, argv[1], &max_len));
  static const uint8_t empty[1];
  if (in == NULL) in = (void *)empty; /* a zero-length input: malformed like any short one */
  if (in_len > ISTHMUS_VNET_HDR_LEN + ISTHMUS_OFFLOAD_MAX_PACKET || max_len == 0 || max_len > 65535)
    return throw_errno(env, -EINVAL, "offloadSplit", "offloadSplit: input over 64 KB or maxLen not 1-65535");
  uint32_t slot = max_len, total = 0, nseg = 0;
  uint32_t *lengths = NULL;
  uint8_t *slab = NULL;
  /* First call learns the count; a GSO packet has at most 64 KB / 1 segments. */
  int k = isthmus_offload_split(in, in_len, 0, NULL, slot, 0, max_len, 0, NULL, &total);
  napi_value out;
  if (k < 0 || total == 0) {
    napi_get_null(env, &out);
    return out;
  }
  slab = malloc((size_t)total * slot);
  lengths = malloc((size_t)total * sizeof(uint32_t));
  if (!slab || !lengths) {
    free(slab);
    free(lengths);
    return throw_errno(env, -ENOMEM, "offloadSplit", "out of memory");
  }
  k = isthmus_offload_split(in, in_len, 0, slab, slot, 0, max_len, total, lengths, &nseg);
  if (k < 0) {
    napi_get_null(env, &out);
  } else {
    napi_create_array_with_length(env, (size_t)k, &out);
    for (int i = 0; i < k; i++) {
      napi_value b;
      void *copy;
      napi_create_buffer_copy(env, lengths[i], slab + (size_t)i * slot, &copy, &b);
      napi_set_element(env, out, (uint32_t)i, b);
    }
  }
  free(slab);
  free(lengths);
  return out;
}

/* offloadCoalesce(packets: Buffer[]) -> Buffer[]: what the write path hands the TUN, each
 * with its vnet header (coalesced groups with a TCPV4 one, the rest a zero one). */
static napi_value offload_coalesce_js(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  CHECK_NAPI(get_args(env, info, 1, argv) == 0 ? napi_ok : napi_invalid_arg);
  uint32_t n;
  CHECK_NAPI(napi_get_array_length(env, argv[0], &n));
  if (n > 4096) return throw_errno(env, -EINVAL, "offloadCoalesce", "offloadCoalesce: at most 4096 packets");
  const uint8_t **pkts = calloc(n + 1, sizeof(*pkts));
  uint32_t *lens = calloc(n + 1, sizeof(*lens));
  uint8_t *used = calloc(n + 1, 1);
  uint8_t *buf = malloc(ISTHMUS_VNET_HDR_LEN + ISTHMUS_OFFLOAD_MAX_PACKET);
  napi_value out = NULL;
  if (!pkts || !lens || !used || !buf) goto done;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    void *p;
    size_t l;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || get_byte_len(env, v, &p, &l) != 0 || !p ||
        l > ISTHMUS_OFFLOAD_MAX_PACKET) {
      throw_errno(env, -EINVAL, "offloadCoalesce", "offloadCoalesce: packets must be Buffers of at most 65535 bytes");
      goto done;
    }
    pkts[i] = p;
    lens[i] = (uint32_t)l;
  }
  napi_create_array(env, &out);
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (used[i]) continue;
    uint32_t merged;
    size_t len = isthmus_offload_coalesce(pkts, lens, n, used, i, buf, &merged);
    napi_value b;
    void *dst;
    if (len > 0) {
      napi_create_buffer_copy(env, len, buf, &dst, &b);
    } else {
      napi_create_buffer(env, ISTHMUS_VNET_HDR_LEN + lens[i], &dst, &b);
      memset(dst, 0, ISTHMUS_VNET_HDR_LEN);
      memcpy((uint8_t *)dst + ISTHMUS_VNET_HDR_LEN, pkts[i], lens[i]);
    }
    napi_set_element(env, out, m++, b);
  }
done:
  free(pkts);
  free(lens);
  free(used);
  free(buf);
  if (!out) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) throw_errno(env, -ENOMEM, "offloadCoalesce", "out of memory");
  }
  return out;
}

/* busyPoll(microseconds): the busy-poll budget of this env's handles (0: off), at most 1 ms. */
static napi_value busy_poll_set(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  CHECK_NAPI(get_args(env, info, 1, argv) == 0 ? napi_ok : napi_invalid_arg);
  uint32_t us;
  CHECK_NAPI(napi_get_value_uint32(env, argv[0], &us));
  if ((uint64_t)us * 1000ull > ISTHMUS_BP_MAX_BUDGET_NS)
    return throw_errno(env, -EINVAL, "busyPoll", "busyPoll: the budget is at most 1000 microseconds");
  get_envd(env)->busy_poll_ns = (uint64_t)us * 1000ull;
  return NULL;
}

/* busyPollStats() -> { budgetUs, rounds, hits, packets, spinNs, capped, bulk } */
static napi_value busy_poll_stats(napi_env env, napi_callback_info info) {
  isthmus_env_t *e = get_envd(env);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_double(env, (double)(e->busy_poll_ns / 1000ull), &v);
  napi_set_named_property(env, out, "budgetUs", v);
  napi_create_double(env, e->bp.rounds, &v);
  napi_set_named_property(env, out, "rounds", v);
  napi_create_double(env, e->bp.hits, &v);
  napi_set_named_property(env, out, "hits", v);
  napi_create_double(env, e->bp.packets, &v);
  napi_set_named_property(env, out, "packets", v);
  napi_create_double(env, e->bp.spin_ns, &v);
  napi_set_named_property(env, out, "spinNs", v);
  napi_create_double(env, e->bp.capped, &v);
  napi_set_named_property(env, out, "capped", v);
  napi_create_double(env, e->bp.bulk, &v);
  napi_set_named_property(env, out, "bulk", v);
  return out;
}

int isthmus_io_relay_fast(napi_env env, napi_value handle, isthmus_io_rf_t *out) {
  isthmus_io_t *h = get_handle(env, handle);
  if (!h || h->kind != KIND_UDP || !h->poll_inited || h->closing) return -1;
  out->slot = &h->rf;
  out->batch = h->batch;
  out->slot_size = h->slot_size;
  out->headroom = h->headroom;
  return 0;
}

static void set_u32(napi_env env, napi_value obj, const char *name, uint32_t v) {
  napi_value x;
  napi_create_uint32(env, v, &x);
  napi_set_named_property(env, obj, name, x);
}

static void set_fn(napi_env env, napi_value obj, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, obj, name, fn);
}

NAPI_MODULE_INIT() {
  isthmus_env_t *e = calloc(1, sizeof(*e));
  if (!e) return NULL;
  e->env = env;
  napi_set_instance_data(env, e, env_finalize, NULL);
  napi_add_async_cleanup_hook(env, on_env_cleanup, e, &e->hook);

  set_u32(env, exports, "sizeof_isthmus_io_t", (uint32_t)sizeof(isthmus_io_t));
  set_u32(env, exports, "STAT_COUNT", STAT_COUNT);
  set_u32(env, exports, "STAT_RX_PACKETS", STAT_RX_PACKETS);
  set_u32(env, exports, "STAT_RX_BATCHES", STAT_RX_BATCHES);
  set_u32(env, exports, "STAT_TX_PACKETS", STAT_TX_PACKETS);
  set_u32(env, exports, "STAT_TX_DROPS", STAT_TX_DROPS);
  set_u32(env, exports, "STAT_RX_TRUNCATED", STAT_RX_TRUNCATED);
  set_u32(env, exports, "STAT_RX_ERRORS", STAT_RX_ERRORS);
  set_u32(env, exports, "STAT_OFFLOAD_MALFORMED", STAT_OFFLOAD_MALFORMED);
  set_u32(env, exports, "STAT_RX_SUPER", STAT_RX_SUPER);
  set_u32(env, exports, "STAT_TX_SUPER", STAT_TX_SUPER);
  set_u32(env, exports, "VNET_HDR_LEN", ISTHMUS_VNET_HDR_LEN);
  set_u32(env, exports, "UDP_MAX_BATCH", ISTHMUS_UDP_MAX_BATCH);
  set_fn(env, exports, "tunOpen", tun_open);
  set_fn(env, exports, "tunConfigure", tun_configure);
  set_fn(env, exports, "udpOpen", udp_open);
  set_fn(env, exports, "ioInit", io_init);
  set_fn(env, exports, "ioStart", io_start);
  set_fn(env, exports, "ioFlush", io_flush);
  set_fn(env, exports, "ioClose", io_close_js);
  set_fn(env, exports, "aeadSealBatch", aead_seal);
  set_fn(env, exports, "aeadOpenBatch", aead_open);
  set_fn(env, exports, "offloadSplit", offload_split_js);
  set_fn(env, exports, "offloadCoalesce", offload_coalesce_js);
  set_fn(env, exports, "busyPoll", busy_poll_set);
  set_fn(env, exports, "busyPollStats", busy_poll_stats);
  isthmus_relay_fast_register(env, exports);
  return exports;
}
