/*
 * ChaCha20-Poly1305 over OpenSSL EVP, batched and in place. One encrypt and one decrypt
 * context per isthmus_aead_t (one per Node environment, so per thread); the cipher is
 * bound once and each packet only re-keys (when the key changes) and sets its nonce.
 */
#include "aead.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

struct isthmus_aead_s {
  EVP_CIPHER_CTX *enc;
  EVP_CIPHER_CTX *dec;
};

isthmus_aead_t *isthmus_aead_new(void) {
  isthmus_aead_t *a = calloc(1, sizeof(*a));
  if (!a) return NULL;
  a->enc = EVP_CIPHER_CTX_new();
  a->dec = EVP_CIPHER_CTX_new();
  if (!a->enc || !a->dec ||
      EVP_CipherInit_ex2(a->enc, EVP_chacha20_poly1305(), NULL, NULL, 1, NULL) != 1 ||
      EVP_CipherInit_ex2(a->dec, EVP_chacha20_poly1305(), NULL, NULL, 0, NULL) != 1) {
    isthmus_aead_free(a);
    return NULL;
  }
  return a;
}

void isthmus_aead_free(isthmus_aead_t *a) {
  if (!a) return;
  EVP_CIPHER_CTX_free(a->enc);
  EVP_CIPHER_CTX_free(a->dec);
  free(a);
}

/* WireGuard: 32 zero bits || 64-bit little-endian counter. */
static void make_nonce(uint8_t nonce[12], uint64_t c) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(c >> (8 * i));
}

static int run_batch(EVP_CIPHER_CTX *ctx, int enc, const uint8_t *keys, uint32_t nkeys,
                     const uint32_t *key_idx, uint8_t *data, size_t data_len,
                     const uint32_t *offsets, const uint32_t *lengths,
                     const uint8_t *counters, uint32_t count, uint8_t *ok) {
  int good = 0;
  uint32_t cur_key = UINT32_MAX; /* re-key on the first packet of every batch */
  for (uint32_t i = 0; i < count; i++) {
    if (ok) ok[i] = 0;
    uint32_t k = key_idx ? key_idx[i] : 0;
    size_t off = offsets[i], len = lengths[i];
    /* seal needs room for the tag after the plaintext; open needs a tag. */
    size_t end = off + len + (enc ? ISTHMUS_AEAD_TAG_LEN : 0);
    if (k >= nkeys || end > data_len || (!enc && len < ISTHMUS_AEAD_TAG_LEN)) continue;
    size_t body = enc ? len : len - ISTHMUS_AEAD_TAG_LEN;
    uint8_t *p = data + off;
    uint8_t nonce[12];
    uint64_t c;
    memcpy(&c, counters + (size_t)i * 8, 8);
    make_nonce(nonce, c);
    const uint8_t *key = k != cur_key ? keys + (size_t)k * ISTHMUS_AEAD_KEY_LEN : NULL;
    if (EVP_CipherInit_ex2(ctx, NULL, key, nonce, enc, NULL) != 1) return -1;
    cur_key = k;
    int outl = 0;
    if (body > 0 && EVP_CipherUpdate(ctx, p, &outl, p, (int)body) != 1) continue;
    if (enc) {
      if (EVP_CipherFinal_ex(ctx, p + body, &outl) != 1) continue;
      if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, ISTHMUS_AEAD_TAG_LEN, p + body) != 1)
        continue;
    } else {
      if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, ISTHMUS_AEAD_TAG_LEN, p + body) != 1)
        continue;
      if (EVP_CipherFinal_ex(ctx, p + body, &outl) != 1) continue; /* bad tag */
    }
    if (ok) ok[i] = 1;
    good++;
  }
  return good;
}

int isthmus_aead_seal_batch(isthmus_aead_t *a, const uint8_t *keys, uint32_t nkeys,
                            const uint32_t *key_idx, uint8_t *data, size_t data_len,
                            const uint32_t *offsets, const uint32_t *lengths,
                            const uint8_t *counters, uint32_t count, uint8_t *ok) {
  return run_batch(a->enc, 1, keys, nkeys, key_idx, data, data_len, offsets, lengths, counters,
                   count, ok);
}

int isthmus_aead_open_batch(isthmus_aead_t *a, const uint8_t *keys, uint32_t nkeys,
                            const uint32_t *key_idx, uint8_t *data, size_t data_len,
                            const uint32_t *offsets, const uint32_t *lengths,
                            const uint8_t *counters, uint32_t count, uint8_t *ok) {
  return run_batch(a->dec, 0, keys, nkeys, key_idx, data, data_len, offsets, lengths, counters,
                   count, ok);
}
