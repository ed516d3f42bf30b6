/* test_client_hello.c — the ClientHello callback (sli_config_set_client_hello_cb): it sees the SNI
 * name and the peer, chooses the identity a connection presents (sli_conn_set_identity), now or
 * later from another thread (SLI_WANT_CLIENT_HELLO until sli_conn_client_hello_done), or refuses
 * the handshake with a code of its own; a blocking fd waits for its answer within the handshake
 * deadline. The client verifies the server's name, so a completed handshake proves which
 * certificate was presented. Black-box through libsli.so.1. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "check.h"
#include "tls_pair.h"

static test_ca ca;
static test_identity id_a, id_b; /* a.example (configured), b.example (the host's own) */

typedef struct {
  int calls;
  char seen_name[64], seen_peer[64];
  int answer;       /* what the callback returns */
  int set_b;        /* choose id_b */
  sli_conn *waiting; /* an SLI_WANT_CLIENT_HELLO answer pending */
} hello_state;

static int on_hello(sli_conn *conn, void *arg) {
  hello_state *h = arg;
  h->calls++;
  const char *n = sli_conn_servername(conn), *p = sli_conn_peer_addr(conn);
  snprintf(h->seen_name, sizeof(h->seen_name), "%s", n ? n : "(none)");
  snprintf(h->seen_peer, sizeof(h->seen_peer), "%s", p ? p : "(none)");
  if (h->set_b && h->answer != SLI_WANT_CLIENT_HELLO &&
      sli_conn_set_identity(conn, id_b.cert, id_b.key) != 0)
    return SLI_E_INTERNAL;
  if (h->answer == SLI_WANT_CLIENT_HELLO) h->waiting = conn;
  return h->answer;
}

static sli_ctx *server_ctx(hello_state *h, uint32_t timeout_ms) {
  sli_config *cfg = sli_config_new();
  sli_ctx *ctx = NULL;
  if (cfg && !sli_config_set_keypair_mem(cfg, id_a.cert_pem, id_a.cert_len, id_a.key_pem, id_a.key_len, NULL) &&
      !sli_config_set_client_hello_cb(cfg, h ? on_hello : NULL, h) &&
      (!timeout_ms || !sli_config_set_handshake_timeout(cfg, timeout_ms)))
    sli_ctx_new_server(&ctx, cfg, 0);
  sli_config_free(cfg);
  return ctx;
}

/* leaf_cn: the CN the client saw, "" if none. */
static const char *leaf_subject(sli_conn *client) {
  const sli_cert *c = sli_conn_peer_cert(client);
  return c ? sli_cert_subject(c) : "";
}

static int test_sync_choice(void) {
  hello_state h = {.answer = 0, .set_b = 1};
  sli_ctx *server = server_ctx(&h, 0), *client = test_client_ctx(&ca, 0, NULL);
  CHECK(server && client);
  test_pair p;
  CHECK_EQ(test_pair_new(&p, server, client, "b.example"), 0);
  struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40123)};
  inet_pton(AF_INET, "192.0.2.7", &peer.sin_addr);
  CHECK_EQ(sli_conn_set_peer_addr(p.server, (struct sockaddr *)&peer, sizeof(peer)), 0);
  test_pair_run(&p);
  CHECK_EQ(p.src, 0);
  CHECK_EQ(p.crc, 0); /* verified against the name b.example: the host's identity was presented */
  CHECK_EQ(h.calls, 1);
  CHECK(strcmp(h.seen_name, "b.example") == 0);
  CHECK(strcmp(h.seen_peer, "192.0.2.7:40123") == 0);
  CHECK(strstr(leaf_subject(p.client), "b.example"));
  test_pair_free(&p);
  /* answering 0 without an identity: the configured one */
  h.set_b = 0;
  CHECK_EQ(test_pair_new(&p, server, client, "a.example"), 0);
  test_pair_run(&p);
  CHECK_EQ(p.crc, 0);
  CHECK(strstr(leaf_subject(p.client), "a.example"));
  CHECK_EQ(h.calls, 2);
  test_pair_free(&p);
  /* without the callback, b.example is refused: the name does not match a.example */
  sli_ctx_free(server);
  server = server_ctx(NULL, 0);
  CHECK_EQ(test_pair_new(&p, server, client, "b.example"), 0);
  test_pair_run(&p);
  CHECK_EQ(p.crc, SLI_E_HOSTNAME);
  test_pair_free(&p);
  sli_ctx_free(server);
  sli_ctx_free(client);
  return 0;
}

typedef struct {
  sli_conn *conn;
  int delay_ms, status, set_b;
  int rc_identity, rc_done;
} answer_later;

