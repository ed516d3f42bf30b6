/* tls_init.c — the TLS engine's one-time set-up: the ex_data slots that tie a BoringSSL context to
 * its snapshot and a connection to its sli_conn. */
#include <stdlib.h>

#include <openssl/mem.h>

#include "tls/tls.h"

int sli__snapshot_index = -1;
int sli__conn_index = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_status = SLI_E_INTERNAL;

static void snapshot_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl,
                          void *argp) {
  sli__snapshot *s = ptr;
  if (!s) return;
  for (size_t i = 0; i < s->n_ids; i++) sli__identity_clear(&s->ids[i]);
  free(s->alpn_wire);
  free(s->keylog_file);
  OPENSSL_cleanse(s->tkeys, sizeof(s->tkeys));
  free(s);
}

static void do_init(void) {
  if (sli__ensure_init() != 0) return;
  sli__snapshot_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, snapshot_free);
  sli__conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  init_status = (sli__snapshot_index >= 0 && sli__conn_index >= 0) ? 0 : SLI_E_INTERNAL;
}

int sli__tls_init(void) {
  pthread_once(&once, do_init);
  return init_status;
}
