/* cmd_demo.c — `sli demo`: a TLS server on loopback with the default identity, a verifying client,
 * one exchange, and what was negotiated. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"

struct server {
  sli_ctx *ctx;
  int lfd;
  int rc;
  char err[512];
};

static void *serve_one(void *arg) {
  struct server *s = arg;
  int fd = accept(s->lfd, NULL, NULL);
  sli_conn *c = NULL;
  s->rc = fd < 0 ? SLI_E_IO : sli_conn_new_fd(&c, s->ctx, fd, NULL, 0);
  char buf[256];
  ssize_t n = s->rc ? s->rc : sli_conn_read(c, buf, sizeof(buf));
  if (n > 0) {
    char reply[300];
    int m = snprintf(reply, sizeof(reply), "echo: %.*s", (int)n, buf);
    n = sli_conn_write(c, reply, (size_t)m);
  }
  if (n < 0) {
    s->rc = (int)n;
    snprintf(s->err, sizeof(s->err), "%s", c && sli_conn_error(c) ? sli_conn_error(c) : "");
  }
  if (c) sli_conn_close(c);
  sli_conn_free(c);
  if (fd >= 0) close(fd);
  return NULL;
}

int cmd_demo(int argc, char **argv) {
  if (argc > 1) {
    int help = cli_is_help(argv[1]);
    (help ? stdout : stderr) == stdout
        ? printf("usage: sli demo\n  starts a TLS server on 127.0.0.1 with the per-install default "
                 "identity\n  (generated once, see README), connects a client that verifies it, "
                 "exchanges a\n  message and prints the negotiated version, cipher and the "
                 "server's certificate.\n")
        : fprintf(stderr, "usage: sli demo\n");
    return help ? EXIT_OK : EXIT_USAGE;
  }
  char cert[PATH_MAX], key[PATH_MAX];
  int rc = sli_default_identity(cert, key, sizeof(cert));
  if (rc) return cli_error("demo", rc, "cannot prepare the default identity");

  sli_config *scfg = sli_config_new(), *ccfg = sli_config_new();
  struct server srv = {0};
  sli_ctx *cctx = NULL;
  if (!scfg || !ccfg) return cli_error("demo", SLI_E_NOMEM, NULL);
  if ((rc = sli_ctx_new_server(&srv.ctx, scfg, 0)))
    return cli_error("demo", rc, sli_config_error(scfg));
  /* The client trusts exactly the default identity's certificate, and checks the name. */
  if ((rc = sli_config_set_ca_file(ccfg, cert)) || (rc = sli_ctx_new_client(&cctx, ccfg, 0)))
    return cli_error("demo", rc, sli_config_error(ccfg));

  int port = 0;
  srv.lfd = cli_listen("127.0.0.1:0", &port);
  if (srv.lfd < 0) return EXIT_FAIL;
  pthread_t th;
  pthread_create(&th, NULL, serve_one, &srv);

  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
  int fd = cli_connect(addr, NULL, 0);
  if (fd < 0) return EXIT_FAIL;
  sli_conn *c = NULL;
  if ((rc = sli_conn_new_fd(&c, cctx, fd, "localhost", 0))) return cli_error("demo", rc, NULL);
  const char msg[] = "hello over TLS";
  char buf[512];
  ssize_t n = 0;
  if ((rc = sli_conn_handshake(c)) == 0 && (n = sli_conn_write(c, msg, sizeof(msg) - 1)) > 0)
    n = sli_conn_read(c, buf, sizeof(buf) - 1);
  if (rc || n <= 0) {
    int code = rc ? rc : n < 0 ? (int)n : SLI_E_CLOSED;
    return cli_error("demo", code, sli_conn_error(c));
  }
  buf[n] = 0;
  printf("sli demo: server on %s (default identity %s)\n", addr, cert);
  printf("  sent:        %s\n", msg);
  printf("  received:    %s\n", buf);
  printf("  secured:     %s\n", sli_conn_is_secured(c) ? "yes" : "no");
  printf("  protocol:    %s\n", sli_conn_version(c));
  printf("  cipher:      %s\n", sli_conn_cipher(c));
  printf("  verified:    %s (name 'localhost' checked)\n",
         sli_conn_verify_result(c) == 0 ? "yes" : sli_err_name(sli_conn_verify_result(c)));
  printf("  server certificate:\n");
  cli_print_cert(sli_conn_peer_cert(c), "    ");
  sli_conn_close(c);
  sli_conn_free(c);
  close(fd);
  pthread_join(th, NULL);
  close(srv.lfd);
  if (srv.rc < 0) return cli_error("demo (server)", srv.rc, srv.err);
  sli_ctx_free(cctx);
  sli_ctx_free(srv.ctx);
  sli_config_free(scfg);
  sli_config_free(ccfg);
  return EXIT_OK;
}
