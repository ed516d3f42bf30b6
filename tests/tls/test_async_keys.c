/* test_async_keys.c — private keys the host keeps (sli_config_add_cert_file_async_key,
 * sli_config_set_private_key_cb, sli_conn_private_key_done): each supported key kind signs through
 * the callback in TLS 1.3 and 1.2 (the client verifies, so a wrong signature would fail it); a slow
 * signer on another thread holds up only its own connection while another completes on the same
 * event loop; every failure is named; a blocking fd waits for the signature. Black-box through
 * libsli.so.1. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <time.h>

#include "check.h"
#include "tls_pair.h"

static test_ca ca;
static char dir[] = "/tmp/sli-async-keys-XXXXXX";

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The host's key store: a key and how to answer. */
typedef struct {
  sli_key *key;
  int calls;
  char fingerprint[128]; /* of the certificate the callback was given */
  int mode;              /* 0 sign now; 1 no signature (done NULL); 2 return SLI_E_IO; 3 return 0
                            without answering; 4 garbage signature; 5 return -1; 6 an empty
                            signature */
} keystore;

static int sign_now(sli_conn *conn, const sli_cert *cert, const uint8_t *in, size_t in_len, void *arg) {
  keystore *k = arg;
  k->calls++;
  snprintf(k->fingerprint, sizeof(k->fingerprint), "%s", sli_cert_fingerprint_sha256(cert));
  uint8_t sig[1024];
  size_t n = sizeof(sig);
  switch (k->mode) {
    case 1:
      return sli_conn_private_key_done(conn, NULL, 0);
    case 2:
      return SLI_E_IO;
    case 3:
      return 0;
    case 4:
      memset(sig, 0x5a, 64);
      return sli_conn_private_key_done(conn, sig, 64);
    case 5:
      return -1; /* not an SLI code */
    case 6:
      sli_conn_private_key_done(conn, sig, 0); /* an empty signature */
      return 0;
    default:
      if (sli_key_sign(k->key, sig, &n, in, in_len)) return SLI_E_INTERNAL;
      return sli_conn_private_key_done(conn, sig, n);
  }
}

/* async_server: a server context whose identity's key stays with the host. */
static sli_ctx *async_server(const test_identity *id, sli_private_key_fn fn, void *arg, int *rc) {
  char path[256];
  snprintf(path, sizeof(path), "%s/async-%p.pem", dir, (void *)id);
  sli_config *cfg = sli_config_new();
  sli_ctx *ctx = NULL;
  *rc = -1;
  if (cfg && !test_write_file(path, id->cert_pem, id->cert_len) &&
      !(*rc = sli_config_add_cert_file_async_key(cfg, path)) &&
      !(*rc = sli_config_set_private_key_cb(cfg, fn, arg)))
    *rc = sli_ctx_new_server(&ctx, cfg, 0);
  sli_config_free(cfg);
  return ctx;
}

static int kind_signs(int type, int param, int max_version) {
  test_identity id;
  CHECK_EQ(test_identity_make(&id, &ca, "db.example", type, param), 0);
  keystore ks = {.key = id.key};
  int rc;
  sli_ctx *server = async_server(&id, sign_now, &ks, &rc), *client = test_client_ctx(&ca, max_version, NULL);
  CHECK_EQ(rc, 0);
  CHECK(server && client);
  test_pair p;
  CHECK_EQ(test_pair_new(&p, server, client, "db.example"), 0);
  test_pair_run(&p);
  CHECK_EQ(p.src, 0);
  CHECK_EQ(p.crc, 0); /* the client checked the signature */
  CHECK_EQ(ks.calls, 1);
  CHECK(strcmp(ks.fingerprint, sli_cert_fingerprint_sha256(id.cert)) == 0);
  CHECK(strcmp(sli_conn_version(p.client), max_version == SLI_TLS1_2 ? "TLSv1.2" : "TLSv1.3") == 0);
  test_pair_free(&p);
  sli_ctx_free(server);
  sli_ctx_free(client);
  test_identity_free(&id);
  return 0;
}