static void *answer_thread(void *arg) {
  answer_later *a = arg;
  struct timespec ts = {a->delay_ms / 1000, (a->delay_ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  a->rc_identity = a->set_b ? sli_conn_set_identity(a->conn, id_b.cert, id_b.key) : 0;
  a->rc_done = sli_conn_client_hello_done(a->conn, a->status);
  return NULL;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int test_async_choice(void) {
  hello_state h = {.answer = SLI_WANT_CLIENT_HELLO};
  sli_ctx *server = server_ctx(&h, 0), *client = test_client_ctx(&ca, 0, NULL);
  CHECK(server && client);
  test_pair p;
  CHECK_EQ(test_pair_new(&p, server, client, "b.example"), 0);
  for (int i = 0; i < 20 && p.src != SLI_WANT_CLIENT_HELLO; i++) test_pair_step(&p);
  CHECK_EQ(p.src, SLI_WANT_CLIENT_HELLO);
  CHECK_EQ(sli_conn_want(p.server), SLI_WANT_CLIENT_HELLO);
  CHECK(h.waiting == p.server);
  /* while the host thinks, the handshake stays where it is: calls return the same code */
  CHECK_EQ(sli_conn_handshake(p.server), SLI_WANT_CLIENT_HELLO);
  CHECK_EQ(sli_conn_handshake(p.server), SLI_WANT_CLIENT_HELLO);
  CHECK_EQ(h.calls, 1); /* the callback is not asked again */
  answer_later a = {.conn = p.server, .delay_ms = 50, .status = 0, .set_b = 1};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, answer_thread, &a) == 0);
  int64_t until = now_ms() + 5000;
  while (now_ms() < until && (p.src == SLI_WANT_CLIENT_HELLO || test_blocked(p.src) ||
                              test_blocked(p.crc))) {
    if (p.src == SLI_WANT_CLIENT_HELLO) p.src = sli_conn_handshake(p.server);
    test_pair_step(&p);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  pthread_join(t, NULL);
  CHECK_EQ(a.rc_identity, 0);
  CHECK_EQ(a.rc_done, 0);
  CHECK_EQ(p.src, 0);
  CHECK_EQ(p.crc, 0);
  CHECK(strstr(leaf_subject(p.client), "b.example"));
  CHECK_EQ(h.calls, 1);
  /* too late now: nothing waits */
  CHECK_EQ(sli_conn_client_hello_done(p.server, 0), SLI_E_STATE);
  CHECK_EQ(sli_conn_set_identity(p.server, id_b.cert, id_b.key), SLI_E_STATE);
  test_pair_free(&p);
  sli_ctx_free(server);
  sli_ctx_free(client);
  return 0;
}

static int test_refusals(void) {
  sli_ctx *client = test_client_ctx(&ca, 0, NULL);
  /* refused at once, with the host's own code */
  hello_state h = {.answer = SLI_E_NO_MATCH};
  sli_ctx *server = server_ctx(&h, 0);
  CHECK(server && client);
  test_pair p;
  CHECK_EQ(test_pair_new(&p, server, client, "nobody.example"), 0);
  test_pair_run(&p);
  CHECK_EQ(p.src, SLI_E_NO_MATCH);
  CHECK(strstr(sli_conn_error(p.server), "ClientHello callback"));
  CHECK(p.crc < 0 && !test_blocked(p.crc)); /* the client got an alert, not a hang */
  CHECK_EQ(sli_conn_handshake(p.server), SLI_E_NO_MATCH); /* sticky */
  test_pair_free(&p);
  sli_ctx_free(server);
  /* refused later, from another thread */
  hello_state h2 = {.answer = SLI_WANT_CLIENT_HELLO};
  server = server_ctx(&h2, 0);
  CHECK_EQ(test_pair_new(&p, server, client, "b.example"), 0);
  for (int i = 0; i < 20 && p.src != SLI_WANT_CLIENT_HELLO; i++) test_pair_step(&p);
  CHECK_EQ(p.src, SLI_WANT_CLIENT_HELLO);
  answer_later a = {.conn = p.server, .delay_ms = 10, .status = SLI_E_CONFIG};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, answer_thread, &a) == 0);
  pthread_join(t, NULL);
  CHECK_EQ(a.rc_done, 0);
  CHECK_EQ(sli_conn_handshake(p.server), SLI_E_CONFIG);
  test_pair_free(&p);
  sli_ctx_free(server);
  /* an answer outside the contract fails that connection only, at once: another hook's WANT code,
   * a WANT_READ, -1, -errno (a host propagating its own codes), a positive number */
  int wrong[] = {SLI_WANT_PRIVATE_KEY, SLI_WANT_READ, -1, -5};
  for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
    hello_state hw = {.answer = wrong[i]};
    server = server_ctx(&hw, 0);
    CHECK_EQ(test_pair_new(&p, server, client, "a.example"), 0);
    test_pair_run(&p);
    CHECK_EQ(p.src, SLI_E_INVAL);
    CHECK(strstr(sli_conn_error(p.server), "the ClientHello callback returned"));
    CHECK_EQ(sli_conn_alert(p.client), 80); /* the client told, not left waiting */
    test_pair_free(&p);
    sli_ctx_free(server);
  }
  /* a done call with a status outside the contract: refused, and the handshake fails */
  hello_state h4 = {.answer = SLI_WANT_CLIENT_HELLO};
  server = server_ctx(&h4, 0);
  CHECK_EQ(test_pair_new(&p, server, client, "a.example"), 0);
  for (int i = 0; i < 20 && p.src != SLI_WANT_CLIENT_HELLO; i++) test_pair_step(&p);
  CHECK_EQ(sli_conn_client_hello_done(p.server, SLI_WANT_READ), SLI_E_INVAL);
  CHECK_EQ(sli_conn_handshake(p.server), SLI_E_INVAL);
  test_pair_free(&p);
  sli_ctx_free(server);
  hello_state h3 = {.answer = 7};
  server = server_ctx(&h3, 0);
  CHECK_EQ(test_pair_new(&p, server, client, "a.example"), 0);
  test_pair_run(&p);
  CHECK_EQ(p.src, SLI_E_INVAL);
  CHECK(strstr(sli_conn_error(p.server), "returned 7"));
  test_pair_free(&p);
  sli_ctx_free(server);
  sli_ctx_free(client);
  return 0;
}

