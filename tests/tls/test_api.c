/* test_api.c — black-box tests of api/sli.h, linked only against libsli.so.1 (which proves the
 * exports suffice). Both ends run in one process over in-memory pipes whose callbacks return
 * SLI_WANT_* when empty or full, so every WANT path runs; then over a non-blocking socketpair. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"


/* ---- an in-memory one-way pipe with a small capacity ---- */
typedef struct pipe_ {
  unsigned char buf[4096];
  size_t len, cap;
  int closed;
} pipe_;
typedef struct end {
  pipe_ *in, *out;
} end;

static ssize_t mem_read(sli_conn *c, void *buf, size_t len, void *arg) {
  end *e = arg;
  if (e->in->len == 0) return e->in->closed ? 0 : SLI_WANT_READ;
  size_t n = len < e->in->len ? len : e->in->len;
  memcpy(buf, e->in->buf, n);
  memmove(e->in->buf, e->in->buf + n, e->in->len - n);
  e->in->len -= n;
  return (ssize_t)n;
}

static ssize_t mem_write(sli_conn *c, const void *buf, size_t len, void *arg) {
  end *e = arg;
  size_t room = e->out->cap - e->out->len;
  if (room == 0) return SLI_WANT_WRITE;
  size_t n = len < room ? len : room;
  memcpy(e->out->buf + e->out->len, buf, n);
  e->out->len += n;
  return (ssize_t)n;
}

static char ca_path[PATH_MAX], key_path[PATH_MAX];
static sli_ctx *server_ctx, *client_ctx;

typedef struct pair {
  pipe_ a2b, b2a;
  end cend, send;
  sli_conn *client, *server;
} pair;

static int make_pair(pair *p, size_t cap, const char *name) {
  memset(p, 0, sizeof(*p));
  p->a2b.cap = p->b2a.cap = cap;
  p->cend = (end){&p->b2a, &p->a2b};
  p->send = (end){&p->a2b, &p->b2a};
  CHECK_EQ(sli_conn_new_cbs(&p->client, client_ctx, mem_read, mem_write, &p->cend, name, 0), 0);
  CHECK_EQ(sli_conn_new_cbs(&p->server, server_ctx, mem_read, mem_write, &p->send, NULL, 0), 0);
  return 0;
}

static void free_pair(pair *p) {
  sli_conn_free(p->client);
  sli_conn_free(p->server);
}

/* Drives both handshakes to the end; returns the client's result. */
static int handshake_both(pair *p, int *out_server_rc) {
  int rc = SLI_WANT_READ, src = SLI_WANT_READ;
  for (int i = 0; i < 1000 && (rc < 0 || src < 0); i++) {
    if (rc == SLI_WANT_READ || rc == SLI_WANT_WRITE) rc = sli_conn_handshake(p->client);
    if (src == SLI_WANT_READ || src == SLI_WANT_WRITE) src = sli_conn_handshake(p->server);
    if ((rc != SLI_WANT_READ && rc != SLI_WANT_WRITE && rc < 0) ||
        (src != SLI_WANT_READ && src != SLI_WANT_WRITE && src < 0)) {
      /* one side failed: let the other read the alert */
      if (src == SLI_WANT_READ || src == SLI_WANT_WRITE) src = sli_conn_handshake(p->server);
      if (rc == SLI_WANT_READ || rc == SLI_WANT_WRITE) rc = sli_conn_handshake(p->client);
      break;
    }
  }
  if (out_server_rc) *out_server_rc = src;
  return rc;
}

