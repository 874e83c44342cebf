/*
 * Pure C batched in-place ChaCha20-Poly1305 for WireGuard transport data (no node_api.h).
 * Uses OpenSSL's EVP API as exported by the node binary itself (no separate libssl).
 *
 * Packet i occupies data[offsets[i], offsets[i] + lengths[i]); its key is
 * keys[32 * key_idx[i]] (key 0 when key_idx is NULL); its nonce is
 * 4 zero bytes || counters[i] as little-endian u64 (WireGuard); AAD is empty. `counters` is
 * count native-endian u64s (a BigUint64Array's bytes), read unaligned-safe.
 *   seal: plaintext of lengths[i] bytes -> ciphertext in place + 16-byte tag appended
 *         at offsets[i] + lengths[i] (the caller keeps that tailroom).
 *   open: lengths[i] includes the tag; plaintext (lengths[i] - 16 bytes) in place.
 * ok[i] (optional for seal) gets 1 on success, 0 on a bad tag or out-of-bounds packet.
 * Returns the number of successes, or -1 if OpenSSL failed internally.
 */
#ifndef ISTHMUS_AEAD_H
#define ISTHMUS_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define ISTHMUS_AEAD_KEY_LEN 32
#define ISTHMUS_AEAD_TAG_LEN 16

typedef struct isthmus_aead_s isthmus_aead_t;

isthmus_aead_t *isthmus_aead_new(void);
void isthmus_aead_free(isthmus_aead_t *a);

int isthmus_aead_seal_batch(isthmus_aead_t *a, const uint8_t *keys, uint32_t nkeys,
                            const uint32_t *key_idx, uint8_t *data, size_t data_len,
                            const uint32_t *offsets, const uint32_t *lengths,
                            const uint8_t *counters, uint32_t count, uint8_t *ok);

int isthmus_aead_open_batch(isthmus_aead_t *a, const uint8_t *keys, uint32_t nkeys,
                            const uint32_t *key_idx, uint8_t *data, size_t data_len,
                            const uint32_t *offsets, const uint32_t *lengths,
                            const uint8_t *counters, uint32_t count, uint8_t *ok);

#endif
