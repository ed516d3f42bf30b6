/* library.c — initialisation, version, memory helpers. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/mem.h>

#include "internal.h"

int sli__snapshot_index = -1;
int sli__conn_index = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_status = SLI_E_INTERNAL;

static void snapshot_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl,
                          void *argp) {
  sli_snapshot *s = ptr;
  if (!s) return;
  for (size_t i = 0; i < s->n_ids; i++) sli__identity_clear(&s->ids[i]);
  free(s->alpn_wire);
  OPENSSL_cleanse(s->tkeys, sizeof(s->tkeys));
  free(s);
}

static void do_init(void) {
  CRYPTO_library_init();
  sli__snapshot_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, snapshot_free);
  sli__conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  init_status = (sli__snapshot_index >= 0 && sli__conn_index >= 0) ? 0 : SLI_E_INTERNAL;
}

int sli__ensure_init(void) {
  pthread_once(&once, do_init);
  return init_status;
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
