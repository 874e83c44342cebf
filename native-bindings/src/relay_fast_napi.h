/* Between binding.c (owner of the UDP handle) and relay_fast_napi.c (the fast path's N-API). */
#ifndef ISTHMUS_RELAY_FAST_NAPI_H
#define ISTHMUS_RELAY_FAST_NAPI_H

#include <node_api.h>
#include <stdint.h>

#include "relay_fast.h"

typedef struct {
  isthmus_relay_fast_t **slot; /* the handle's table pointer (NULL: none attached) */
  uint32_t batch, slot_size, headroom;
} isthmus_io_rf_t;

/* binding.c: the fast path slot of an open, polling UDP handle; -1 for anything else. */
int isthmus_io_relay_fast(napi_env env, napi_value handle, isthmus_io_rf_t *out);

/* relay_fast_napi.c: adds rfAttach, rfSet, ... and RF_STAT_COUNT to the exports. */
void isthmus_relay_fast_register(napi_env env, napi_value exports);

#endif
