/* test_reload.c — sli_ctx_reload's promises, black-box through libsli.so.1: new connections get the
 * new identity while a connection made before keeps its own; a server given its own certificate and
 * key refuses a reload that has none (SLI_E_NO_IDENTITY) and keeps serving its certificate — it never
 * falls back to the self-signed default identity, and writes nothing into the state directory. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

static char state_dir[] = "/tmp/sli-reload-XXXXXX";
static sli_ctx *client; /* trusts A and B */

/* an identity: a key and a self-signed certificate for localhost */
typedef struct {
  char *cert, *key;
  size_t cert_len, key_len;
} identity;

static int make_identity(identity *id, const char *subject) {
  sli_key *k = NULL;
  const char *sans[] = {"DNS:localhost"};
  CHECK_EQ(sli_key_generate(&k, SLI_KEY_EC, 256, 0), 0);
  CHECK_EQ(sli_cert_selfsign_alloc(k, subject, sans, 1, 2, 0, &id->cert, &id->cert_len), 0);
  CHECK_EQ(sli_key_private_pem_alloc(k, NULL, &id->key, &id->key_len), 0);
  sli_key_free(k);
  return 0;
}

static sli_config *server_config(const identity *id) {
  sli_config *cfg = sli_config_new();
  if (cfg && id &&
      sli_config_set_keypair_mem(cfg, id->cert, id->cert_len, id->key, id->key_len, NULL)) {
    fprintf(stderr, "  %s\n", sli_config_error(cfg));
    sli_config_free(cfg);
    return NULL;
  }
  return cfg;
}

typedef struct {
  sli_conn *conn;
  int rc;
} side;

static identity A, B;

static void *serve(void *arg) {
  side *s = arg;
  s->rc = sli_conn_handshake(s->conn);
  if (!s->rc) sli_conn_close(s->conn);
  return NULL;
}

/* A server connection on one end of a socketpair, made now; its handshake may run later. */
typedef struct {
  int fds[2];
  side s;
} pending;

static int prepare(pending *p, sli_ctx *server) {
  memset(p, 0, sizeof(*p));
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds) == 0);
  CHECK_EQ(sli_conn_new_fd(&p->s.conn, server, p->fds[0], NULL, 0), 0);
  return 0;
}

/* seen: runs `p`'s handshake against a client trusting A and B; the common name the client sees
 * ("CN = A"), or "failed". */
static const char *seen(pending *p, char *out, size_t cap) {
  snprintf(out, cap, "failed");
  pthread_t th;
  int started = pthread_create(&th, NULL, serve, &p->s) == 0;
  sli_conn *c = NULL;
  int rc = sli_conn_new_fd(&c, client, p->fds[1], "localhost", 0);
  if (!rc) rc = sli_conn_handshake(c);
  const sli_cert *pc = rc ? NULL : sli_conn_peer_cert(c);
  const char *cn = pc ? strstr(sli_cert_subject(pc), "CN = ") : NULL;
  if (cn) snprintf(out, cap, "%s", cn);
  sli_conn_free(c);
  close(p->fds[1]);
  if (started) pthread_join(th, NULL);
  sli_conn_free(p->s.conn);
  close(p->fds[0]);
  return out;
}

/* subject_seen: the common name a new connection on `server` shows. */
static const char *subject_seen(sli_ctx *server, char *out, size_t cap) {
  pending p;
  if (prepare(&p, server)) return "failed";
  return seen(&p, out, cap);
}

static int state_dir_is_empty(void) {
  DIR *d = opendir(state_dir);
  if (!d) return 1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n == 0;
}


static int test_reload_without_identity_refused(void) {
  sli_config *cfg = server_config(&A), *empty = sli_config_new();
  sli_ctx *server = NULL;
  char cn[128];
  CHECK(cfg && empty);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  CHECK(strcmp(subject_seen(server, cn, sizeof(cn)), "CN = A") == 0);
  CHECK_EQ(sli_ctx_reload(server, empty, 0), SLI_E_NO_IDENTITY);
  CHECK(sli_config_error(empty) && strstr(sli_config_error(empty), "keeps the identity"));
  CHECK(strcmp(sli_last_error(), sli_config_error(empty)) == 0);
  /* still A, and no default identity was made */
  CHECK(strcmp(subject_seen(server, cn, sizeof(cn)), "CN = A") == 0);
  CHECK(state_dir_is_empty());
  sli_ctx_free(server);
  sli_config_free(cfg);
  sli_config_free(empty);
  return 0;
}

