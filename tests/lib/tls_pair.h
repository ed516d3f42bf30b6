/* tls_pair.h — what the C tests of the TLS hooks share: a test CA issuing identities in memory, and
 * a client and a server connection over a socketpair (callback transport, non-blocking) driven in
 * turn until both handshakes end. Black-box: only the public API of libsli.so.1. */
#ifndef SLI_TEST_TLS_PAIR_H
#define SLI_TEST_TLS_PAIR_H

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sli.h"

/* An identity issued by the test CA: PEM texts, the key object, the certificate object. */
typedef struct {
  char *cert_pem, *key_pem;
  size_t cert_len, key_len;
  sli_key *key;
  sli_cert *cert;
} test_identity;

typedef struct {
  sli_key *key;
  char *pem;
  size_t len;
} test_ca;

static inline int test_ca_make(test_ca *ca) {
  memset(ca, 0, sizeof(*ca));
  if (sli_key_generate(&ca->key, SLI_KEY_EC, 256, 0)) return -1;
  return sli_cert_selfsign_alloc(ca->key, "/CN=sli hooks test CA", NULL, 0, 2, SLI_CERT_CA, &ca->pem,
                                 &ca->len);
}

/* test_identity_make issues a leaf for `dns` (also a SAN) with a key of `type` (SLI_KEY_EC: `param`
 * 256 or 384; SLI_KEY_RSA: bits; SLI_KEY_ED25519). 0 or a negative code. */
static inline int test_identity_make(test_identity *id, const test_ca *ca, const char *dns, int type,
                              int param) {
  memset(id, 0, sizeof(*id));
  char subject[300], san[300];
  snprintf(subject, sizeof(subject), "/CN=%s", dns);
  snprintf(san, sizeof(san), "DNS:%s", dns);
  const char *sans[] = {san};
  char *csr = NULL;
  size_t csr_len;
  int rc = sli_key_generate(&id->key, type, param, 0);
  if (!rc) rc = sli_csr_create_alloc(id->key, subject, sans, 1, &csr, &csr_len);
  if (!rc) rc = sli_ca_issue_alloc(ca->pem, ca->len, ca->key, csr, csr_len, 2, &id->cert_pem,
                                   &id->cert_len);
  if (!rc) rc = sli_key_private_pem_alloc(id->key, NULL, &id->key_pem, &id->key_len);
  if (!rc) rc = sli_cert_load_mem(&id->cert, id->cert_pem, id->cert_len, NULL, 0);
  if (csr) sli_free(csr, csr_len);
  return rc;
}

static inline void test_identity_free(test_identity *id) {
  if (id->cert_pem) sli_free(id->cert_pem, id->cert_len);
  if (id->key_pem) sli_free(id->key_pem, id->key_len);
  sli_key_free(id->key);
  sli_cert_free(id->cert);
  memset(id, 0, sizeof(*id));
}

static inline void test_ca_free(test_ca *ca) {
  sli_key_free(ca->key);
  if (ca->pem) sli_free(ca->pem, ca->len);
}

/* test_write_file writes `len` bytes to `path`: 0 or -1. */
static inline int test_write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  int ok = fwrite(data, 1, len, f) == len;
  return fclose(f) == 0 && ok ? 0 : -1;
}

/* Callback transport over one end of a socketpair (`arg` points at the fd). */
static inline ssize_t pair_read(sli_conn *c, void *buf, size_t len, void *arg) {
  ssize_t r = recv(*(int *)arg, buf, len, MSG_DONTWAIT);
  return r < 0 ? SLI_WANT_READ : r;
}

static inline ssize_t pair_write(sli_conn *c, const void *buf, size_t len, void *arg) {
  ssize_t w = send(*(int *)arg, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  return w < 0 ? SLI_WANT_WRITE : w;
}

typedef struct {
  int fds[2];
  sli_conn *client, *server;
  int crc, src; /* the last handshake result of each */
} test_pair;

/* test_pair_new makes a client (sending `servername`) and a server connection over a socketpair. */
static inline int test_pair_new(test_pair *p, sli_ctx *server, sli_ctx *client, const char *servername) {
  memset(p, 0, sizeof(*p));
  p->crc = p->src = SLI_WANT_READ;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds)) return -1;
  int rc = sli_conn_new_cbs(&p->server, server, pair_read, pair_write, &p->fds[0], NULL, 0);
  if (!rc) rc = sli_conn_new_cbs(&p->client, client, pair_read, pair_write, &p->fds[1], servername, 0);
  return rc;
}

static inline int test_blocked(int rc) { return rc == SLI_WANT_READ || rc == SLI_WANT_WRITE; }

/* test_pair_step runs each side's handshake once while it waits on the transport; 1 while either
 * still does. */
static inline int test_pair_step(test_pair *p) {
  if (test_blocked(p->crc)) p->crc = sli_conn_handshake(p->client);
  if (test_blocked(p->src)) p->src = sli_conn_handshake(p->server);
  return test_blocked(p->crc) || test_blocked(p->src);
}

/* test_pair_run steps until neither side waits on the transport (at most 200 rounds). */
static inline void test_pair_run(test_pair *p) {
  for (int i = 0; i < 200 && test_pair_step(p); i++) {
  }
}

static inline void test_pair_free(test_pair *p) {
  sli_conn_free(p->client);
  sli_conn_free(p->server);
  if (p->fds[0] > 0) close(p->fds[0]);
  if (p->fds[1] > 0) close(p->fds[1]);
  memset(p, 0, sizeof(*p));
}

/* test_client_ctx: a client trusting the test CA (max version 0: the default). */
static inline sli_ctx *test_client_ctx(const test_ca *ca, int max_version, const char *alpn) {
  sli_config *cfg = sli_config_new();
  sli_ctx *ctx = NULL;
  if (cfg && !sli_config_set_ca_mem(cfg, ca->pem, ca->len) &&
      (!max_version || !sli_config_set_max_version(cfg, max_version)) &&
      (!alpn || !sli_config_set_alpn(cfg, alpn)))
    sli_ctx_new_client(&ctx, cfg, 0);
  sli_config_free(cfg);
  return ctx;
}

#endif
