/* cmd_demo.c — `sli demo`: a TLS server on loopback with the default identity, a verifying client,
 * one exchange, and what was negotiated. */
#include <limits.h>
#include <link.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>

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

/* The shim next to this program (build tree) or where `meson install` put it. */
static int find_preload(char *out, size_t cap) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = 0;
    snprintf(out, cap, "%s/../shim/libsli-preload.so", dirname(exe));
    if (access(out, R_OK) == 0) return 0;
  }
  snprintf(out, cap, "%s", SLI_PRELOAD_INSTALLED);
  return access(out, R_OK);
}

/* A sanitizer build of the shim needs its runtimes loaded before it in an uninstrumented host:
 * collect the ones this process has (none in a normal build). */
static int add_runtime(struct dl_phdr_info *info, size_t size, void *arg) {
  char *list = arg;
  const char *n = info->dlpi_name;
  if (n && (strstr(n, "libasan.so") || strstr(n, "libubsan.so"))) {
    strncat(list, n, PATH_MAX - strlen(list) - 2);
    strcat(list, " ");
  }
  return 0;
}

/* Part two: a plain `python3 -m http.server`, made HTTPS by LD_PRELOAD, fetched by a verifying
 * client. Returns an exit code. */
static int demo_shim(sli_ctx *cctx, const char *cert) {
  char preload[PATH_MAX], dir[] = "/tmp/sli-demo-XXXXXX";
  if (find_preload(preload, sizeof(preload)) != 0 || access("/usr/bin/python3", X_OK) != 0) {
    printf("\n(part two skipped: libsli-preload.so or /usr/bin/python3 not found)\n");
    return EXIT_OK;
  }
  if (!mkdtemp(dir)) return EXIT_FAIL;
  char page[PATH_MAX + 16];
  snprintf(page, sizeof(page), "%s/index.html", dir);
  FILE *f = fopen(page, "w");
  if (!f) return EXIT_FAIL;
  fputs("<h1>Hello from a plain python3 -m http.server, now speaking TLS</h1>\n", f);
  fclose(f);
  int probe = cli_listen("127.0.0.1:0", NULL), port = 0;
  struct sockaddr_in a;
  socklen_t al = sizeof(a);
  getsockname(probe, (struct sockaddr *)&a, &al);
  port = ntohs(a.sin_port);
  close(probe);
  char portstr[16];
  snprintf(portstr, sizeof(portstr), "%d", port);
  pid_t pid = fork();
  if (pid == 0) {
    char list[PATH_MAX * 2] = "";
    dl_iterate_phdr(add_runtime, list);
    if (list[0]) setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    strncat(list, preload, sizeof(list) - strlen(list) - 1);
    setenv("LD_PRELOAD", list, 1);
    setenv("SLI_SERVER_PORTS", portstr, 1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl("/usr/bin/python3", "python3", "-m", "http.server", portstr, "--bind", "127.0.0.1",
          "--directory", dir, (char *)NULL);
    _exit(127);
  }
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
  int fd = -1, rc = EXIT_FAIL;
  for (int i = 0; i < 100 && fd < 0; i++) { /* wait for it to listen */
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) fd = s;
    else close(s);
  }
  sli_conn *c = NULL;
  char resp[4096];
  size_t got = 0;
  if (fd >= 0 && sli_conn_new_fd(&c, cctx, fd, "localhost", 0) == 0) {
    const char req[] = "GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n";
    ssize_t n = sli_conn_write(c, req, sizeof(req) - 1);
    while (n > 0 && got < sizeof(resp) - 1 && (n = sli_conn_read(c, resp + got, sizeof(resp) - 1 - got)) > 0)
      got += (size_t)n;
    resp[got] = 0;
    if (got && strstr(resp, "200 OK")) {
      char *body = strstr(resp, "\r\n\r\n");
      printf("\nsli demo, part two: plain `python3 -m http.server` with LD_PRELOAD=%s\n", preload);
      printf("  SLI_SERVER_PORTS=%d, identity %s\n", port, cert);
      printf("  GET https://localhost:%d/index.html -> %.*s\n", port, (int)strcspn(resp, "\r"), resp);
      printf("  body:        %s", body ? body + 4 : "");
      printf("  protocol:    %s\n  cipher:      %s\n  verified:    %s\n", sli_conn_version(c),
             sli_conn_cipher(c), sli_conn_verify_result(c) == 0 ? "yes" : "no");
      rc = EXIT_OK;
    } else {
      rc = cli_error("demo (shim)", n < 0 ? (int)n : SLI_E_PROTO, sli_conn_error(c));
    }
  } else {
    fprintf(stderr, "sli demo: the preloaded http.server did not start\n");
  }
  sli_conn_free(c);
  if (fd >= 0) close(fd);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  unlink(page);
  rmdir(dir);
  return rc;
}

int cmd_demo(int argc, char **argv) {
  if (argc > 1) {
    int help = cli_is_help(argv[1]);
    (help ? stdout : stderr) == stdout
        ? printf("usage: sli demo\n  starts a TLS server on 127.0.0.1 with the per-install default "
                 "identity\n  (generated once, see README), connects a client that verifies it, "
                 "exchanges a\n  message and prints the negotiated version, cipher and the "
                 "server's certificate.\n  Then it starts a plain `python3 -m http.server` with "
                 "libsli-preload.so preloaded\n  and fetches a page from it over verified HTTPS.\n")
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
  int rc2 = demo_shim(cctx, cert);
  sli_ctx_free(cctx);
  sli_ctx_free(srv.ctx);
  sli_config_free(scfg);
  sli_config_free(ccfg);
  return rc2;
}
