/* test_stats.c — a context's counters (sli_ctx_stats): handshakes completed and resumed, failures by
 * category, plaintext bytes each way, live connections; a reload keeps them; a caller's smaller
 * struct gets the fields it knows. Black-box through libsli.so.1, over socketpairs. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

static char state_dir[] = "/tmp/sli-stats-XXXXXX";

static void *serve(void *arg) {
  sli_conn *s = arg;
  char buf[64];
  if (sli_conn_handshake(s) == 0) {
    ssize_t n = sli_conn_read(s, buf, sizeof(buf));
    if (n > 0) sli_conn_write(s, buf, (size_t)n);
    sli_conn_close(s);
  }
  return NULL;
}

/* one connection: the client sends `n` bytes, the server echoes them; 0 or the client's error */
static int exchange(sli_ctx *server, sli_ctx *client, const char *name, size_t n) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) return SLI_E_IO;
  sli_conn *s = NULL, *c = NULL;
  pthread_t th;
  if (sli_conn_new_fd(&s, server, fds[0], NULL, 0) || pthread_create(&th, NULL, serve, s))
    return SLI_E_INTERNAL;
  char buf[64];
  memset(buf, 'x', sizeof(buf));
  int rc = sli_conn_new_fd(&c, client, fds[1], name, 0);
  if (!rc) rc = sli_conn_handshake(c);
  if (!rc && sli_conn_write(c, buf, n) != (ssize_t)n) rc = SLI_E_IO;
  if (!rc && sli_conn_read(c, buf, sizeof(buf)) != (ssize_t)n) rc = SLI_E_IO;
  sli_conn_close(c);
  sli_conn_free(c);
  shutdown(fds[1], SHUT_RDWR);
  pthread_join(th, NULL);
  sli_conn_free(s);
  close(fds[0]);
  close(fds[1]);
  return rc;
}

static int test_counters(void) {
  sli_config *scfg = sli_config_new(), *ccfg = sli_config_new();
  char ca[4096], key[4096];
  CHECK(scfg && ccfg);
  CHECK_EQ(sli_default_identity(ca, key, sizeof(ca)), 0);
  CHECK_EQ(sli_config_set_ca_file(ccfg, ca), 0);
  sli_ctx *server = NULL, *client = NULL;
  CHECK_EQ(sli_ctx_new_server(&server, scfg, 0), 0);
  CHECK_EQ(sli_ctx_new_client(&client, ccfg, 0), 0);
  for (int i = 0; i < 3; i++) CHECK_EQ(exchange(server, client, "localhost", 10), 0);
  CHECK_EQ(exchange(server, client, "wrong.example", 10), SLI_E_HOSTNAME);
  sli_stats s, c;
  CHECK_EQ(sli_ctx_stats(server, &s, sizeof(s)), 0);
  CHECK_EQ(sli_ctx_stats(client, &c, sizeof(c)), 0);
  CHECK_EQ(s.handshakes, 3);
  CHECK_EQ(c.handshakes, 3);
  CHECK_EQ(c.resumed, 2); /* the 2nd and 3rd resumed */
  CHECK_EQ(s.resumed, 2);
  CHECK_EQ(c.failed[SLI_ECAT_VERIFY], 1); /* the client refused the name */
  CHECK_EQ(s.failed[SLI_ECAT_ALERT], 1);  /* the server got its alert */
  CHECK_EQ(c.bytes_out, 30);
  CHECK_EQ(c.bytes_in, 30);
  CHECK_EQ(s.bytes_in, 30);
  CHECK_EQ(s.bytes_out, 30);
  CHECK_EQ(s.live, 0);
  /* live connections, and a reload keeps the counters */
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  sli_conn *open_conn = NULL;
  CHECK_EQ(sli_conn_new_fd(&open_conn, server, fds[0], NULL, 0), 0);
  CHECK_EQ(sli_ctx_reload(server, scfg, 0), 0);
  CHECK_EQ(sli_ctx_stats(server, &s, sizeof(s)), 0);
  CHECK_EQ(s.live, 1);
  CHECK_EQ(s.handshakes, 3);
  sli_conn_free(open_conn);
  close(fds[0]);
  close(fds[1]);
  /* an older, smaller struct: the fields it has, nothing written past it */
  uint64_t small[3] = {0, 0, 0xdeadbeef};
  CHECK_EQ(sli_ctx_stats(server, (sli_stats *)small, 2 * sizeof(uint64_t)), 0);
  CHECK(small[0] == 3 && small[1] == 2 && small[2] == 0xdeadbeef);
  CHECK_EQ(sli_ctx_stats(NULL, &s, sizeof(s)), SLI_E_INVAL);
  sli_ctx_free(server);
  sli_ctx_free(client);
  sli_config_free(scfg);
  sli_config_free(ccfg);
  return 0;
}

int main(void) {
  if (!mkdtemp(state_dir)) return 1;
  setenv("SLI_STATE_DIR", state_dir, 1);
  run("counters", test_counters);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
  if (system(cmd)) {}
  return finish();
}
