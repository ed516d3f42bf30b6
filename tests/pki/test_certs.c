/* test_certs.c — black-box tests of the certificate half of the PKI API (sli_csr_create_alloc,
 * sli_cert_selfsign_alloc, sli_ca_issue_alloc), linked only against libsli.so.1: what each makes is
 * read back through sli_cert_*, and a certificate issued by a local CA is used for a real handshake
 * whose client trusts only that CA. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* pem: a PEM string made by the library, and its length. */
typedef struct {
  char *s;
  size_t n;
} pem;

static void pem_free(pem *p) {
  sli_free(p->s, p->n);
  p->s = NULL;
  p->n = 0;
}

static sli_key *key(int type, int param) {
  sli_key *k = NULL;
  return sli_key_generate(&k, type, param, 0) == 0 ? k : NULL;
}

/* has_san: whether `c` lists `want` among its subject alternative names. */
static int has_san(const sli_cert *c, const char *want) {
  for (size_t i = 0; i < sli_cert_san_count(c); i++)
    if (strcmp(sli_cert_san(c, i), want) == 0) return 1;
  return 0;
}

static int test_selfsign(void) {
  sli_key *k = key(SLI_KEY_EC, 256);
  CHECK(k);
  const char *sans[] = {"DNS:db.example.com", "IP:127.0.0.1"};
  pem p = {0};
  CHECK_EQ(sli_cert_selfsign_alloc(k, "/CN=db.example.com/O=Acme/C=FR", sans, 2, 10, 0, &p.s, &p.n), 0);
  CHECK(strstr(p.s, "-----BEGIN CERTIFICATE-----") == p.s);
  sli_cert *c = NULL;
  char msg[256];
  CHECK_EQ(sli_cert_load_mem(&c, p.s, p.n, msg, sizeof(msg)), 0);
  CHECK(strstr(sli_cert_subject(c), "CN = db.example.com") && strstr(sli_cert_subject(c), "O = Acme"));
  CHECK(strcmp(sli_cert_subject(c), sli_cert_issuer(c)) == 0);
  CHECK_EQ(sli_cert_san_count(c), 2);
  CHECK(has_san(c, "DNS:db.example.com") && has_san(c, "IP:127.0.0.1"));
  int64_t span = sli_cert_not_after(c) - sli_cert_not_before(c);
  CHECK(span >= 10 * 86400 - 3600 && span <= 10 * 86400 + 3600);
  CHECK(llabs(sli_cert_not_before(c) - (int64_t)time(NULL)) < 86400 + 600);
  CHECK(strlen(sli_cert_fingerprint_sha256(c)) == 95); /* 32 bytes "AB:" */
  sli_cert_free(c);
  pem_free(&p);
  /* days 0: a year */
  CHECK_EQ(sli_cert_selfsign_alloc(k, "/CN=x", NULL, 0, 0, 0, &p.s, &p.n), 0);
  CHECK_EQ(sli_cert_load_mem(&c, p.s, p.n, msg, sizeof(msg)), 0);
  span = sli_cert_not_after(c) - sli_cert_not_before(c);
  CHECK(span >= 365 * 86400 - 3600 && span <= 365 * 86400 + 3600);
  sli_cert_free(c);
  pem_free(&p);
  sli_key_free(k);
  return 0;
}

static int test_bad_input(void) {
  sli_key *k = key(SLI_KEY_ED25519, 0);
  CHECK(k);
  pem p = {0};
  const char *bad_san[] = {"FOO:bar"};
  /* each failure says why in sli_last_error, naming the part of the input at fault */
  CHECK_EQ(sli_csr_create_alloc(k, "CN=no-slash", NULL, 0, &p.s, &p.n), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "'CN=no-slash' does not start with '/'"));
  CHECK_EQ(sli_csr_create_alloc(k, "/XX=unknown", NULL, 0, &p.s, &p.n), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "unknown field 'XX'"));
  CHECK_EQ(sli_csr_create_alloc(k, "/CN=ok", bad_san, 1, &p.s, &p.n), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "'FOO:bar'"));
  CHECK_EQ(sli_cert_selfsign_alloc(k, "/CN=ok", bad_san, 1, 1, 0, &p.s, &p.n), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "'FOO:bar'"));
  CHECK_EQ(sli_csr_create_alloc(NULL, "/CN=ok", NULL, 0, &p.s, &p.n), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "sli_csr_create_alloc: no key given"));
  CHECK(p.s == NULL);
  /* a key that cannot sign makes no request */
  sli_key *x = key(SLI_KEY_X25519, 0);
  CHECK(x);
  CHECK(sli_csr_create_alloc(x, "/CN=ok", NULL, 0, &p.s, &p.n) < 0);
  CHECK(strstr(sli_last_error(), "private RSA, ECDSA or Ed25519 key"));
  CHECK(sli_cert_selfsign_alloc(x, "/CN=ok", NULL, 0, 1, 0, &p.s, &p.n) < 0);
  CHECK(strstr(sli_last_error(), "sli_cert_selfsign_alloc"));
  sli_key_free(x);
  sli_key_free(k);
  return 0;
}