static int test_p256_tls13(void) { return kind_signs(SLI_KEY_EC, 256, 0); }
static int test_p256_tls12(void) { return kind_signs(SLI_KEY_EC, 256, SLI_TLS1_2); }
static int test_rsa_tls13(void) { return kind_signs(SLI_KEY_RSA, 2048, 0); }
static int test_rsa_tls12(void) { return kind_signs(SLI_KEY_RSA, 2048, SLI_TLS1_2); }
static int test_ed25519_tls13(void) { return kind_signs(SLI_KEY_ED25519, 0, 0); }

/* ---- A signer on its own thread, slow; one event loop serving two connections ---- */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  sli_key *key;
  sli_conn *conn; /* the request waiting, or NULL */
  uint8_t in[2048];
  size_t in_len;
  int delay_ms, stop, answered;
  int64_t answered_at;
  int wake; /* eventfd: tells the loop a signature arrived */
} signer;

static int ask_signer(sli_conn *conn, const sli_cert *cert, const uint8_t *in, size_t in_len, void *arg) {
  signer *s = arg;
  if (in_len > sizeof(s->in)) return SLI_E_INVAL;
  pthread_mutex_lock(&s->mu);
  s->conn = conn;
  memcpy(s->in, in, in_len);
  s->in_len = in_len;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return SLI_WANT_PRIVATE_KEY;
}