/* The identity given must be usable: its key the certificate's, or a key kept by the host with a
 * private-key callback to sign. */
static int bad_identity_answer(sli_conn *conn, void *arg) {
  int *rcs = arg;
  rcs[0] = sli_conn_set_identity(conn, id_b.cert, id_a.key); /* a's key, b's certificate */
  rcs[1] = sli_conn_set_identity(conn, NULL, id_b.key);
  rcs[2] = sli_conn_set_identity(conn, id_b.cert, NULL); /* the host's key, but no callback */
  return 0;
}

static int test_identity_checks(void) {
  int rcs[3] = {1, 1, 1};
  sli_config *cfg = sli_config_new();
  CHECK(cfg);
  CHECK_EQ(sli_config_set_keypair_mem(cfg, id_a.cert_pem, id_a.cert_len, id_a.key_pem, id_a.key_len, NULL), 0);
  CHECK_EQ(sli_config_set_client_hello_cb(cfg, bad_identity_answer, rcs), 0);
  sli_ctx *server = NULL, *client = test_client_ctx(&ca, 0, NULL);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  sli_config_free(cfg);
  test_pair p;
  CHECK_EQ(test_pair_new(&p, server, client, "b.example"), 0);
  CHECK_EQ(sli_conn_set_identity(p.server, id_b.cert, id_b.key), SLI_E_STATE); /* not yet */
  test_pair_run(&p);
  CHECK_EQ(rcs[0], SLI_E_KEY_MISMATCH);
  CHECK_EQ(rcs[1], SLI_E_INVAL);
  CHECK_EQ(rcs[2], 0);
  CHECK_EQ(p.src, SLI_E_CONFIG);
  CHECK(strstr(sli_conn_error(p.server), "private-key callback"));
  test_pair_free(&p);
  sli_ctx_free(server);
  sli_ctx_free(client);
  return 0;
}

/* A thread-per-connection server on a blocking fd: its handshake call waits for the answer. */
typedef struct {
  sli_ctx *ctx;
  int fd;
  const char *name;
  int rc;
  int64_t took_ms;
} side;

static void *run_side(void *arg) {
  side *s = arg;
  sli_conn *c = NULL;
  int64_t t0 = now_ms();
  s->rc = sli_conn_new_fd(&c, s->ctx, s->fd, s->name, 0);
  if (!s->rc) s->rc = sli_conn_handshake(c);
  s->took_ms = now_ms() - t0;
  if (!s->rc) {
    char b[8];
    if (s->name) s->rc = sli_conn_write(c, "hi", 2) == 2 ? 0 : -1;
    else s->rc = sli_conn_read(c, b, sizeof(b)) == 2 ? 0 : -1;
  }
  sli_conn_free(c);
  return NULL;
}

typedef struct {
  pthread_mutex_t mu;
  sli_conn *conn;
} handoff;