static int test_codes_and_names(void) {
  CHECK(sli_version() == SLI_VERSION_HEX);
  char want[32]; /* the library's version is the header's, and the build's (meson.build) */
  snprintf(want, sizeof(want), "%d.%d.%d", SLI_VERSION_MAJOR, SLI_VERSION_MINOR, SLI_VERSION_PATCH);
  CHECK(strcmp(sli_version_string(), want) == 0);
  CHECK(strcmp(sli_err_name(SLI_E_EXPIRED), "SLI_E_EXPIRED") == 0);
  CHECK(strcmp(sli_err_name(-1999), "unknown error") == 0);
  CHECK(strcmp(sli_strerror(12345), "unknown error") == 0);
  CHECK_EQ(sli_error_category(SLI_WANT_READ), SLI_ECAT_BLOCKED);
  CHECK_EQ(sli_error_category(SLI_E_TRUNCATED), SLI_ECAT_CLOSED);
  CHECK_EQ(sli_error_category(SLI_E_TIMEOUT), SLI_ECAT_IO);
  CHECK_EQ(sli_error_category(SLI_E_ALERT), SLI_ECAT_ALERT);
  CHECK_EQ(sli_error_category(SLI_E_VERSION), SLI_ECAT_PROTO);
  CHECK_EQ(sli_error_category(SLI_E_HOSTNAME), SLI_ECAT_VERIFY);
  CHECK_EQ(sli_error_category(SLI_E_PEM), SLI_ECAT_CONFIG);
  CHECK_EQ(sli_error_category(SLI_E_INVAL), SLI_ECAT_USAGE);
  CHECK_EQ(sli_error_category(SLI_E_NOMEM), SLI_ECAT_INTERNAL);
  CHECK_EQ(sli_error_category(5), SLI_ECAT_OK);
  sli_config_free(NULL);
  sli_ctx_free(NULL);
  sli_conn_free(NULL);
  sli_cert_free(NULL);
  sli_free(NULL, 0);
  CHECK_EQ(sli_init(), 0);
  CHECK_EQ(sli_init(), 0);
  return 0;
}

static int test_config_errors(void) {
  sli_config *cfg = sli_config_new();
  CHECK(cfg);
  CHECK(sli_config_error(cfg) == NULL);
  CHECK_EQ(sli_config_set_policy(cfg, "bogus"), SLI_E_INVAL);
  CHECK(strstr(sli_config_error(cfg), "bogus"));
  CHECK_EQ(sli_config_set_policy(cfg, "modern"), 0);
  CHECK(sli_config_error(cfg) == NULL); /* cleared by the next call */
  CHECK_EQ(sli_config_set_ciphers(cfg, "ECDHE-RSA-AES128-GCM-SHA256:RC4-SHA"), SLI_E_CIPHERS);
  CHECK(strstr(sli_config_error(cfg), "RC4-SHA"));
  CHECK_EQ(sli_config_set_min_version(cfg, 0x0301), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_alpn(cfg, "h2,,x"), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_client_cert(cfg, 7), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_option(cfg, "SLI_NOPE", "1"), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_option(cfg, "SLI_CLIENT_CERT", "sometimes"), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_keypair_file(cfg, "/nonexistent/c.pem", "/nonexistent/k.pem", NULL), SLI_E_FILE);
  CHECK(strstr(sli_config_error(cfg), "/nonexistent/c.pem"));
  CHECK(strcmp(sli_config_error(cfg), sli_last_error()) == 0); /* the same message in both */
  CHECK_EQ(sli_config_set_keypair_mem(cfg, "junk", 4, "junk", 4, NULL), SLI_E_PEM);
  CHECK_EQ(sli_config_set_ca_mem(cfg, "\x30\x82\x01\x00", 4), SLI_E_NOT_PEM);
  sli_ctx *ctx = (sli_ctx *)1;
  CHECK_EQ(sli_ctx_new_client(&ctx, cfg, 0x80), SLI_E_INVAL);
  CHECK(ctx == NULL && strstr(sli_last_error(), "flags 0x80"));
  sli_conn *c = (sli_conn *)1;
  CHECK_EQ(sli_conn_new_fd(&c, NULL, 0, NULL, 0), SLI_E_INVAL); /* no conn: the thread's message */
  CHECK(c == NULL && strstr(sli_last_error(), "sli_conn_new_fd: ctx is NULL"));
  /* client cert required without a CA: refused at context time, explained */
  sli_config *s = sli_config_new();
  CHECK_EQ(sli_config_set_client_cert(s, SLI_CLIENT_CERT_REQUIRED), 0);
  CHECK_EQ(sli_ctx_new_server(&ctx, s, 0), SLI_E_CONFIG);
  CHECK(strstr(sli_config_error(s), "no CA"));
  sli_config_free(s);
  sli_config_free(cfg);
  return 0;
}