/* a CA, a request from another key, and the certificate issued for it */
typedef struct {
  sli_key *ca_key, *leaf_key;
  pem ca, csr, leaf;
} issued;

static void issued_free(issued *t) {
  sli_key_free(t->ca_key);
  sli_key_free(t->leaf_key);
  pem_free(&t->ca);
  pem_free(&t->csr);
  pem_free(&t->leaf);
}

static int issue(issued *t, int leaf_type) {
  memset(t, 0, sizeof(*t));
  t->ca_key = key(SLI_KEY_EC, 384);
  t->leaf_key = key(leaf_type, leaf_type == SLI_KEY_RSA ? 2048 : 0);
  CHECK(t->ca_key && t->leaf_key);
  CHECK_EQ(sli_cert_selfsign_alloc(t->ca_key, "/CN=Test CA/O=sli tests", NULL, 0, 30, SLI_CERT_CA,
                                   &t->ca.s, &t->ca.n), 0);
  const char *sans[] = {"DNS:localhost", "IP:127.0.0.1", "email:ops@example.com"};
  CHECK_EQ(sli_csr_create_alloc(t->leaf_key, "/CN=localhost/OU=db", sans, 3, &t->csr.s, &t->csr.n), 0);
  CHECK(strstr(t->csr.s, "-----BEGIN CERTIFICATE REQUEST-----") == t->csr.s);
  CHECK_EQ(sli_ca_issue_alloc(t->ca.s, t->ca.n, t->ca_key, t->csr.s, t->csr.n, 5, &t->leaf.s,
                              &t->leaf.n), 0);
  return 0;
}

static int test_issue(void) {
  int types[] = {SLI_KEY_ED25519, SLI_KEY_EC, SLI_KEY_RSA};
  for (size_t i = 0; i < 3; i++) {
    issued t;
    if (issue(&t, types[i])) {
      issued_free(&t);
      return 1;
    }
    sli_cert *c = NULL, *ca = NULL;
    char msg[256];
    CHECK_EQ(sli_cert_load_mem(&c, t.leaf.s, t.leaf.n, msg, sizeof(msg)), 0);
    CHECK_EQ(sli_cert_load_mem(&ca, t.ca.s, t.ca.n, msg, sizeof(msg)), 0);
    /* the request's subject and names, the CA's subject as issuer */
    CHECK(strstr(sli_cert_subject(c), "CN = localhost") && strstr(sli_cert_subject(c), "OU = db"));
    CHECK(strcmp(sli_cert_issuer(c), sli_cert_subject(ca)) == 0);
    CHECK_EQ(sli_cert_san_count(c), 3);
    CHECK(has_san(c, "DNS:localhost") && has_san(c, "IP:127.0.0.1") &&
          has_san(c, "email:ops@example.com"));
    int64_t span = sli_cert_not_after(c) - sli_cert_not_before(c);
    CHECK(span >= 5 * 86400 - 3600 && span <= 5 * 86400 + 3600);
    /* a leaf is not a CA: nothing can be issued under it */
    pem p = {0};
    CHECK_EQ(sli_ca_issue_alloc(t.leaf.s, t.leaf.n, t.leaf_key, t.csr.s, t.csr.n, 1, &p.s, &p.n),
             SLI_E_CONFIG);
    /* the CA certificate with another key */
    CHECK_EQ(sli_ca_issue_alloc(t.ca.s, t.ca.n, t.leaf_key, t.csr.s, t.csr.n, 1, &p.s, &p.n),
             SLI_E_KEY_MISMATCH);
    CHECK(p.s == NULL);
    sli_cert_free(c);
    sli_cert_free(ca);
    issued_free(&t);
  }
  return 0;
}

