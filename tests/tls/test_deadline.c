/* test_deadline.c — the handshake's clock starts when the connection is made, and
 * sli_conn_deadline_ms tells a host that waits on readiness when to wake: a silent peer makes the
 * first call after the deadline fail with SLI_E_TIMEOUT (it used to start the clock instead). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

static char state_dir[] = "/tmp/sli-deadline-XXXXXX";

static int test_clock_starts_at_creation(void) {
  sli_config *cfg = sli_config_new();
  sli_ctx *server = NULL;
  CHECK(cfg);
  CHECK_EQ(sli_config_set_handshake_timeout(cfg, 300), 0);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
  sli_conn *c = NULL;
  CHECK_EQ(sli_conn_new_fd(&c, server, fds[0], NULL, 0), 0);
  int64_t left = sli_conn_deadline_ms(c);
  CHECK(left > 200 && left <= 300);
  usleep(150 * 1000);
  left = sli_conn_deadline_ms(c);
  CHECK(left > 0 && left <= 160);
  usleep((useconds_t)(left + 20) * 1000);
  CHECK_EQ(sli_conn_deadline_ms(c), 0);
  /* the host's timer fired: its first call on the connection fails */
  CHECK_EQ(sli_conn_handshake(c), SLI_E_TIMEOUT);
  CHECK(strstr(sli_conn_error(c), "300 ms"));
  CHECK_EQ(sli_conn_deadline_ms(c), -1); /* failed: no deadline applies any more */
  sli_conn_free(c);
  close(fds[0]);
  close(fds[1]);
  sli_ctx_free(server);
  sli_config_free(cfg);
  return 0;
}

static int test_no_deadline(void) {
  sli_config *cfg = sli_config_new();
  sli_ctx *server = NULL;
  CHECK(cfg);
  CHECK_EQ(sli_config_set_handshake_timeout(cfg, 0), 0);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
  sli_conn *c = NULL;
  CHECK_EQ(sli_conn_new_fd(&c, server, fds[0], NULL, 0), 0);
  CHECK_EQ(sli_conn_deadline_ms(c), -1);
  CHECK_EQ(sli_conn_handshake(c), SLI_WANT_READ);
  CHECK_EQ(sli_conn_deadline_ms(NULL), -1);
  sli_conn_free(c);
  close(fds[0]);
  close(fds[1]);
  sli_ctx_free(server);
  sli_config_free(cfg);
  return 0;
}

int main(void) {
  if (!mkdtemp(state_dir)) return 1;
  setenv("SLI_STATE_DIR", state_dir, 1);
  run("clock_starts_at_creation", test_clock_starts_at_creation);
  run("no_deadline", test_no_deadline);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
  if (system(cmd)) {}
  return finish();
}