static void *signer_main(void *arg) {
  signer *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->stop) {
    if (!s->conn) {
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    sli_conn *conn = s->conn;
    s->conn = NULL;
    pthread_mutex_unlock(&s->mu);
    struct timespec d = {s->delay_ms / 1000, (s->delay_ms % 1000) * 1000000L};
    nanosleep(&d, NULL); /* the HSM thinks */
    uint8_t sig[1024];
    size_t n = sizeof(sig);
    int rc = sli_key_sign(s->key, sig, &n, s->in, s->in_len);
    s->answered_at = now_ms();
    sli_conn_private_key_done(conn, rc ? NULL : sig, n);
    uint64_t one = 1;
    if (write(s->wake, &one, sizeof(one)) < 0) {
    }
    pthread_mutex_lock(&s->mu);
    s->answered++;
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static int echo_rounds(test_pair *p, int rounds) {
  for (int i = 0; i < rounds; i++) {
    char out[32], in[32];
    int n = snprintf(out, sizeof(out), "round %d", i);
    CHECK_EQ(sli_conn_write(p->client, out, (size_t)n), n);
    ssize_t r = SLI_WANT_READ;
    for (int j = 0; j < 50 && r == SLI_WANT_READ; j++) r = sli_conn_read(p->server, in, sizeof(in));
    CHECK_EQ(r, n);
    CHECK(memcmp(in, out, (size_t)n) == 0);
  }
  return 0;
}

static int test_slow_signer_holds_up_only_its_connection(void) {
  test_identity slow, local;
  CHECK_EQ(test_identity_make(&slow, &ca, "hsm.example", SLI_KEY_EC, 256), 0);
  CHECK_EQ(test_identity_make(&local, &ca, "local.example", SLI_KEY_EC, 256), 0);
  char slow_path[256], local_cert[256], local_key[256];
  snprintf(slow_path, sizeof(slow_path), "%s/hsm.pem", dir);
  snprintf(local_cert, sizeof(local_cert), "%s/local.pem", dir);
  snprintf(local_key, sizeof(local_key), "%s/local.key", dir);
  CHECK_EQ(test_write_file(slow_path, slow.cert_pem, slow.cert_len), 0);
  CHECK_EQ(test_write_file(local_cert, local.cert_pem, local.cert_len), 0);
  CHECK_EQ(test_write_file(local_key, local.key_pem, local.key_len), 0);
  signer s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .key = slow.key};
  s.delay_ms = 300;
  s.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(s.wake >= 0);
  /* one server context: the HSM's identity by default, a local one chosen by SNI */
  sli_config *cfg = sli_config_new();
  CHECK(cfg);
  CHECK_EQ(sli_config_add_cert_file_async_key(cfg, slow_path), 0);
  CHECK_EQ(sli_config_add_keypair_file(cfg, local_cert, local_key, NULL), 0);
  CHECK_EQ(sli_config_set_private_key_cb(cfg, ask_signer, &s), 0);
  sli_ctx *server = NULL, *client = test_client_ctx(&ca, 0, NULL);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  sli_config_free(cfg);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, signer_main, &s) == 0);
  test_pair a, b;
  CHECK_EQ(test_pair_new(&a, server, client, "hsm.example"), 0);
  CHECK_EQ(test_pair_new(&b, server, client, "local.example"), 0);
  /* the event loop: drive both; A waits for its signature, B must not wait with it */
  int64_t t0 = now_ms(), b_done_at = -1, a_done_at = -1, deadline = t0 + 5000;
  int b_echoed = 0, a_waited = 0;
  while (now_ms() < deadline && (a_done_at < 0 || b_done_at < 0)) {
    if (a.src == SLI_WANT_PRIVATE_KEY) {
      a_waited = 1;
      struct pollfd pf = {.fd = s.wake, .events = POLLIN};
      if (poll(&pf, 1, 0) == 1) {
        uint64_t v;
        if (read(s.wake, &v, sizeof(v)) < 0) {
        }
        a.src = sli_conn_handshake(a.server);
      }
    }
    test_pair_step(&a);
    test_pair_step(&b);
    if (b_done_at < 0 && b.src == 0 && b.crc == 0) {
      CHECK_EQ(echo_rounds(&b, 20), 0);
      b_echoed = 1;
      b_done_at = now_ms();
    }
    if (a_done_at < 0 && a.src == 0 && a.crc == 0) a_done_at = now_ms();
    if (a.src < 0 && !test_blocked(a.src) && a.src != SLI_WANT_PRIVATE_KEY) break;
    struct timespec d = {0, 1000000};
    nanosleep(&d, NULL);
  }
  pthread_mutex_lock(&s.mu);
  s.stop = 1;
  pthread_cond_signal(&s.cv);
  pthread_mutex_unlock(&s.mu);
  pthread_join(t, NULL);
  CHECK(a_waited); /* A's handshake returned SLI_WANT_PRIVATE_KEY */
  CHECK_EQ(a.src, 0);
  CHECK_EQ(a.crc, 0);
  CHECK(b_echoed);
  CHECK_EQ(s.answered, 1);
  /* B finished its handshake and 20 echoes before the signer answered A; A only after */
  CHECK(b_done_at >= 0 && b_done_at < s.answered_at);
  CHECK(a_done_at >= s.answered_at);
  CHECK(a_done_at - t0 >= 280);
  CHECK(strstr(sli_cert_subject(sli_conn_peer_cert(a.client)), "hsm.example"));
  test_pair_free(&a);
  test_pair_free(&b);
  close(s.wake);
  sli_ctx_free(server);
  sli_ctx_free(client);
  test_identity_free(&slow);
  test_identity_free(&local);
  return 0;
}

/* ---- Failures, each named ---- */

static int failing(int mode, int expect_server, const char *expect_msg) {
  test_identity id;
  CHECK_EQ(test_identity_make(&id, &ca, "db.example", SLI_KEY_EC, 256), 0);
  keystore ks = {.key = id.key, .mode = mode};
  int rc;
  sli_ctx *server = async_server(&id, sign_now, &ks, &rc), *client = test_client_ctx(&ca, 0, NULL);
  CHECK(server && client);
  test_pair p;
  CHECK_EQ(test_pair_new(&p, server, client, "db.example"), 0);
  test_pair_run(&p);
  if (expect_server) {
    CHECK_EQ(p.src, expect_server);
    CHECK(strstr(sli_conn_error(p.server), expect_msg));
    CHECK_EQ(sli_conn_alert(p.server), 80); /* internal_error, sent */
    CHECK_EQ(sli_conn_alert(p.client), 80); /* and received */
  }
  CHECK(p.crc < 0 && !test_blocked(p.crc)); /* the client never completes */
  if (!expect_server) CHECK(strstr(sli_conn_error(p.client), expect_msg));
  test_pair_free(&p);
  sli_ctx_free(server);
  sli_ctx_free(client);
  test_identity_free(&id);
  return 0;
}

