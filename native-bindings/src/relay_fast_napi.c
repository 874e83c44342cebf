/*
 * N-API glue of the relay fast path (relay_fast.h). The table hangs off a UDP handle
 * (binding.c's isthmus_io_t) and is freed with it; every function here is a no-op on a handle
 * that is closed or has no table. The counters and offsets arrays belong to the JS socket
 * object, which binding.c keeps alive while the handle is open.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <node_api.h>

#include "relay_fast.h"
#include "relay_fast_napi.h"

#define ARGS(n)                                                                 \
  napi_value argv[n];                                                           \
  size_t argc = n;                                                              \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) \
    return rf_throw(env, "relay fast path: missing arguments");

static napi_value rf_throw(napi_env env, const char *msg) {
  napi_throw_error(env, "EINVAL", msg);
  return NULL;
}

static napi_value u32(napi_env env, uint32_t v) {
  napi_value out;
  napi_create_uint32(env, v, &out);
  return out;
}

/* The handle's table, or NULL (closed, not UDP, or never attached). */
static isthmus_relay_fast_t *table_of(napi_env env, napi_value handle) {
  isthmus_io_rf_t io;
  if (isthmus_io_relay_fast(env, handle, &io) != 0) return NULL;
  return *io.slot;
}

static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *n) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, n, data, &ab, &off) != napi_ok || t != want) return -1;
  return 0;
}

/* rfAttach(handle, counters: Float64Array(RF_STAT_COUNT), offsets: Uint32Array(batch), dataType, minPayload) */
static napi_value rf_attach(napi_env env, napi_callback_info info) {
  ARGS(5);
  isthmus_io_rf_t io;
  if (isthmus_io_relay_fast(env, argv[0], &io) != 0) return rf_throw(env, "rfAttach: not an open UDP socket");
  if (*io.slot) return rf_throw(env, "rfAttach: the socket already has a relay fast path");
  void *counters, *offsets;
  size_t nc, no;
  uint32_t data_type, min_payload;
  if (typed(env, argv[1], napi_float64_array, &counters, &nc) != 0 || nc < RF_STAT_COUNT ||
      typed(env, argv[2], napi_uint32_array, &offsets, &no) != 0 || no < io.batch ||
      napi_get_value_uint32(env, argv[3], &data_type) != napi_ok || data_type > 255 ||
      napi_get_value_uint32(env, argv[4], &min_payload) != napi_ok)
    return rf_throw(env, "rfAttach: counters Float64Array(RF_STAT_COUNT), offsets Uint32Array(batch), dataType, minPayload");
  isthmus_relay_fast_t *rf = isthmus_relay_fast_new(io.batch, counters, offsets, (uint8_t)data_type, min_payload);
  if (!rf) return rf_throw(env, "rfAttach: out of memory");
  *io.slot = rf;
  return NULL;
}

/* rfEnable(handle, on) */
static napi_value rf_enable(napi_env env, napi_callback_info info) {
  ARGS(2);
  isthmus_io_rf_t io;
  bool on;
  if (napi_get_value_bool(env, argv[1], &on) != napi_ok) return rf_throw(env, "rfEnable: on must be a boolean");
  if (isthmus_io_relay_fast(env, argv[0], &io) != 0 || !*io.slot) return NULL;
  isthmus_relay_fast_enable(*io.slot, on, io.slot_size, io.headroom);
  return NULL;
}

/* rfSet(handle, vip, addr, port, cls) */
static napi_value rf_set(napi_env env, napi_callback_info info) {
  ARGS(5);
  uint32_t vip, addr, port;
  int32_t cls;
  if (napi_get_value_uint32(env, argv[1], &vip) != napi_ok || napi_get_value_uint32(env, argv[2], &addr) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &port) != napi_ok || port > 65535 ||
      napi_get_value_int32(env, argv[4], &cls) != napi_ok)
    return rf_throw(env, "rfSet: vip, addr, port (0-65535), cls");
  isthmus_relay_fast_t *rf = table_of(env, argv[0]);
  if (rf && isthmus_relay_fast_set(rf, vip, addr, (uint16_t)port, cls) < 0) {
    /* Out of memory: the mirror would no longer be exact, so the C path stops forwarding. */
    isthmus_io_rf_t io;
    isthmus_io_relay_fast(env, argv[0], &io);
    isthmus_relay_fast_enable(rf, 0, io.slot_size, io.headroom);
    return rf_throw(env, "rfSet: out of memory (relay fast path turned off)");
  }
  return NULL;
}

