/* test_callbacks.c — the callback transport's contract, black-box through libsli.so.1: a read
 * callback that returns more bytes than it was asked for, or a write callback that claims more than
 * it was given, fails that connection with SLI_E_INVAL and a message — the process lives on (such a
 * callback got the host killed with SIGABRT inside BoringSSL). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

static char state_dir[] = "/tmp/sli-callbacks-XXXXXX";

/* A liar: reads the socket, then claims `extra` bytes more than the buffer holds; or, writing,
 * claims `extra` bytes more than it was given. */
typedef struct {
  int fd;
  size_t extra_read, extra_write;
} liar;

static ssize_t liar_read(sli_conn *c, void *buf, size_t len, void *arg) {
  liar *l = arg;
  ssize_t r = recv(l->fd, buf, len, 0);
  if (r < 0) return errno == EAGAIN ? SLI_WANT_READ : SLI_E_IO;
  return r > 0 && l->extra_read ? (ssize_t)(len + l->extra_read) : r;
}

static ssize_t liar_write(sli_conn *c, const void *buf, size_t len, void *arg) {
  liar *l = arg;
  ssize_t w = send(l->fd, buf, len, MSG_NOSIGNAL);
  if (w < 0) return errno == EAGAIN ? SLI_WANT_WRITE : SLI_E_IO;
  return w > 0 && l->extra_write ? (ssize_t)(len + l->extra_write) : w;
}

/* run_case: a client over the lying callbacks against a non-blocking fd server on the other end
 * of a socketpair, both driven in turns; the client must fail with SLI_E_INVAL and `want_msg`. */
static int run_case(size_t extra_read, size_t extra_write, const char *want_msg) {
  sli_config *scfg = sli_config_new(), *ccfg = sli_config_new();
  sli_ctx *server = NULL, *client = NULL;
  CHECK(scfg && ccfg);
  CHECK_EQ(sli_ctx_new_server(&server, scfg, 0), 0); /* the default identity */
  CHECK_EQ(sli_config_insecure_noverifycert(ccfg), 0);
  CHECK_EQ(sli_ctx_new_client(&client, ccfg, 0), 0);
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
  liar l = {fds[1], extra_read, extra_write};
  sli_conn *s = NULL, *c = NULL;
  CHECK_EQ(sli_conn_new_fd(&s, server, fds[0], NULL, 0), 0);
  CHECK_EQ(sli_conn_new_cbs(&c, client, liar_read, liar_write, &l, "localhost", 0), 0);
  int rc = SLI_WANT_READ, src = SLI_WANT_READ;
  for (int i = 0; i < 200 && (rc == SLI_WANT_READ || rc == SLI_WANT_WRITE); i++) {
    rc = sli_conn_handshake(c);
    if (src == SLI_WANT_READ || src == SLI_WANT_WRITE) src = sli_conn_handshake(s);
  }
  CHECK_EQ(rc, SLI_E_INVAL);
  CHECK(sli_conn_error(c) && strstr(sli_conn_error(c), want_msg));
  /* the failure is sticky: the connection stays failed */
  char buf[16];
  CHECK_EQ(sli_conn_read(c, buf, sizeof(buf)), SLI_E_INVAL);
  sli_conn_free(c);
  sli_conn_free(s);
  close(fds[0]);
  close(fds[1]);
  sli_ctx_free(server);
  sli_ctx_free(client);
  sli_config_free(scfg);
  sli_config_free(ccfg);
  return 0;
}

static int test_read_returns_more_than_asked(void) {
  return run_case(100, 0, "read callback returned");
}

static int test_write_claims_more_than_given(void) {
  return run_case(0, 1, "write callback returned");
}

int main(void) {
  if (!mkdtemp(state_dir)) return 1;
  setenv("SLI_STATE_DIR", state_dir, 1);
  run("read_returns_more_than_asked", test_read_returns_more_than_asked);
  run("write_claims_more_than_given", test_write_claims_more_than_given);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
  if (system(cmd)) {}
  return finish();
}
