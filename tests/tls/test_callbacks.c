/* test_callbacks.c — the callback transport's contract, black-box through libsli.so.1: a read
 * callback that returns more bytes than it was asked for, or a write callback that claims more than
 * it was given, fails that connection with SLI_E_INVAL and a message — the process lives on (such a
 * callback got the host killed with SIGABRT inside BoringSSL); a callback's errno (returned as
 * -errno, or set with SLI_E_IO) reaches sli_conn_sys_error and the message; the peer's address the
 * host gives, or the fd transport finds, is told by sli_conn_peer_addr and named in messages. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

/* A callback that fails with -errno, or sets errno and returns SLI_E_IO: the connection fails with
 * SLI_E_IO, sli_conn_sys_error tells the errno, the message names it and the peer the host gave. */
typedef struct {
  int how; /* 1: return -ECONNRESET; 2: errno = EPIPE, return SLI_E_IO */
} failing;

static ssize_t failing_read(sli_conn *c, void *buf, size_t len, void *arg) {
  failing *f = arg;
  if (f->how == 1) return -ECONNRESET;
  errno = EPIPE;
  return SLI_E_IO;
}

static ssize_t failing_write(sli_conn *c, const void *buf, size_t len, void *arg) {
  return failing_read(c, NULL, len, arg);
}

static int failure_case(int how, int want_errno) {
  sli_config *cfg = sli_config_new();
  sli_ctx *client = NULL;
  CHECK(cfg);
  CHECK_EQ(sli_ctx_new_client(&client, cfg, 0), 0);
  failing f = {how};
  sli_conn *c = NULL;
  CHECK_EQ(sli_conn_new_cbs(&c, client, failing_read, failing_write, &f, "localhost", 0), 0);
  CHECK(sli_conn_peer_addr(c) == NULL);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(4433)};
  inet_pton(AF_INET, "192.0.2.7", &a.sin_addr);
  CHECK_EQ(sli_conn_set_peer_addr(c, (struct sockaddr *)&a, sizeof(a)), 0);
  CHECK(strcmp(sli_conn_peer_addr(c), "192.0.2.7:4433") == 0);
  CHECK_EQ(sli_conn_handshake(c), SLI_E_IO);
  CHECK_EQ(sli_conn_sys_error(c), want_errno);
  CHECK(strstr(sli_conn_error(c), strerror(want_errno)));
  CHECK(strstr(sli_conn_error(c), "[peer 192.0.2.7:4433]"));
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
  inet_pton(AF_INET6, "2001:db8::7", &v6.sin6_addr);
  CHECK_EQ(sli_conn_set_peer_addr(c, (struct sockaddr *)&v6, sizeof(v6)), 0);
  CHECK(strcmp(sli_conn_peer_addr(c), "[2001:db8::7]:443") == 0);
  struct sockaddr bad = {.sa_family = AF_UNIX};
  CHECK_EQ(sli_conn_set_peer_addr(c, &bad, sizeof(bad)), SLI_E_INVAL);
  sli_conn_free(c);
  sli_ctx_free(client);
  sli_config_free(cfg);
  return 0;
}

static int test_callback_returns_minus_errno(void) { return failure_case(1, ECONNRESET); }

static int test_callback_sets_errno(void) { return failure_case(2, EPIPE); }

/* The fd transport finds the peer's address itself. */
static int test_fd_transport_knows_its_peer(void) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  CHECK(bind(ls, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(ls, 1) == 0 &&
        getsockname(ls, (struct sockaddr *)&a, &al) == 0);
  int cfd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(cfd, (struct sockaddr *)&a, sizeof(a)) == 0);
  struct sockaddr_in me;
  socklen_t ml = sizeof(me);
  CHECK(getsockname(cfd, (struct sockaddr *)&me, &ml) == 0);
  int sfd = accept(ls, NULL, NULL);
  CHECK(sfd >= 0);
  sli_config *cfg = sli_config_new();
  sli_ctx *server = NULL;
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  sli_conn *c = NULL;
  CHECK_EQ(sli_conn_new_fd(&c, server, sfd, NULL, 0), 0);
  char want[64];
  snprintf(want, sizeof(want), "127.0.0.1:%d", ntohs(me.sin_port));
  CHECK(sli_conn_peer_addr(c) && strcmp(sli_conn_peer_addr(c), want) == 0);
  sli_conn_free(c);
  sli_ctx_free(server);
  sli_config_free(cfg);
  close(sfd);
  close(cfd);
  close(ls);
  return 0;
}

int main(void) {
  if (!mkdtemp(state_dir)) return 1;
  setenv("SLI_STATE_DIR", state_dir, 1);
  run("read_returns_more_than_asked", test_read_returns_more_than_asked);
  run("write_claims_more_than_given", test_write_claims_more_than_given);
  run("callback_returns_minus_errno", test_callback_returns_minus_errno);
  run("callback_sets_errno", test_callback_sets_errno);
  run("fd_transport_knows_its_peer", test_fd_transport_knows_its_peer);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
  if (system(cmd)) {}
  return finish();
}