static int test_failures_are_named(void) {
  CHECK_EQ(failing(1, SLI_E_SIGNATURE, "private-key callback failed"), 0);
  CHECK_EQ(failing(2, SLI_E_IO, "private-key callback failed (SLI_E_IO)"), 0);
  CHECK_EQ(failing(3, SLI_E_INVAL, "without a signature"), 0);
  CHECK_EQ(failing(4, 0, ""), 0); /* a wrong signature: the client refuses the handshake */
  CHECK_EQ(failing(5, SLI_E_INVAL, "the private-key callback returned -1"), 0);
  CHECK_EQ(failing(6, SLI_E_INVAL, "signature of 0 bytes"), 0);
  return 0;
}

static int test_config_errors(void) {
  test_identity p384;
  CHECK_EQ(test_identity_make(&p384, &ca, "p384.example", SLI_KEY_EC, 384), 0);
  char path[256];
  snprintf(path, sizeof(path), "%s/p384.pem", dir);
  CHECK_EQ(test_write_file(path, p384.cert_pem, p384.cert_len), 0);
  sli_config *cfg = sli_config_new();
  CHECK(cfg);
  CHECK_EQ(sli_config_add_cert_file_async_key(cfg, path), SLI_E_UNSUPPORTED);
  CHECK(strstr(sli_config_error(cfg), "P-256"));
  CHECK_EQ(sli_config_add_cert_file_async_key(cfg, "/nonexistent/cert.pem"), SLI_E_FILE);
  test_identity ok;
  CHECK_EQ(test_identity_make(&ok, &ca, "db.example", SLI_KEY_EC, 256), 0);
  CHECK_EQ(test_write_file(path, ok.cert_pem, ok.cert_len), 0);
  CHECK_EQ(sli_config_add_cert_file_async_key(cfg, path), 0);
  sli_ctx *server = NULL;
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), SLI_E_CONFIG); /* no callback to sign */
  CHECK(strstr(sli_config_error(cfg), "private-key callback"));
  sli_config_free(cfg);
  /* nothing awaits a signature on a fresh connection */
  keystore ks = {.key = ok.key};
  int rc;
  server = async_server(&ok, sign_now, &ks, &rc);
  CHECK(server);
  sli_conn *c = NULL;
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  CHECK_EQ(sli_conn_new_cbs(&c, server, pair_read, pair_write, &fds[0], NULL, 0), 0);
  uint8_t sig[8] = {0};
  CHECK_EQ(sli_conn_private_key_done(c, sig, sizeof(sig)), SLI_E_STATE);
  sli_conn_free(c);
  close(fds[0]);
  close(fds[1]);
  sli_ctx_free(server);
  test_identity_free(&p384);
  test_identity_free(&ok);
  return 0;
}

/* ---- A thread-per-connection server on a blocking fd ---- */

typedef struct {
  sli_ctx *ctx;
  int fd;
  const char *name;
  int rc;
} side;

static void *run_side(void *arg) {
  side *s = arg;
  sli_conn *c = NULL;
  s->rc = sli_conn_new_fd(&c, s->ctx, s->fd, s->name, 0);
  if (!s->rc) s->rc = sli_conn_handshake(c);
  sli_conn_free(c);
  return NULL;
}