/* rfDelete(handle, vip) -> whether it had an entry */
static napi_value rf_delete(napi_env env, napi_callback_info info) {
  ARGS(2);
  uint32_t vip;
  if (napi_get_value_uint32(env, argv[1], &vip) != napi_ok) return rf_throw(env, "rfDelete: vip");
  isthmus_relay_fast_t *rf = table_of(env, argv[0]);
  napi_value out;
  napi_get_boolean(env, rf && isthmus_relay_fast_delete(rf, vip), &out);
  return out;
}

/* rfClear(handle) */
static napi_value rf_clear(napi_env env, napi_callback_info info) {
  ARGS(1);
  isthmus_relay_fast_t *rf = table_of(env, argv[0]);
  if (rf) isthmus_relay_fast_clear(rf);
  return NULL;
}

/* rfSize(handle) -> entries */
static napi_value rf_size(napi_env env, napi_callback_info info) {
  ARGS(1);
  isthmus_relay_fast_t *rf = table_of(env, argv[0]);
  return u32(env, rf ? isthmus_relay_fast_size(rf) : 0);
}

/* rfPolicy(handle, mode): RF_MODE_*; every verdict unknown again */
static napi_value rf_policy(napi_env env, napi_callback_info info) {
  ARGS(2);
  uint32_t mode;
  if (napi_get_value_uint32(env, argv[1], &mode) != napi_ok || mode > RF_MODE_LOADING)
    return rf_throw(env, "rfPolicy: mode 0 (off), 1 (on) or 2 (loading)");
  isthmus_relay_fast_t *rf = table_of(env, argv[0]);
  if (rf) isthmus_relay_fast_policy(rf, (int)mode);
  return NULL;
}

/* rfVerdict(handle, a, b, verdict): RF_ALLOW / RF_DENY / RF_UNKNOWN for the ordered pair */
static napi_value rf_verdict(napi_env env, napi_callback_info info) {
  ARGS(4);
  uint32_t a, b, v;
  if (napi_get_value_uint32(env, argv[1], &a) != napi_ok || napi_get_value_uint32(env, argv[2], &b) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &v) != napi_ok || v > RF_DENY)
    return rf_throw(env, "rfVerdict: a, b, verdict 0-2");
  isthmus_relay_fast_t *rf = table_of(env, argv[0]);
  if (rf && isthmus_relay_fast_verdict(rf, a, b, (uint8_t)v) < 0) {
    isthmus_io_rf_t io;
    isthmus_io_relay_fast(env, argv[0], &io);
    isthmus_relay_fast_enable(rf, 0, io.slot_size, io.headroom);
    return rf_throw(env, "rfVerdict: out of memory (relay fast path turned off)");
  }
  return NULL;
}

/* rfDrainSeen(handle, out: Uint32Array) -> vips written (call again while it fills `out`) */
static napi_value rf_drain_seen(napi_env env, napi_callback_info info) {
  ARGS(2);
  void *out;
  size_t n;
  if (typed(env, argv[1], napi_uint32_array, &out, &n) != 0) return rf_throw(env, "rfDrainSeen: out must be a Uint32Array");
  isthmus_relay_fast_t *rf = table_of(env, argv[0]);
  return u32(env, rf && n > 0 ? isthmus_relay_fast_drain_seen(rf, out, (uint32_t)(n > 0xffffffffu ? 0xffffffffu : n)) : 0);
}

static void fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

void isthmus_relay_fast_register(napi_env env, napi_value exports) {
  napi_value c;
  napi_create_uint32(env, RF_STAT_COUNT, &c);
  napi_set_named_property(env, exports, "RF_STAT_COUNT", c);
  fn(env, exports, "rfAttach", rf_attach);
  fn(env, exports, "rfEnable", rf_enable);
  fn(env, exports, "rfSet", rf_set);
  fn(env, exports, "rfDelete", rf_delete);
  fn(env, exports, "rfClear", rf_clear);
  fn(env, exports, "rfSize", rf_size);
  fn(env, exports, "rfPolicy", rf_policy);
  fn(env, exports, "rfVerdict", rf_verdict);
  fn(env, exports, "rfDrainSeen", rf_drain_seen);
}