static int test_reload_to_another_identity(void) {
  sli_config *cfg = server_config(&A), *next = server_config(&B);
  sli_ctx *server = NULL;
  char cn[128];
  CHECK(cfg && next);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  pending before; /* made before the reload, its handshake after: it keeps A */
  if (prepare(&before, server)) return 1;
  CHECK_EQ(sli_ctx_reload(server, next, 0), 0);
  CHECK(strcmp(subject_seen(server, cn, sizeof(cn)), "CN = B") == 0);
  CHECK(strcmp(seen(&before, cn, sizeof(cn)), "CN = A") == 0);
  /* reloading the same context again, and back */
  CHECK_EQ(sli_ctx_reload(server, cfg, 0), 0);
  CHECK(strcmp(subject_seen(server, cn, sizeof(cn)), "CN = A") == 0);
  sli_ctx_free(server);
  sli_config_free(cfg);
  sli_config_free(next);
  return 0;
}

/* A server that never had its own identity serves the default one, reloads included. */
static int test_default_identity_server_reloads(void) {
  sli_config *empty = sli_config_new();
  sli_ctx *server = NULL;
  CHECK(empty);
  CHECK_EQ(sli_ctx_new_server(&server, empty, 0), 0);
  CHECK_EQ(sli_ctx_reload(server, empty, 0), 0);
  CHECK(!state_dir_is_empty());
  sli_ctx_free(server);
  sli_config_free(empty);
  return 0;
}

/* ---- A reload that tightens client certificates resumes no session made before ---- */

#include "tls_pair.h"

/* one connection, the client offering `session` (or NULL); its result and, on success, its
 * exported session in *out (free with sli_free). */
static int mtls_once(sli_ctx *server, sli_ctx *client, const uint8_t *session, size_t slen,
                     int *server_rc, int *resumed, uint8_t **out, size_t *out_len) {
  test_pair p;
  CHECK_EQ(test_pair_new(&p, server, client, "db.example"), 0);
  if (session) CHECK_EQ(sli_conn_session_import(p.client, session, slen), 0);
  test_pair_run(&p);
  for (int i = 0; i < 5; i++) { /* TLS 1.3 tickets come after the handshake: read them */
    char b[8];
    sli_conn_read(p.client, b, sizeof(b));
    sli_conn_read(p.server, b, sizeof(b));
  }
  *server_rc = p.src;
  *resumed = p.src == 0 && sli_conn_is_resumed(p.server);
  if (out) {
    *out = NULL;
    if (p.src == 0) sli_conn_session_export(p.client, out, out_len);
  }
  test_pair_free(&p);
  return 0;
}

static sli_ctx *mtls_server(const test_identity *id, const test_ca *clients, int mode) {
  sli_config *cfg = sli_config_new();
  sli_ctx *ctx = NULL;
  if (cfg && !sli_config_set_keypair_mem(cfg, id->cert_pem, id->cert_len, id->key_pem, id->key_len, NULL) &&
      (!clients || !sli_config_set_ca_mem(cfg, clients->pem, clients->len)) &&
      !sli_config_set_client_cert(cfg, mode))
    sli_ctx_new_server(&ctx, cfg, 0);
  sli_config_free(cfg);
  return ctx;
}

