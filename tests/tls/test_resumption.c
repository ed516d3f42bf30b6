/* test_resumption.c — a client context resumes by default (it never did: every connection was a
 * full handshake): its second connection to a server resumes, with TLS 1.3 tickets and TLS 1.2
 * sessions; a session is kept per server name; a context with resumption off never resumes;
 * sli_conn_session_export / sli_conn_session_import carry a session to another client context (as
 * to another process); a server context's own ticket keys survive its reloads. Black-box through libsli.so.1, against an sli server over socketpairs.
 *   test_resumption                       the cases above
 *   test_resumption PORT CAFILE [1.2]     a client to 127.0.0.1:PORT ("localhost"), three
 *                                         connections on one context: prints "resumed 0 1 1" */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

static char state_dir[] = "/tmp/sli-resume-XXXXXX";
static sli_ctx *server;

static void *serve(void *arg) {
  sli_conn *s = arg;
  if (sli_conn_handshake(s) == 0) {
    char buf[16];
    ssize_t n = sli_conn_read(s, buf, sizeof(buf));
    if (n > 0) sli_conn_write(s, buf, (size_t)n); /* a write: TLS 1.3 tickets go out with it */
    sli_conn_close(s);
  }
  return NULL;
}

/* exchange: one connection of `client` to the in-process server (name `name`); what it reports:
 * 1 resumed, 0 full handshake, -1 failed. `import`/`export` carry a session in and out. */
static int exchange(sli_ctx *client, const char *name, const uint8_t *import, size_t ilen,
                    uint8_t **export, size_t *elen) {
  int fds[2], resumed = -1;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) return -1;
  sli_conn *s = NULL, *c = NULL;
  pthread_t th;
  if (sli_conn_new_fd(&s, server, fds[0], NULL, 0) || pthread_create(&th, NULL, serve, s)) return -1;
  char buf[16];
  if (!sli_conn_new_fd(&c, client, fds[1], name, 0) &&
      (!import || !sli_conn_session_import(c, import, ilen)) && !sli_conn_handshake(c) &&
      sli_conn_write(c, "ping", 4) == 4 && sli_conn_read(c, buf, sizeof(buf)) == 4) {
    resumed = sli_conn_is_resumed(c);
    if (export && sli_conn_session_export(c, export, elen)) resumed = -1;
  }
  sli_conn_close(c);
  sli_conn_free(c);
  shutdown(fds[1], SHUT_RDWR);
  pthread_join(th, NULL);
  sli_conn_free(s);
  close(fds[0]);
  close(fds[1]);
  return resumed;
}

static sli_ctx *client_ctx(int max_version, int resumption) {
  sli_config *cfg = sli_config_new();
  char ca[4096], key[4096];
  sli_ctx *c = NULL;
  if (cfg && !sli_default_identity(ca, key, sizeof(ca)) && !sli_config_set_ca_file(cfg, ca) &&
      (!max_version || !sli_config_set_max_version(cfg, max_version)) &&
      !sli_config_set_session_resumption(cfg, resumption))
    sli_ctx_new_client(&c, cfg, 0);
  sli_config_free(cfg);
  return c;
}

static int resumes(int max_version) {
  sli_ctx *client = client_ctx(max_version, 1);
  CHECK(client);
  CHECK_EQ(exchange(client, "localhost", NULL, 0, NULL, NULL), 0);
  CHECK_EQ(exchange(client, "localhost", NULL, 0, NULL, NULL), 1);
  CHECK_EQ(exchange(client, "localhost", NULL, 0, NULL, NULL), 1);
  /* another server name: its own, not yet kept */
  CHECK_EQ(exchange(client, "127.0.0.1", NULL, 0, NULL, NULL), 0);
  CHECK_EQ(exchange(client, "127.0.0.1", NULL, 0, NULL, NULL), 1);
  sli_ctx_free(client);
  return 0;
}

static int test_tls13_tickets(void) { return resumes(0); }

static int test_tls12_sessions(void) { return resumes(SLI_TLS1_2); }

static int test_off_never_resumes(void) {
  sli_ctx *client = client_ctx(0, 0);
  CHECK(client);
  for (int i = 0; i < 3; i++) CHECK_EQ(exchange(client, "localhost", NULL, 0, NULL, NULL), 0);
  sli_ctx_free(client);
  return 0;
}

