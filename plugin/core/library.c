/* library.c — initialisation, version, memory helpers. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/mem.h>

#include "core/core.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void do_init(void) { CRYPTO_library_init(); }

int sli__ensure_init(void) {
  pthread_once(&once, do_init);
  return 0;
}

int sli_init(void) { return sli__ensure_init(); }

uint32_t sli_version(void) { return SLI_VERSION_HEX; }

const char *sli_version_string(void) { return SLI_VERSION_STRING_BUILD; }

void sli_free(void *p, size_t len) {
  if (!p) return;
  OPENSSL_cleanse(p, len);
  free(p);
}

void *sli__zalloc(size_t n) { return calloc(1, n ? n : 1); }

char *sli__strdup(const char *s) { return s ? strdup(s) : NULL; }

int64_t sli__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
