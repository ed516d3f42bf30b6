/* bench_seal.c — sealed blobs (sli_seal / sli_open through libsli.so.1) against bare BoringSSL
 * AES-256-GCM (EVP_AEAD_CTX_seal/open on a ready context, random nonce per call as sli does), for
 * 64 B, 4 KiB and 1 MiB, in one run. Prints MB/s and ns per call, medians of RUNS runs.
 *
 * usage: bench_seal [RUNS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/aead.h>
#include <openssl/rand.h>

#include "sli.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef int (*op_fn)(void *state, uint8_t *out, size_t *out_len, const uint8_t *in, size_t n);

static sli_keyring *kr;
static EVP_AEAD_CTX bare;

static int sli_seal_op(void *s, uint8_t *out, size_t *out_len, const uint8_t *in, size_t n) {
  return sli_seal(kr, out, out_len, in, n, (const uint8_t *)"t.c", 3);
}
static int sli_open_op(void *s, uint8_t *out, size_t *out_len, const uint8_t *in, size_t n) {
  return sli_open(kr, out, out_len, in, n, (const uint8_t *)"t.c", 3);
}
static int bare_seal_op(void *s, uint8_t *out, size_t *out_len, const uint8_t *in, size_t n) {
  RAND_bytes(out, 12);
  return EVP_AEAD_CTX_seal(&bare, out + 12, out_len, *out_len - 12, out, 12, in, n,
                           (const uint8_t *)"t.c", 3) ? 0 : -1;
}
static int bare_open_op(void *s, uint8_t *out, size_t *out_len, const uint8_t *in, size_t n) {
  return EVP_AEAD_CTX_open(&bare, out, out_len, *out_len, in, 12, in + 12, n - 12,
                           (const uint8_t *)"t.c", 3) ? 0 : -1;
}

/* Returns calls per second for `op` on inputs of `n` bytes over ~0.25 s. */
static double rate(op_fn op, const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
  long calls = 0;
  double t0 = now(), t;
  do {
    for (int i = 0; i < 64; i++) {
      size_t ol = cap;
      if (op(NULL, out, &ol, in, n) != 0) {
        fprintf(stderr, "operation failed\n");
        exit(1);
      }
    }
    calls += 64;
    t = now() - t0;
  } while (t < 0.25);
  return calls / t;
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 5;
  if (runs > 32) runs = 32;
  uint8_t key[32];
  RAND_bytes(key, 32);
  if (sli_keyring_generate(&kr) ||
      !EVP_AEAD_CTX_init(&bare, EVP_aead_aes_256_gcm(), key, 32, 16, NULL))
    return 1;
  size_t sizes[] = {64, 4096, 1 << 20};
  printf("| size | sli_seal MB/s | bare AES-256-GCM seal MB/s | ratio | sli_seal ns/call | bare ns/call |"
         " sli_open MB/s | bare open MB/s | ratio |\n|---|---|---|---|---|---|---|---|---|\n");
  for (size_t s = 0; s < 3; s++) {
    size_t n = sizes[s];
    uint8_t *in = malloc(n), *sealed = malloc(n + 64), *bsealed = malloc(n + 64), *out = malloc(n + 64);
    memset(in, 0x5a, n);
    size_t sl = n + 64, bl = n + 64;
    sli_seal(kr, sealed, &sl, in, n, (const uint8_t *)"t.c", 3);
    bare_seal_op(NULL, bsealed, &bl, in, n);
    bl += 12;
    double r[4][32];
    for (int i = 0; i < runs; i++) { /* interleaved */
      r[0][i] = rate(sli_seal_op, in, n, out, n + 64);
      r[1][i] = rate(bare_seal_op, in, n, out, n + 64);
      r[2][i] = rate(sli_open_op, sealed, sl, out, n + 64);
      r[3][i] = rate(bare_open_op, bsealed, bl, out, n + 64);
    }
    double m[4];
    for (int k = 0; k < 4; k++) {
      qsort(r[k], (size_t)runs, sizeof(double), cmp);
      m[k] = r[k][runs / 2];
    }
    const char *label = n == 64 ? "64 B" : n == 4096 ? "4 KiB" : "1 MiB";
    printf("| %s | %.0f | %.0f | %.2fx | %.0f | %.0f | %.0f | %.0f | %.2fx |\n", label,
           m[0] * n / 1e6, m[1] * n / 1e6, m[0] / m[1], 1e9 / m[0], 1e9 / m[1], m[2] * n / 1e6,
           m[3] * n / 1e6, m[2] / m[3]);
    free(in);
    free(sealed);
    free(bsealed);
    free(out);
  }
  printf("\n(medians of %d runs of ~0.25 s each, one core)\n", runs);
  sli_keyring_free(kr);
  return 0;
}
