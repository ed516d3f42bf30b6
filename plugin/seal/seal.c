/* seal.c — sealed blobs: AES-256-GCM, header = version 0x01 | key ID (4, big-endian) | nonce (12),
 * then ciphertext and a 16-byte tag; the version and key ID are authenticated with the caller's
 * associated data. 33 bytes of overhead. */
#include <stdlib.h>
#include <string.h>

#include <openssl/aead.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "seal/seal.h"

#define VERSION 0x01
#define HDR 17 /* version + key ID + nonce */

size_t sli_seal_overhead(void) { return SLI_SEAL_OVERHEAD; }

/* The authenticated data: version | key ID | caller's ad. */
static int make_ad(uint8_t **out, const uint8_t *hdr, const uint8_t *ad, size_t ad_len,
                   uint8_t *stack, size_t stack_cap) {
  size_t n = 5 + ad_len;
  uint8_t *p = n <= stack_cap ? stack : malloc(n);
  if (!p) return sli__fail(NULL, SLI_E_NOMEM, "out of memory for %zu bytes of associated data", ad_len);
  memcpy(p, hdr, 5);
  if (ad_len) memcpy(p + 5, ad, ad_len);
  *out = p;
  return 0;
}

int sli_seal(const sli_keyring *kr, uint8_t *out, size_t *out_len, const uint8_t *in,
             size_t in_len, const uint8_t *ad, size_t ad_len) {
  if (!kr || !out_len || (!in && in_len) || (!ad && ad_len) || in_len > SIZE_MAX - SLI_SEAL_OVERHEAD)
    return sli__fail(NULL, SLI_E_INVAL, "sli_seal: kr, out_len, in and ad are needed");
  size_t need = in_len + SLI_SEAL_OVERHEAD;
  if (!out || *out_len < need) {
    *out_len = need;
    return sli__fail(NULL, SLI_E_BUFSIZE, "sli_seal: the sealed blob needs %zu bytes", need);
  }
  const sli__ring_key *k = &kr->keys[0];
  out[0] = VERSION;
  out[1] = (uint8_t)(k->id >> 24);
  out[2] = (uint8_t)(k->id >> 16);
  out[3] = (uint8_t)(k->id >> 8);
  out[4] = (uint8_t)k->id;
  if (!RAND_bytes(out + 5, 12)) return sli__fail(NULL, SLI_E_INTERNAL, "no random bytes for a nonce");
  uint8_t stack[256], *aad = NULL;
  int rc = make_ad(&aad, out, ad, ad_len, stack, sizeof(stack));
  if (rc) return rc;
  size_t written = 0;
  int ok = EVP_AEAD_CTX_seal(&k->aead, out + HDR, &written, *out_len - HDR, out + 5, 12, in,
                             in_len, aad, 5 + ad_len);
  if (aad != stack) free(aad);
  if (!ok) {
    OPENSSL_cleanse(out, need);
    *out_len = 0;
    return sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot seal with key %08x", k->id);
  }
  *out_len = HDR + written;
  return 0;
}

int sli_sealed_key_id(const uint8_t *in, size_t in_len, uint32_t *out_id) {
  if (!in || in_len < SLI_SEAL_OVERHEAD)
    return sli__fail(NULL, SLI_E_HEADER, "not a sealed blob: %zu bytes, fewer than the %d of the overhead",
                     in ? in_len : 0, SLI_SEAL_OVERHEAD);
  if (in[0] != VERSION)
    return sli__fail(NULL, SLI_E_HEADER, "not a sealed blob of a known version (version byte 0x%02x)",
                     in[0]);
  if (out_id) *out_id = (uint32_t)in[1] << 24 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 8 | in[4];
  return 0;
}

int sli_open(const sli_keyring *kr, uint8_t *out, size_t *out_len, const uint8_t *in,
             size_t in_len, const uint8_t *ad, size_t ad_len) {
  if (!kr || !out_len || !in || (!ad && ad_len))
    return sli__fail(NULL, SLI_E_INVAL, "sli_open: kr, out_len, in and ad are needed");
  uint32_t id;
  size_t cap = out ? *out_len : 0;
  int rc = sli_sealed_key_id(in, in_len, &id);
  if (rc) goto fail;
  size_t need = in_len - SLI_SEAL_OVERHEAD;
  if (!out || cap < need) {
    *out_len = need;
    return sli__fail(NULL, SLI_E_BUFSIZE, "sli_open: the plaintext needs %zu bytes", need);
  }
  const sli__ring_key *k = sli__keyring_find(kr, id);
  if (!k) {
    rc = sli__fail(NULL, SLI_E_NO_MATCH, "the blob was sealed with key %08x, which the keyring lacks", id);
    goto fail;
  }
  uint8_t stack[256], *aad = NULL;
  if ((rc = make_ad(&aad, in, ad, ad_len, stack, sizeof(stack)))) goto fail;
  size_t written = 0;
  int ok = EVP_AEAD_CTX_open(&k->aead, out, &written, cap, in + 5, 12, in + HDR, in_len - HDR,
                             aad, 5 + ad_len);
  if (aad != stack) free(aad);
  ERR_clear_error();
  if (!ok) {
    rc = sli__fail(NULL, SLI_E_PAYLOAD,
                   "the blob sealed with key %08x does not open: it was modified, truncated or "
                   "extended, or the associated data differs",
                   id);
    goto fail;
  }
  *out_len = written;
  return 0;
fail:
  if (out && cap) OPENSSL_cleanse(out, cap);
  *out_len = 0;
  return rc;
}

int sli_seal_alloc(const sli_keyring *kr, uint8_t **out, size_t *out_len, const uint8_t *in,
                   size_t in_len, const uint8_t *ad, size_t ad_len) {
  if (!out || !out_len || in_len > SIZE_MAX - SLI_SEAL_OVERHEAD)
    return sli__fail(NULL, SLI_E_INVAL, "sli_seal_alloc: out, out_len and in are needed");
  *out = NULL;
  *out_len = in_len + SLI_SEAL_OVERHEAD;
  uint8_t *p = malloc(*out_len);
  if (!p) return sli__fail(NULL, SLI_E_NOMEM, "out of memory for a sealed blob of %zu bytes", *out_len);
  int rc = sli_seal(kr, p, out_len, in, in_len, ad, ad_len);
  if (rc) {
    free(p);
    *out_len = 0;
    return rc;
  }
  *out = p;
  return 0;
}

int sli_open_alloc(const sli_keyring *kr, uint8_t **out, size_t *out_len, const uint8_t *in,
                   size_t in_len, const uint8_t *ad, size_t ad_len) {
  if (!out || !out_len) return sli__fail(NULL, SLI_E_INVAL, "sli_open_alloc: out and out_len are needed");
  *out = NULL;
  *out_len = 0;
  int rc = sli_sealed_key_id(in, in_len, NULL);
  if (rc) return rc;
  size_t cap = in_len - SLI_SEAL_OVERHEAD;
  uint8_t *p = malloc(cap ? cap : 1);
  if (!p) return sli__fail(NULL, SLI_E_NOMEM, "out of memory for a plaintext of %zu bytes", cap);
  size_t n = cap;
  rc = sli_open(kr, p, &n, in, in_len, ad, ad_len);
  if (rc) {
    free(p);
    return rc;
  }
  *out = p;
  *out_len = n;
  return 0;
}