static int hand_over(sli_conn *conn, void *arg) {
  handoff *h = arg;
  pthread_mutex_lock(&h->mu);
  h->conn = conn;
  pthread_mutex_unlock(&h->mu);
  return SLI_WANT_CLIENT_HELLO;
}

static int blocking_case(uint32_t timeout_ms, int answer_after_ms, int *server_rc, int64_t *took) {
  /* answer_after_ms -1: never answered; -2: never answered, and the client gives up */
  handoff h = {PTHREAD_MUTEX_INITIALIZER, NULL};
  sli_config *cfg = sli_config_new();
  CHECK(cfg);
  CHECK_EQ(sli_config_set_keypair_mem(cfg, id_a.cert_pem, id_a.cert_len, id_a.key_pem, id_a.key_len, NULL), 0);
  CHECK_EQ(sli_config_set_client_hello_cb(cfg, hand_over, &h), 0);
  CHECK_EQ(sli_config_set_handshake_timeout(cfg, timeout_ms), 0);
  sli_ctx *server = NULL, *client = test_client_ctx(&ca, 0, NULL);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  sli_config_free(cfg);
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  side s = {server, fds[0], NULL, 1, 0}, c = {client, fds[1], "b.example", 1, 0};
  pthread_t ts, tc;
  CHECK(pthread_create(&ts, NULL, run_side, &s) == 0);
  CHECK(pthread_create(&tc, NULL, run_side, &c) == 0);
  if (answer_after_ms >= 0) {
    sli_conn *conn = NULL;
    for (int i = 0; i < 2000 && !conn; i++) { /* until the server's callback ran */
      pthread_mutex_lock(&h.mu);
      conn = h.conn;
      pthread_mutex_unlock(&h.mu);
      struct timespec ts1 = {0, 1000000};
      nanosleep(&ts1, NULL);
    }
    CHECK(conn);
    struct timespec d = {answer_after_ms / 1000, (answer_after_ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    CHECK_EQ(sli_conn_set_identity(conn, id_b.cert, id_b.key), 0);
    CHECK_EQ(sli_conn_client_hello_done(conn, 0), 0);
  }
  if (answer_after_ms == -2) {
    struct timespec d = {0, 200 * 1000000L};
    nanosleep(&d, NULL);
    shutdown(fds[1], SHUT_RDWR); /* the client gives up while the server waits for the host */
  }
  pthread_join(ts, NULL);
  if (answer_after_ms < 0) shutdown(fds[0], SHUT_RDWR); /* the server gave up: end the client */
  pthread_join(tc, NULL);
  if (answer_after_ms < 0 && h.conn) { /* freed while waiting: the answer comes after */
    CHECK_EQ(sli_conn_client_hello_done(h.conn, SLI_E_TIMEOUT), 0);
  }
  *server_rc = s.rc;
  *took = s.took_ms;
  close(fds[0]);
  close(fds[1]);
  sli_ctx_free(server);
  sli_ctx_free(client);
  return 0;
}

static int test_blocking_fd_waits(void) {
  int rc;
  int64_t took;
  CHECK_EQ(blocking_case(5000, 150, &rc, &took), 0);
  CHECK_EQ(rc, 0); /* completed with the identity given later, and the data went through */
  CHECK(took >= 140);
  /* no answer: the handshake deadline ends the wait */
  CHECK_EQ(blocking_case(300, -1, &rc, &took), 0);
  CHECK_EQ(rc, SLI_E_TIMEOUT);
  CHECK(took >= 250 && took < 3000);
  /* no deadline at all, and the client gives up: the wait notices */
  CHECK_EQ(blocking_case(0, -2, &rc, &took), 0);
  CHECK_EQ(rc, SLI_E_TRUNCATED);
  CHECK(took >= 150 && took < 2000);
  return 0;
}

int main(void) {
  char dns_a[] = "a.example", dns_b[] = "b.example";
  if (test_ca_make(&ca) || test_identity_make(&id_a, &ca, dns_a, SLI_KEY_EC, 256) ||
      test_identity_make(&id_b, &ca, dns_b, SLI_KEY_EC, 256)) {
    fprintf(stderr, "cannot make the test identities: %s\n", sli_last_error());
    return 1;
  }
  run("sync_choice", test_sync_choice);
  run("async_choice", test_async_choice);
  run("refusals", test_refusals);
  run("identity_checks", test_identity_checks);
  run("blocking_fd_waits", test_blocking_fd_waits);
  test_identity_free(&id_a);
  test_identity_free(&id_b);
  test_ca_free(&ca);
  return finish();
}
