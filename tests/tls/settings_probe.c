/* settings_probe.c — the C API's door for test_settings.py: settings given as NAME=VALUE go through
 * sli_config_set_option, as the CLI's flags and the shim's variables do.
 *   settings_probe list                          one line per row of SLI_SETTING_MAP: NAME FLAG VALUE
 *   settings_probe serve NAME=VALUE...           a TLS echo server on 127.0.0.1 (a free port), one
 *                                                connection at a time, until killed; prints
 *                                                "listening on 127.0.0.1:PORT"
 *   settings_probe connect PORT NAME=VALUE...    a client to 127.0.0.1:PORT, name "localhost": sends
 *                                                "ping\n", prints what comes back
 * A setting or context that is refused prints "refused NAME: message" and exits 3. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sli.h"

static sli_config *configure(int argc, char **argv) {
  sli_config *cfg = sli_config_new();
  if (!cfg) exit(1);
  for (int i = 0; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq) exit(2);
    *eq = 0;
    int rc = sli_config_set_option(cfg, argv[i], eq + 1);
    if (rc) {
      printf("refused %s: %s\n", sli_err_name(rc), sli_config_error(cfg));
      sli_config_free(cfg);
      exit(3);
    }
  }
  return cfg;
}

static void serve(sli_ctx *ctx) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 16) ||
      getsockname(ls, (struct sockaddr *)&a, &al))
    exit(1);
  printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
  fflush(stdout);
  for (;;) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) continue;
    sli_conn *c = NULL;
    if (sli_conn_new_fd(&c, ctx, fd, NULL, 0) == 0 && sli_conn_handshake(c) == 0) {
      char buf[4096];
      ssize_t n;
      while ((n = sli_conn_read(c, buf, sizeof(buf))) > 0)
        if (sli_conn_write(c, buf, (size_t)n) != n) break;
      sli_conn_close(c);
    }
    sli_conn_free(c);
    close(fd);
  }
}

static int connect_to(sli_ctx *ctx, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
    printf("cannot connect\n");
    return 1;
  }
  sli_conn *c = NULL;
  int rc = sli_conn_new_fd(&c, ctx, fd, "localhost", 0);
  if (!rc) rc = sli_conn_handshake(c);
  if (!rc) rc = sli_conn_write(c, "ping\n", 5) == 5 ? 0 : SLI_E_IO;
  char buf[64] = {0};
  ssize_t n = rc ? -1 : sli_conn_read(c, buf, sizeof(buf) - 1);
  if (n > 0) printf("got %s", buf);
  else printf("failed %s\n", sli_err_name(rc ? rc : (int)n));
  sli_conn_free(c);
  close(fd);
  return n > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "list")) {
#define X(id, name, flag, value, help) printf("%s %s %s\n", name, flag, value[0] ? value : "-");
    SLI_SETTING_MAP(X)
#undef X
    return 0;
  }
  int client = argc >= 3 && !strcmp(argv[1], "connect");
  if (!client && (argc < 2 || strcmp(argv[1], "serve"))) return 2;
  int skip = client ? 3 : 2;
  sli_config *cfg = configure(argc - skip, argv + skip);
  sli_ctx *ctx = NULL;
  int rc = client ? sli_ctx_new_client(&ctx, cfg, 0) : sli_ctx_new_server(&ctx, cfg, 0);
  if (rc) {
    printf("refused %s: %s\n", sli_err_name(rc), sli_config_error(cfg));
    sli_config_free(cfg);
    return 3;
  }
  if (client) {
    int r = connect_to(ctx, atoi(argv[2]));
    sli_ctx_free(ctx);
    sli_config_free(cfg);
    return r;
  }
  serve(ctx);
  return 0;
}