static int test_handshake_and_info(void) {
  pair p;
  if (make_pair(&p, 4096, "localhost")) return 1;
  int src;
  CHECK_EQ(handshake_both(&p, &src), 0);
  CHECK_EQ(src, 0);
  CHECK(sli_conn_is_secured(p.client) && sli_conn_is_secured(p.server));
  CHECK(strcmp(sli_conn_version(p.client), "TLSv1.3") == 0);
  CHECK(strncmp(sli_conn_cipher(p.client), "TLS_", 4) == 0);
  CHECK_EQ(sli_conn_verify_result(p.client), 0);
  CHECK_EQ(sli_conn_verify_result(p.server), SLI_E_NO_PEER_CERT);
  CHECK(strcmp(sli_conn_servername(p.server), "localhost") == 0);
  const sli_cert *pc = sli_conn_peer_cert(p.client);
  CHECK(pc && strstr(sli_cert_subject(pc), "sli default identity"));
  CHECK(sli_cert_san_count(pc) >= 3);
  CHECK(strcmp(sli_cert_san(pc, 0), "DNS:localhost") == 0);
  CHECK(sli_cert_san(pc, 99) == NULL);
  CHECK(sli_cert_not_before(pc) < sli_cert_not_after(pc));
  CHECK(strlen(sli_cert_fingerprint_sha256(pc)) == 95);
  CHECK(strstr(sli_cert_chain_pem(pc), "-----BEGIN CERTIFICATE-----"));
  CHECK(sli_conn_alpn(p.client) == NULL);
  free_pair(&p);
  return 0;
}

/* 1 MiB each way through 100-byte pipes: every WANT_READ / WANT_WRITE path runs. */
static int test_bulk_tiny_buffers(void) {
  pair p;
  if (make_pair(&p, 100, "localhost")) return 1;
  CHECK_EQ(handshake_both(&p, NULL), 0);
  size_t total = 1 << 20, sent = 0, got = 0;
  unsigned char *src = malloc(total), *dst = malloc(total);
  for (size_t i = 0; i < total; i++) src[i] = (unsigned char)(i * 31 + 7);
  int spins = 0;
  while (got < total && spins++ < 10000000) {
    if (sent < total) {
      ssize_t w = sli_conn_write(p.client, src + sent, total - sent);
      if (w > 0) sent += (size_t)w;
      else CHECK(w == SLI_WANT_WRITE || w == SLI_WANT_READ);
    }
    ssize_t r = sli_conn_read(p.server, dst + got, 777);
    if (r > 0) got += (size_t)r;
    else CHECK(r == SLI_WANT_READ || r == SLI_WANT_WRITE);
  }
  CHECK_EQ(got, total);
  CHECK(memcmp(src, dst, total) == 0);
  free(src);
  free(dst);
  free_pair(&p);
  return 0;
}

static int test_pending_and_want(void) {
  pair p;
  if (make_pair(&p, 4096, "localhost")) return 1;
  CHECK_EQ(handshake_both(&p, NULL), 0);
  CHECK_EQ(sli_conn_write(p.server, "abcdef", 6), 6);
  char c;
  ssize_t r;
  do r = sli_conn_read(p.client, &c, 1); while (r == SLI_WANT_READ);
  CHECK_EQ(r, 1);
  CHECK_EQ(sli_conn_pending(p.client), 5);
  char rest[8];
  CHECK_EQ(sli_conn_read(p.client, rest, 0), SLI_E_INVAL); /* nothing asked: refused, nothing lost */
  CHECK_EQ(sli_conn_pending(p.client), 5);
  CHECK_EQ(sli_conn_read(p.client, rest, sizeof(rest)), 5);
  CHECK_EQ(sli_conn_read(p.client, rest, sizeof(rest)), SLI_WANT_READ);
  CHECK_EQ(sli_conn_want(p.client), SLI_WANT_READ);
  free_pair(&p);
  return 0;
}

