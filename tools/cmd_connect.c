/* cmd_connect.c — `sli connect HOST:PORT`: a TLS client like `openssl s_client -quiet`: stdin goes
 * to the server, the server's bytes to stdout. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int usage(int help) {
  fprintf(help ? stdout : stderr,
          "usage: sli connect HOST:PORT [--servername NAME] [--linger MS] [--verbose] [TLS settings]\n"
          "  Verifies the server's certificate (system CAs unless --ca) and its name (HOST or\n"
          "  --servername). Copies stdin to the server and the server's bytes to stdout. After the\n"
          "  end of stdin it prints what the server still sends until the server closes or is\n"
          "  quiet for --linger MS (default 2000), then sends close_notify and exits.\n"
          "  --insecure turns verification off. Exit 4 with the reason when the certificate is\n"
          "  refused.\n");
  cli_print_tls_flags(help ? stdout : stderr);
  return help ? EXIT_OK : EXIT_USAGE;
}

int cmd_connect(int argc, char **argv) {
  const char *target = NULL, *servername = NULL;
  int verbose = 0, linger_ms = 2000;
  cli_tls_opts o = {0};
  for (int i = 1; i < argc; i++) {
    int t = cli_take_tls_flag(&o, argc, argv, &i);
    if (t < 0) return usage(0);
    if (t) continue;
    if (cli_is_help(argv[i])) return usage(1);
    if (!strcmp(argv[i], "--servername") && i + 1 < argc) servername = argv[++i];
    else if (!strcmp(argv[i], "--linger") && i + 1 < argc) linger_ms = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) verbose = 1;
    else if (argv[i][0] != '-' && !target) target = argv[i];
    else return usage(0);
  }
  if (!target) return usage(0);
  sli_config *cfg = sli_config_new();
  sli_ctx *ctx = NULL;
  sli_conn *c = NULL;
  int fd = -1, result = EXIT_OK, rc;
  if (!cfg) return EXIT_FAIL;
  if ((rc = cli_apply_tls_flags(&o, cfg))) {
    result = cli_exit_code(rc);
    goto done;
  }
  if ((rc = sli_ctx_new_client(&ctx, cfg, 0))) {
    result = cli_error("connect", rc, sli_config_error(cfg));
    goto done;
  }
  char host[256];
  if ((fd = cli_connect(target, host, sizeof(host))) < 0) {
    result = EXIT_FAIL;
    goto done;
  }
  if ((rc = sli_conn_new_fd(&c, ctx, fd, servername ? servername : host, 0))) {
    result = cli_error("connect", rc, NULL);
    goto done;
  }
  /* Non-blocking underneath: a wake-up that brings no data (a session ticket) must not block us
   * in a read while stdin has something to send. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  while ((rc = sli_conn_handshake(c)) == SLI_WANT_READ || rc == SLI_WANT_WRITE) {
    struct pollfd p = {.fd = fd, .events = rc == SLI_WANT_READ ? POLLIN : POLLOUT};
    poll(&p, 1, 1000); /* the engine enforces the handshake timeout on each call */
  }
  if (rc) {
    result = cli_error("connect", rc, sli_conn_error(c));
    goto done;
  }
  if (verbose) {
    fprintf(stderr, "sli connect: %s %s alpn=%s resumed=%s\n", sli_conn_version(c),
            sli_conn_cipher(c), sli_conn_alpn(c) ? sli_conn_alpn(c) : "-",
            sli_conn_is_resumed(c) ? "yes" : "no");
    const sli_cert *pc = sli_conn_peer_cert(c);
    if (pc) fprintf(stderr, "sli connect: peer %s\n", sli_cert_subject(pc));
  }
  char buf[16384], out[16384];
  size_t out_len = 0, out_off = 0; /* stdin bytes not yet taken by the engine */
  int stdin_open = 1, want = 0;
  for (;;) {
    /* 1. push pending stdin bytes */
    while (out_off < out_len) {
      ssize_t w = sli_conn_write(c, out + out_off, out_len - out_off);
      if (w == SLI_WANT_READ || w == SLI_WANT_WRITE) {
        want = (int)w;
        break;
      }
      if (w < 0) {
        result = cli_error("connect", (int)w, sli_conn_error(c));
        goto done;
      }
      out_off += (size_t)w;
    }
    if (out_off == out_len) out_off = out_len = 0, want = 0;
    /* 2. drain what the server sent */
    ssize_t n;
    while ((n = sli_conn_read(c, buf, sizeof(buf))) > 0) {
      fwrite(buf, 1, (size_t)n, stdout);
      fflush(stdout);
    }
    if (n == 0) break; /* clean close */
    if (n != SLI_WANT_READ && n != SLI_WANT_WRITE) {
      result = cli_error("connect", (int)n, sli_conn_error(c));
      break;
    }
    /* 3. wait */
    int take_stdin = stdin_open && out_len == 0;
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN | (want == SLI_WANT_WRITE || n == SLI_WANT_WRITE ? POLLOUT : 0)},
                          {.fd = 0, .events = POLLIN}};
    int pr = poll(p, take_stdin ? 2 : 1, stdin_open || out_len ? -1 : linger_ms);
    if (pr < 0 && errno != EINTR) break;
    if (pr == 0) { /* stdin done and the server is quiet: say goodbye */
      while (sli_conn_close(c) == SLI_WANT_WRITE) {
        struct pollfd q = {.fd = fd, .events = POLLOUT};
        poll(&q, 1, 1000);
      }
      break;
    }
    if (take_stdin && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t r = read(0, out, sizeof(out));
      if (r > 0) out_len = (size_t)r;
      else stdin_open = 0; /* keep reading what the server still sends */
    }
  }
done:
  sli_conn_free(c);
  if (fd >= 0) close(fd);
  sli_ctx_free(ctx);
  sli_config_free(cfg);
  return result;
}
