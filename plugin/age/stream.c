/* stream.c — the age payload, as age's internal/stream makes it: 64 KiB chunks of ChaCha20-Poly1305
 * under HKDF(file key, nonce, "payload"), chunk nonce = 11-byte big-endian counter | last-chunk flag;
 * runs of whole chunks sealed or opened on the caller's thread, or on two (SLI_AGE_PARALLEL). */
#include <string.h>

#include <openssl/aead.h>
#include <openssl/err.h>
#include <openssl/mem.h>

#include "age/age.h"

void sli__age_chunk_nonce(uint8_t nonce[12], uint64_t counter, int last) {
  memset(nonce, 0, 12);
  for (int i = 0; i < 8; i++) nonce[10 - i] = (uint8_t)(counter >> (8 * i));
  nonce[11] = last ? 1 : 0;
}

int sli__age_stream_key(EVP_AEAD_CTX *aead, const uint8_t file_key[16], const uint8_t nonce[16]) {
  uint8_t key[32];
  int rc = sli__age_hkdf32(key, file_key, 16, nonce, 16, "payload");
  if (!rc && !EVP_AEAD_CTX_init(aead, EVP_aead_chacha20_poly1305(), key, 32, AGE_TAG, NULL))
    rc = SLI_E_INTERNAL;
  OPENSSL_cleanse(key, sizeof(key));
  return rc;
}

/* ---- whole chunks, on one thread or two (SLI_AGE_PARALLEL) ---- */

/* A run of whole, non-last chunks sealed or opened straight between the caller's buffers. The AEAD
 * context is only read, so two threads may use it at once. */
typedef struct chunk_job {
  const EVP_AEAD_CTX *aead;
  int open;
  uint8_t *out;
  const uint8_t *in;
  uint64_t counter;
  size_t n, failed; /* failed: index of the first chunk that did not seal or open, or n */
} chunk_job;

static void chunk_run(void *arg) {
  chunk_job *j = arg;
  const size_t pt = AGE_CHUNK, ct = AGE_CHUNK + AGE_TAG;
  j->failed = j->n;
  for (size_t i = 0; i < j->n; i++) {
    uint8_t nonce[12];
    size_t w = 0;
    sli__age_chunk_nonce(nonce, j->counter + i, 0);
    uint8_t *to = j->out + i * (j->open ? pt : ct);
    const uint8_t *from = j->in + i * (j->open ? ct : pt);
    int ok = j->open ? EVP_AEAD_CTX_open(j->aead, to, &w, pt, nonce, 12, from, ct, NULL, 0) && w == pt
                     : EVP_AEAD_CTX_seal(j->aead, to, &w, ct, nonce, 12, from, pt, NULL, 0) && w == ct;
    if (!ok) {
      j->failed = i;
      return;
    }
  }
}

sli__worker *sli__age_helper(int *parallel, sli__worker **w, size_t k) {
  if (!*parallel || k < 4) return NULL;
  if (!*w && !(*w = sli__worker_new())) *parallel = 0;
  return *w;
}

size_t sli__age_chunks_run(sli__worker *w, const EVP_AEAD_CTX *aead, int open, uint8_t *out,
                           const uint8_t *in, uint64_t counter, size_t k) {
  size_t half = w ? k / 2 : k;
  size_t in_step = open ? AGE_CHUNK + AGE_TAG : AGE_CHUNK;
  size_t out_step = open ? AGE_CHUNK : AGE_CHUNK + AGE_TAG;
  chunk_job a = {aead, open, out, in, counter, half, 0};
  chunk_job b = {aead, open, out + half * out_step, in + half * in_step, counter + half, k - half, 0};
  if (w) sli__worker_start(w, chunk_run, &b);
  chunk_run(&a);
  if (w) sli__worker_wait(w);
  ERR_clear_error();
  return a.failed < half ? a.failed : w && b.failed < k - half ? half + b.failed : k;
}