static int test_clean_close_vs_truncation(void) {
  pair p;
  if (make_pair(&p, 4096, "localhost")) return 1;
  CHECK_EQ(handshake_both(&p, NULL), 0);
  CHECK_EQ(sli_conn_close(p.server), 0);
  char buf[16];
  ssize_t r;
  do r = sli_conn_read(p.client, buf, sizeof(buf)); while (r == SLI_WANT_READ);
  CHECK_EQ(r, 0);
  free_pair(&p);

  if (make_pair(&p, 4096, "localhost")) return 1;
  CHECK_EQ(handshake_both(&p, NULL), 0);
  do r = sli_conn_read(p.client, buf, sizeof(buf)); while (0);
  CHECK_EQ(r, SLI_WANT_READ);
  p.b2a.closed = 1; /* the server's transport ends without close_notify */
  r = sli_conn_read(p.client, buf, sizeof(buf));
  CHECK_EQ(r, SLI_E_TRUNCATED);
  CHECK(strstr(sli_conn_error(p.client), "close_notify"));
  CHECK_EQ(sli_conn_read(p.client, buf, sizeof(buf)), SLI_E_TRUNCATED); /* sticky */
  free_pair(&p);
  return 0;
}

/* Half-close both ways (RFC 8446 §6.1): after our close_notify the peer's data still arrives (419
 * bytes sent after it are all read, then 0); after the peer's close_notify we can still reply. */