static int test_blocking_fd_waits(void) {
  test_identity id;
  CHECK_EQ(test_identity_make(&id, &ca, "db.example", SLI_KEY_EC, 256), 0);
  signer s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .key = id.key};
  s.delay_ms = 150;
  s.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int rc;
  sli_ctx *server = async_server(&id, ask_signer, &s, &rc), *client = test_client_ctx(&ca, 0, NULL);
  CHECK(server && client);
  pthread_t ts, tc, tsign;
  CHECK(pthread_create(&tsign, NULL, signer_main, &s) == 0);
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  side sv = {server, fds[0], NULL, 1}, cl = {client, fds[1], "db.example", 1};
  int64_t t0 = now_ms();
  CHECK(pthread_create(&ts, NULL, run_side, &sv) == 0);
  CHECK(pthread_create(&tc, NULL, run_side, &cl) == 0);
  pthread_join(ts, NULL);
  pthread_join(tc, NULL);
  int64_t took = now_ms() - t0;
  pthread_mutex_lock(&s.mu);
  s.stop = 1;
  pthread_cond_signal(&s.cv);
  pthread_mutex_unlock(&s.mu);
  pthread_join(tsign, NULL);
  CHECK_EQ(sv.rc, 0);
  CHECK_EQ(cl.rc, 0);
  CHECK_EQ(s.answered, 1);
  CHECK(took >= 140);
  close(fds[0]);
  close(fds[1]);
  close(s.wake);
  sli_ctx_free(server);
  sli_ctx_free(client);
  test_identity_free(&id);
  return 0;
}

/* A connection freed while its signature is awaited (its handshake timed out first, as an event loop
 * frees it): the signer's late answer frees what is left — no use after free (the ASan build). */
static int test_freed_while_signing(void) {
  test_identity id;
  CHECK_EQ(test_identity_make(&id, &ca, "db.example", SLI_KEY_EC, 256), 0);
  signer s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .key = id.key};
  s.delay_ms = 300;
  s.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  char path[256];
  snprintf(path, sizeof(path), "%s/freed.pem", dir);
  CHECK_EQ(test_write_file(path, id.cert_pem, id.cert_len), 0);
  sli_config *cfg = sli_config_new();
  CHECK_EQ(sli_config_add_cert_file_async_key(cfg, path), 0);
  CHECK_EQ(sli_config_set_private_key_cb(cfg, ask_signer, &s), 0);
  CHECK_EQ(sli_config_set_handshake_timeout(cfg, 100), 0);
  sli_ctx *server = NULL, *client = test_client_ctx(&ca, 0, NULL);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  sli_config_free(cfg);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, signer_main, &s) == 0);
  test_pair p;
  CHECK_EQ(test_pair_new(&p, server, client, "db.example"), 0);
  for (int i = 0; i < 20 && p.src != SLI_WANT_PRIVATE_KEY; i++) test_pair_step(&p);
  CHECK_EQ(p.src, SLI_WANT_PRIVATE_KEY);
  struct timespec d = {0, 150 * 1000000L};
  nanosleep(&d, NULL);
  CHECK_EQ(sli_conn_handshake(p.server), SLI_E_TIMEOUT);
  test_pair_free(&p); /* freed, the signer still at work */
  for (int i = 0; i < 100; i++) { /* until it answered */
    pthread_mutex_lock(&s.mu);
    int answered = s.answered;
    pthread_mutex_unlock(&s.mu);
    if (answered) break;
    nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
  }
  pthread_mutex_lock(&s.mu);
  s.stop = 1;
  pthread_cond_signal(&s.cv);
  pthread_mutex_unlock(&s.mu);
  pthread_join(t, NULL);
  CHECK_EQ(s.answered, 1);
  close(s.wake);
  sli_ctx_free(server);
  sli_ctx_free(client);
  test_identity_free(&id);
  return 0;
}

int main(void) {
  if (!mkdtemp(dir) || test_ca_make(&ca)) {
    fprintf(stderr, "cannot set up: %s\n", sli_last_error());
    return 1;
  }
  run("p256_tls13", test_p256_tls13);
  run("p256_tls12", test_p256_tls12);
  run("rsa_tls13", test_rsa_tls13);
  run("rsa_tls12", test_rsa_tls12);
  run("ed25519_tls13", test_ed25519_tls13);
  run("slow_signer_holds_up_only_its_connection", test_slow_signer_holds_up_only_its_connection);
  run("failures_are_named", test_failures_are_named);
  run("config_errors", test_config_errors);
  run("blocking_fd_waits", test_blocking_fd_waits);
  run("freed_while_signing", test_freed_while_signing);
  test_ca_free(&ca);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd)) {
  }
  return finish();
}