/* A request whose signature no longer matches its content is refused. */
static int test_tampered_request(void) {
  issued t;
  if (issue(&t, SLI_KEY_ED25519)) {
    issued_free(&t);
    return 1;
  }
  /* the request ends with the signature: change a base64 character six before the end of the
   * data — in a whole group of four, so all its bits are data (the last group's may be padding) */
  char *end = strstr(t.csr.s, "\n-----END");
  CHECK(end);
  char *c = end;
  for (int k = 0; k < 6 && c > t.csr.s;) {
    c--;
    if (*c != '\n' && *c != '=') k++;
  }
  *c = *c == 'A' ? 'g' : 'A';
  pem p = {0};
  CHECK_EQ(sli_ca_issue_alloc(t.ca.s, t.ca.n, t.ca_key, t.csr.s, t.csr.n, 1, &p.s, &p.n),
           SLI_E_SIGNATURE);
  CHECK(p.s == NULL);
  issued_free(&t);
  return 0;
}

/* ---- the issued certificate in a handshake: the client trusts only the CA ---- */

typedef struct {
  sli_ctx *ctx;
  int fd;
  int rc;
} side;

static void *serve(void *arg) {
  side *s = arg;
  sli_conn *c = NULL;
  s->rc = sli_conn_new_fd(&c, s->ctx, s->fd, NULL, 0);
  if (!s->rc) s->rc = sli_conn_handshake(c);
  if (!s->rc) s->rc = sli_conn_write(c, "ok", 2) == 2 ? 0 : SLI_E_IO;
  if (!s->rc) sli_conn_close(c);
  sli_conn_free(c);
  return NULL;
}

static int test_issued_in_handshake(void) {
  issued t;
  if (issue(&t, SLI_KEY_EC)) {
    issued_free(&t);
    return 1;
  }
  pem kp = {0};
  CHECK_EQ(sli_key_private_pem_alloc(t.leaf_key, NULL, &kp.s, &kp.n), 0);
  sli_config *sc = sli_config_new(), *cc = sli_config_new();
  CHECK(sc && cc);
  CHECK_EQ(sli_config_set_keypair_mem(sc, t.leaf.s, t.leaf.n, kp.s, kp.n, NULL), 0);
  CHECK_EQ(sli_config_set_ca_mem(cc, t.ca.s, t.ca.n), 0);
  sli_ctx *server = NULL, *client = NULL;
  CHECK_EQ(sli_ctx_new_server(&server, sc, 0), 0);
  CHECK_EQ(sli_ctx_new_client(&client, cc, 0), 0);
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  side s = {server, fds[0], 0};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, serve, &s) == 0);
  sli_conn *c = NULL;
  int rc = sli_conn_new_fd(&c, client, fds[1], "localhost", 0);
  if (!rc) rc = sli_conn_handshake(c);
  char buf[8] = {0};
  ssize_t n = rc ? -1 : sli_conn_read(c, buf, sizeof(buf));
  sli_conn_free(c);
  close(fds[1]);
  pthread_join(th, NULL);
  close(fds[0]);
  CHECK_EQ(rc, 0);
  CHECK_EQ(s.rc, 0);
  CHECK(n == 2 && memcmp(buf, "ok", 2) == 0);
  /* a name the certificate does not carry is refused by the same client */
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  s.fd = fds[0];
  CHECK(pthread_create(&th, NULL, serve, &s) == 0);
  rc = sli_conn_new_fd(&c, client, fds[1], "db.example.com", 0);
  if (!rc) rc = sli_conn_handshake(c);
  sli_conn_free(c);
  close(fds[1]);
  pthread_join(th, NULL);
  close(fds[0]);
  CHECK_EQ(rc, SLI_E_HOSTNAME);
  sli_ctx_free(server);
  sli_ctx_free(client);
  sli_config_free(sc);
  sli_config_free(cc);
  pem_free(&kp);
  issued_free(&t);
  return 0;
}

int main(void) {
  run("selfsign", test_selfsign);
  run("bad_input", test_bad_input);
  run("issue", test_issue);
  run("tampered_request", test_tampered_request);
  run("issued_in_handshake", test_issued_in_handshake);
  return finish();
}