static int test_half_close(void) {
  pair p;
  if (make_pair(&p, 4096, "localhost")) return 1;
  CHECK_EQ(handshake_both(&p, NULL), 0);
  char buf[1024];
  ssize_t r;
  do r = sli_conn_read(p.client, buf, sizeof(buf)); while (0); /* take the tickets */
  CHECK_EQ(sli_conn_close(p.client), 0);          /* client: request sent, half-close */
  CHECK_EQ(sli_conn_write(p.client, "x", 1), SLI_E_CLOSED);
  do r = sli_conn_read(p.server, buf, sizeof(buf)); while (r == SLI_WANT_READ);
  CHECK_EQ(r, 0);                                  /* the server sees the client's close_notify */
  char reply[419];
  memset(reply, 'r', sizeof(reply));
  CHECK_EQ(sli_conn_write(p.server, reply, sizeof(reply)), (ssize_t)sizeof(reply));
  CHECK_EQ(sli_conn_read(p.server, buf, sizeof(buf)), 0); /* still EOF, not an error */
  CHECK_EQ(sli_conn_close(p.server), 0);
  size_t got = 0;
  for (int i = 0; i < 100; i++) {
    r = sli_conn_read(p.client, buf + got, sizeof(buf) - got);
    if (r == SLI_WANT_READ) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  CHECK_EQ(r, 0);
  CHECK_EQ(got, sizeof(reply));
  CHECK(memcmp(buf, reply, sizeof(reply)) == 0);
  free_pair(&p);
  return 0;
}

static int test_hostname_mismatch(void) {
  pair p;
  if (make_pair(&p, 4096, "db.example.com")) return 1;
  int src;
  CHECK_EQ(handshake_both(&p, &src), SLI_E_HOSTNAME);
  CHECK_EQ(sli_conn_verify_result(p.client), SLI_E_HOSTNAME);
  CHECK(strstr(sli_conn_error(p.client), "host"));
  CHECK(src < 0 && src != SLI_WANT_READ); /* the server saw the alert */
  CHECK(!sli_conn_is_secured(p.client));
  free_pair(&p);
  /* A verifying client without a name is a usage error, not a silent skip. */
  sli_conn *c = NULL;
  end e = {0};
  CHECK_EQ(sli_conn_new_cbs(&c, client_ctx, mem_read, mem_write, &e, NULL, 0), SLI_E_INVAL);
  CHECK_EQ(sli_conn_new_cbs(&c, server_ctx, mem_read, mem_write, &e, "x", 0), SLI_E_INVAL);
  return 0;
}

static int test_untrusted_server(void) {
  sli_config *cfg = sli_config_new(); /* system CAs only: the default identity is unknown */
  sli_ctx *ctx;
  CHECK_EQ(sli_ctx_new_client(&ctx, cfg, 0), 0);
  sli_ctx *saved = client_ctx;
  client_ctx = ctx;
  pair p;
  int r = make_pair(&p, 4096, "localhost");
  client_ctx = saved;
  if (r) return 1;
  int code = handshake_both(&p, NULL);
  CHECK(code == SLI_E_SELF_SIGNED || code == SLI_E_UNTRUSTED);
  CHECK_EQ(sli_error_category(code), SLI_ECAT_VERIFY);
  free_pair(&p);
  sli_ctx_free(ctx);
  sli_config_free(cfg);
  return 0;
}

static int test_modern_vs_tls12_only(void) {
  sli_config *cfg = sli_config_new();
  sli_ctx *ctx;
  CHECK_EQ(sli_config_set_ca_file(cfg, ca_path), 0);
  CHECK_EQ(sli_config_set_max_version(cfg, SLI_TLS1_2), 0);
  CHECK_EQ(sli_ctx_new_client(&ctx, cfg, 0), 0);
  sli_config *scfg = sli_config_new();
  sli_ctx *sctx;
  CHECK_EQ(sli_config_set_policy(scfg, "modern"), 0);
  CHECK_EQ(sli_ctx_new_server(&sctx, scfg, 0), 0);
  sli_ctx *sc = client_ctx, *ss = server_ctx;
  client_ctx = ctx;
  server_ctx = sctx;
  pair p;
  int r = make_pair(&p, 4096, "localhost");
  client_ctx = sc;
  server_ctx = ss;
  if (r) return 1;
  int src;
  int code = handshake_both(&p, &src);
  CHECK_EQ(src, SLI_E_VERSION);
  CHECK(code == SLI_E_VERSION || code == SLI_E_ALERT);
  free_pair(&p);
  sli_ctx_free(ctx);
  sli_ctx_free(sctx);
  sli_config_free(cfg);
  sli_config_free(scfg);
  return 0;
}

static int test_socketpair_nonblocking_fd(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  sli_conn *c, *s;
  CHECK_EQ(sli_conn_new_fd(&c, client_ctx, sv[0], "localhost", 0), 0);
  CHECK_EQ(sli_conn_new_fd(&s, server_ctx, sv[1], NULL, 0), 0);
  int rc = SLI_WANT_READ, src = SLI_WANT_READ;
  for (int i = 0; i < 100 && (rc || src); i++) {
    if (rc) rc = sli_conn_handshake(c);
    if (src) src = sli_conn_handshake(s);
    CHECK(rc == 0 || rc == SLI_WANT_READ);
    CHECK(src == 0 || src == SLI_WANT_READ);
  }
  CHECK_EQ(rc, 0);
  CHECK_EQ(sli_conn_write(c, "over fds", 8), 8);
  char buf[16];
  CHECK_EQ(sli_conn_read(s, buf, sizeof(buf)), 8);
  CHECK(memcmp(buf, "over fds", 8) == 0);
  CHECK_EQ(sli_conn_read(c, buf, sizeof(buf)), SLI_WANT_READ); /* takes the session tickets */
  close(sv[0]); /* EOF without close_notify (nothing left unread, so no reset) */
  CHECK_EQ(sli_conn_read(s, buf, sizeof(buf)), SLI_E_TRUNCATED);
  sli_conn_free(c);
  sli_conn_free(s);
  close(sv[1]);
  return 0;
}

int main(void) {
  char dir[] = "/tmp/sli-api-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  setenv("SLI_STATE_DIR", dir, 1);
  if (sli_default_identity(ca_path, key_path, sizeof(ca_path)) != 0) return 1;
  sli_config *scfg = sli_config_new(), *ccfg = sli_config_new();
  if (sli_ctx_new_server(&server_ctx, scfg, 0) || sli_config_set_ca_file(ccfg, ca_path) ||
      sli_ctx_new_client(&client_ctx, ccfg, 0)) {
    fprintf(stderr, "setup: %s %s\n", sli_config_error(scfg), sli_config_error(ccfg));
    return 1;
  }
  run("codes_and_names", test_codes_and_names);
  run("config_errors", test_config_errors);
  run("handshake_and_info", test_handshake_and_info);
  run("bulk_tiny_buffers", test_bulk_tiny_buffers);
  run("pending_and_want", test_pending_and_want);
  run("clean_close_vs_truncation", test_clean_close_vs_truncation);
  run("half_close", test_half_close);
  run("hostname_mismatch", test_hostname_mismatch);
  run("untrusted_server", test_untrusted_server);
  run("modern_vs_tls12_only", test_modern_vs_tls12_only);
  run("socketpair_nonblocking_fd", test_socketpair_nonblocking_fd);
  sli_ctx_free(server_ctx);
  sli_ctx_free(client_ctx);
  sli_config_free(scfg);
  sli_config_free(ccfg);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd)) {}
  return finish();
}