static int tightened(int max_version) {
  test_ca ca, clients1, clients2;
  test_identity srv, alice;
  CHECK_EQ(test_ca_make(&ca), 0);
  CHECK_EQ(test_ca_make(&clients1), 0);
  CHECK_EQ(test_ca_make(&clients2), 0);
  CHECK_EQ(test_identity_make(&srv, &ca, "db.example", SLI_KEY_EC, 256), 0);
  CHECK_EQ(test_identity_make(&alice, &clients1, "alice.client", SLI_KEY_EC, 256), 0);
  sli_config *ccfg = sli_config_new(), *ncfg = sli_config_new();
  CHECK_EQ(sli_config_set_ca_mem(ccfg, ca.pem, ca.len), 0);
  CHECK_EQ(sli_config_set_keypair_mem(ccfg, alice.cert_pem, alice.cert_len, alice.key_pem, alice.key_len, NULL), 0);
  CHECK_EQ(sli_config_set_ca_mem(ncfg, ca.pem, ca.len), 0);
  if (max_version) {
    CHECK_EQ(sli_config_set_max_version(ccfg, max_version), 0);
    CHECK_EQ(sli_config_set_max_version(ncfg, max_version), 0);
  }
  sli_ctx *with_cert = NULL, *certless = NULL;
  CHECK_EQ(sli_ctx_new_client(&with_cert, ccfg, 0), 0);
  CHECK_EQ(sli_ctx_new_client(&certless, ncfg, 0), 0);
  int rc, resumed;
  uint8_t *sess;
  size_t slen;
  /* (a) trusting clients-1, then reloaded to trust only clients-2: alice's session must not resume */
  sli_ctx *server = mtls_server(&srv, &clients1, SLI_CLIENT_CERT_REQUIRED);
  CHECK(server);
  CHECK_EQ(mtls_once(server, with_cert, NULL, 0, &rc, &resumed, &sess, &slen), 0);
  CHECK_EQ(rc, 0);
  CHECK(sess);
  uint8_t *again;
  size_t alen;
  CHECK_EQ(mtls_once(server, with_cert, sess, slen, &rc, &resumed, &again, &alen), 0);
  CHECK_EQ(resumed, 1); /* resumption works while nothing changed */
  sli_free(again, alen);
  sli_config *tight = sli_config_new();
  CHECK_EQ(sli_config_set_keypair_mem(tight, srv.cert_pem, srv.cert_len, srv.key_pem, srv.key_len, NULL), 0);
  CHECK_EQ(sli_config_set_ca_mem(tight, clients2.pem, clients2.len), 0);
  CHECK_EQ(sli_config_set_client_cert(tight, SLI_CLIENT_CERT_REQUIRED), 0);
  CHECK_EQ(sli_ctx_reload(server, tight, 0), 0);
  sli_config_free(tight);
  CHECK_EQ(mtls_once(server, with_cert, sess, slen, &rc, &resumed, NULL, NULL), 0);
  CHECK_EQ(resumed, 0);
  CHECK_EQ(rc, SLI_E_UNTRUSTED); /* a full handshake, under the new rules */
  sli_free(sess, slen);
  sli_ctx_free(server);
  /* (b) no client certificates asked, then required: a certless client's session must not resume */
  server = mtls_server(&srv, &clients1, SLI_CLIENT_CERT_NONE);
  CHECK_EQ(mtls_once(server, certless, NULL, 0, &rc, &resumed, &sess, &slen), 0);
  CHECK_EQ(rc, 0);
  CHECK(sess);
  sli_config *req = sli_config_new();
  CHECK_EQ(sli_config_set_keypair_mem(req, srv.cert_pem, srv.cert_len, srv.key_pem, srv.key_len, NULL), 0);
  CHECK_EQ(sli_config_set_ca_mem(req, clients1.pem, clients1.len), 0);
  CHECK_EQ(sli_config_set_client_cert(req, SLI_CLIENT_CERT_REQUIRED), 0);
  CHECK_EQ(sli_ctx_reload(server, req, 0), 0);
  sli_config_free(req);
  CHECK_EQ(mtls_once(server, certless, sess, slen, &rc, &resumed, NULL, NULL), 0);
  CHECK_EQ(resumed, 0);
  CHECK_EQ(rc, SLI_E_NO_PEER_CERT);
  sli_free(sess, slen);
  sli_ctx_free(server);
  sli_ctx_free(with_cert);
  sli_ctx_free(certless);
  sli_config_free(ccfg);
  sli_config_free(ncfg);
  test_identity_free(&srv);
  test_identity_free(&alice);
  test_ca_free(&ca);
  test_ca_free(&clients1);
  test_ca_free(&clients2);
  return 0;
}

static int test_tightened_client_certs_resume_nothing_tls13(void) { return tightened(0); }
static int test_tightened_client_certs_resume_nothing_tls12(void) { return tightened(SLI_TLS1_2); }

int main(void) {
  if (!mkdtemp(state_dir)) return 1;
  setenv("SLI_STATE_DIR", state_dir, 1);
  if (make_identity(&A, "/CN=A") || make_identity(&B, "/CN=B")) return 1;
  sli_config *ccfg = sli_config_new();
  char both[8192];
  snprintf(both, sizeof(both), "%s%s", A.cert, B.cert);
  if (!ccfg || sli_config_set_ca_mem(ccfg, both, strlen(both)) ||
      sli_ctx_new_client(&client, ccfg, 0))
    return 1;
  run("reload_without_identity_refused", test_reload_without_identity_refused);
  run("reload_to_another_identity", test_reload_to_another_identity);
  run("default_identity_server_reloads", test_default_identity_server_reloads);
  run("tightened_client_certs_resume_nothing_tls13", test_tightened_client_certs_resume_nothing_tls13);
  run("tightened_client_certs_resume_nothing_tls12", test_tightened_client_certs_resume_nothing_tls12);
  sli_ctx_free(client);
  sli_config_free(ccfg);
  sli_free(A.cert, A.cert_len);
  sli_free(A.key, A.key_len);
  sli_free(B.cert, B.cert_len);
  sli_free(B.key, B.key_len);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
  if (system(cmd)) {}
  return finish();
}