static int test_export_import(void) {
  sli_ctx *a = client_ctx(0, 1), *b = client_ctx(0, 1);
  CHECK(a && b);
  uint8_t *sess = NULL;
  size_t len = 0;
  CHECK_EQ(exchange(a, "localhost", NULL, 0, &sess, &len), 0);
  CHECK(sess && len > 32);
  /* another context, as another process would be: resumes with the imported session */
  CHECK_EQ(exchange(b, "localhost", sess, len, NULL, NULL), 1);
  /* garbage is refused, not a crash */
  sli_conn *c = NULL;
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  CHECK_EQ(sli_conn_new_fd(&c, b, fds[1], "localhost", 0), 0);
  CHECK_EQ(sli_conn_session_import(c, (const uint8_t *)"not a session", 13), SLI_E_INVAL);
  uint8_t *none = NULL;
  size_t nlen = 0;
  CHECK_EQ(sli_conn_session_export(c, &none, &nlen), SLI_E_INVAL); /* no handshake yet */
  sli_conn_free(c);
  close(fds[0]);
  close(fds[1]);
  sli_free(sess, len);
  sli_ctx_free(a);
  sli_ctx_free(b);
  return 0;
}

/* A server context without a ticket-key file keeps its own keys across reloads: a client resumes
 * after the reload (every resumable session was lost); another server context has its own keys. */
static int test_server_reload_keeps_tickets(void) {
  sli_config *cfg = sli_config_new();
  sli_ctx *first = NULL, *other = NULL, *saved = server;
  sli_ctx *client = client_ctx(0, 1);
  CHECK(cfg && client);
  CHECK_EQ(sli_ctx_new_server(&first, cfg, 0), 0);
  CHECK_EQ(sli_ctx_new_server(&other, cfg, 0), 0);
  server = first;
  int before = exchange(client, "localhost", NULL, 0, NULL, NULL);
  int reloaded = sli_ctx_reload(first, cfg, 0);
  int after = exchange(client, "localhost", NULL, 0, NULL, NULL);
  server = other;
  int elsewhere = exchange(client, "localhost", NULL, 0, NULL, NULL);
  server = saved;
  CHECK_EQ(before, 0);
  CHECK_EQ(reloaded, 0);
  CHECK_EQ(after, 1);
  CHECK_EQ(elsewhere, 0);
  sli_ctx_free(first);
  sli_ctx_free(other);
  sli_ctx_free(client);
  sli_config_free(cfg);
  return 0;
}

/* probe: three connections of one client context to a real server (openssl s_server -rev). */
static int probe(int port, const char *ca, int tls12) {
  sli_config *cfg = sli_config_new();
  sli_ctx *client = NULL;
  if (!cfg || sli_config_set_ca_file(cfg, ca) ||
      (tls12 && sli_config_set_max_version(cfg, SLI_TLS1_2)) || sli_ctx_new_client(&client, cfg, 0))
    return 1;
  printf("resumed");
  for (int i = 0; i < 3; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    sli_conn *c = NULL;
    char buf[16];
    int r = -1;
    if (!connect(fd, (struct sockaddr *)&a, sizeof(a)) &&
        !sli_conn_new_fd(&c, client, fd, "localhost", 0) && !sli_conn_handshake(c) &&
        sli_conn_write(c, "ping\n", 5) == 5 && sli_conn_read(c, buf, sizeof(buf)) > 0)
      r = sli_conn_is_resumed(c);
    printf(" %d", r);
    sli_conn_close(c);
    sli_conn_free(c);
    close(fd);
  }
  printf("\n");
  sli_ctx_free(client);
  sli_config_free(cfg);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3) return probe(atoi(argv[1]), argv[2], argc > 3 && !strcmp(argv[3], "1.2"));
  if (!mkdtemp(state_dir)) return 1;
  setenv("SLI_STATE_DIR", state_dir, 1);
  sli_config *scfg = sli_config_new();
  if (!scfg || sli_ctx_new_server(&server, scfg, 0)) return 1;
  run("tls13_tickets", test_tls13_tickets);
  run("tls12_sessions", test_tls12_sessions);
  run("off_never_resumes", test_off_never_resumes);
  run("export_import", test_export_import);
  run("server_reload_keeps_tickets", test_server_reload_keeps_tickets);
  sli_ctx_free(server);
  sli_config_free(scfg);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
  if (system(cmd)) {}
  return finish();
}
