/* test_alpn.c — the server's ALPN callback (sli_config_set_alpn_select_cb): it sees the protocols
 * the client offers, in the client's order, as strings; the one whose index it returns is
 * negotiated on both ends, over the configured list; SLI_ALPN_NONE negotiates none; a negative code
 * refuses with the no_application_protocol alert (120), named on both ends; an answer out of range
 * fails that connection. Black-box through libsli.so.1. */
#include <stdio.h>

#include "check.h"
#include "tls_pair.h"

static test_ca ca;
static test_identity id;

typedef struct {
  int calls, answer;
  size_t n;
  char seen[8][32];
} chooser;

static int choose(sli_conn *conn, const char *const *offered, size_t n, void *arg) {
  chooser *ch = arg;
  ch->calls++;
  ch->n = n;
  for (size_t i = 0; i < n && i < 8; i++) snprintf(ch->seen[i], sizeof(ch->seen[i]), "%s", offered[i]);
  return ch->answer;
}

static sli_ctx *server_ctx(chooser *ch) {
  sli_config *cfg = sli_config_new();
  sli_ctx *ctx = NULL;
  if (cfg && !sli_config_set_keypair_mem(cfg, id.cert_pem, id.cert_len, id.key_pem, id.key_len, NULL) &&
      !sli_config_set_alpn(cfg, "h2,http/1.1") &&
      !sli_config_set_alpn_select_cb(cfg, ch ? choose : NULL, ch))
    sli_ctx_new_server(&ctx, cfg, 0);
  sli_config_free(cfg);
  return ctx;
}

/* handshake: one connection offering `alpn` (NULL: none); the pair is left for the caller to see. */
static int handshake(test_pair *p, chooser *ch, const char *alpn) {
  sli_ctx *server = server_ctx(ch), *client = test_client_ctx(&ca, 0, alpn);
  CHECK(server && client);
  CHECK_EQ(test_pair_new(p, server, client, "db.example"), 0);
  test_pair_run(p);
  sli_ctx_free(server); /* the connections keep their contexts */
  sli_ctx_free(client);
  return 0;
}

static const char *alpn_of(sli_conn *c) {
  const char *a = sli_conn_alpn(c);
  return a ? a : "(none)";
}

static int test_host_chooses(void) {
  chooser ch = {.answer = 0};
  test_pair p;
  CHECK_EQ(handshake(&p, &ch, "x-db-v2,http/1.1"), 0);
  CHECK_EQ(p.src, 0);
  CHECK_EQ(p.crc, 0);
  CHECK_EQ(ch.calls, 1);
  CHECK_EQ(ch.n, 2);
  CHECK(strcmp(ch.seen[0], "x-db-v2") == 0 && strcmp(ch.seen[1], "http/1.1") == 0);
  /* chosen by the host though its own list does not name it */
  CHECK(strcmp(alpn_of(p.server), "x-db-v2") == 0);
  CHECK(strcmp(alpn_of(p.client), "x-db-v2") == 0);
  test_pair_free(&p);
  ch.answer = 1;
  CHECK_EQ(handshake(&p, &ch, "x-db-v2,http/1.1"), 0);
  CHECK(strcmp(alpn_of(p.client), "http/1.1") == 0);
  test_pair_free(&p);
  /* without the callback, the server's list decides */
  CHECK_EQ(handshake(&p, NULL, "x-db-v2,http/1.1"), 0);
  CHECK(strcmp(alpn_of(p.client), "http/1.1") == 0);
  test_pair_free(&p);
  return 0;
}

static int test_none_and_no_offer(void) {
  chooser ch = {.answer = SLI_ALPN_NONE};
  test_pair p;
  CHECK_EQ(handshake(&p, &ch, "h2"), 0);
  CHECK_EQ(p.crc, 0);
  CHECK(strcmp(alpn_of(p.server), "(none)") == 0 && strcmp(alpn_of(p.client), "(none)") == 0);
  test_pair_free(&p);
  chooser quiet = {.answer = 0};
  CHECK_EQ(handshake(&p, &quiet, NULL), 0); /* a client that offers nothing: no question asked */
  CHECK_EQ(p.crc, 0);
  CHECK_EQ(quiet.calls, 0);
  test_pair_free(&p);
  return 0;
}

static int test_refusal(void) {
  chooser ch = {.answer = SLI_E_NO_MATCH};
  test_pair p;
  CHECK_EQ(handshake(&p, &ch, "smtp"), 0);
  CHECK_EQ(p.src, SLI_E_NO_MATCH);
  CHECK(strstr(sli_conn_error(p.server), "ALPN callback"));
  CHECK_EQ(sli_conn_alert(p.server), 120); /* the alert it sent */
  CHECK_EQ(p.crc, SLI_E_ALERT);
  CHECK_EQ(sli_conn_alert(p.client), 120); /* no_application_protocol */
  CHECK(strstr(sli_conn_error(p.client), "no application protocol"));
  test_pair_free(&p);
  chooser wild = {.answer = 5};
  CHECK_EQ(handshake(&p, &wild, "h2,smtp"), 0);
  CHECK_EQ(p.src, SLI_E_INVAL);
  CHECK(strstr(sli_conn_error(p.server), "returned 5 for a list of 2"));
  test_pair_free(&p);
  return 0;
}

/* A client offering 100 protocols, the one the host wants last: the callback sees all of them. */
static int test_many_offered(void) {
  char list[2000] = "";
  for (int i = 0; i < 99; i++) snprintf(list + strlen(list), sizeof(list) - strlen(list), "p%02d,", i);
  strcat(list, "x-wanted");
  chooser ch = {.answer = 99};
  test_pair p;
  CHECK_EQ(handshake(&p, &ch, list), 0);
  CHECK_EQ(p.crc, 0);
  CHECK_EQ(ch.n, 100);
  CHECK(strcmp(alpn_of(p.client), "x-wanted") == 0);
  test_pair_free(&p);
  return 0;
}

int main(void) {
  if (test_ca_make(&ca) || test_identity_make(&id, &ca, "db.example", SLI_KEY_EC, 256)) {
    fprintf(stderr, "cannot set up: %s\n", sli_last_error());
    return 1;
  }
  run("host_chooses", test_host_chooses);
  run("none_and_no_offer", test_none_and_no_offer);
  run("refusal", test_refusal);
  run("many_offered", test_many_offered);
  test_identity_free(&id);
  test_ca_free(&ca);
  return finish();
}
