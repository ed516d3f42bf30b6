/* cmd_serve.c — `sli serve`: a TLS server on a libuv loop: its command line, its listener, its
 * signals. Each connection is relay.c's (--echo sends back what it receives; --backend HOST:PORT
 * relays to a plain TCP server). SIGHUP reloads the configuration (new handshakes get it, live
 * connections keep theirs); SIGTERM and SIGINT drain. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "cli.h"
#include "metrics.h"
#include "relay.h"

typedef struct server {
  relay_server relay; /* the connections (relay.c) */
  uv_loop_t *loop;
  int lfd, spare_fd; /* the listening socket; a descriptor kept for turning clients away */
  uv_poll_t listener;
  uv_signal_t sighup, sigterm, sigint;
  uv_timer_t drain, watch, expiry;
  metrics metrics;
  char files_seen[4096]; /* the watched files' identities when the settings were last loaded */
  cli_tls_opts opts;
  uint32_t drain_ms;
  int stopping;
  uint64_t last_accept_error_ms;
} server;

/* turn_away: out of descriptors, a client waiting in the backlog is accepted with the spare one
 * and told so — a fatal internal_error alert, which a TLS client may take in plaintext before the
 * handshake — rather than closed in silence; and it is said in the log, once a second. */
static int turn_away(server *srv, int err) {
  uint64_t now = uv_now(srv->loop);
  if (!srv->last_accept_error_ms || now - srv->last_accept_error_ms >= 1000) {
    relay_log("accept: %s: a client was turned away", strerror(err));
    srv->last_accept_error_ms = now ? now : 1;
  }
  if (srv->spare_fd < 0) return -1;
  close(srv->spare_fd);
  int fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) {
    static const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50};
    if (send(fd, alert, sizeof(alert), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
    }
    close(fd);
  }
  srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0 ? 0 : -1;
}

static void on_listener(uv_poll_t *h, int status, int events) {
  server *srv = h->data;
  for (int i = 0; i < 64 && !srv->stopping; i++) { /* a batch, then the other events */
    int fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      relay_start(&srv->relay, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if ((errno == EMFILE || errno == ENFILE) && turn_away(srv, errno) == 0) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) relay_log("accept: %s", strerror(errno));
    return;
  }
}
static sli_config *make_config(server *srv) {
  sli_config *cfg = sli_config_new();
  if (!cfg) return NULL;
  if (cli_apply_tls_flags(&srv->opts, cfg)) {
    sli_config_free(cfg);
    return NULL;
  }
  return cfg;
}

/* files_id writes what identifies the files the TLS flags name (device, inode, size, modification
 * time of each): a change means a rotation — an atomic rename by certbot, an in-place write. */
static void files_id(const server *srv, char *out, size_t cap) {
  static const char *const watched[] = {"SLI_CERT", "SLI_KEY", "SLI_CA", "SLI_CRL", "SLI_TICKET_KEYS",
                                        "SLI_KEY_PASSWORD_FILE", "SLI_PASSWORD_FILE"};
  size_t at = 0;
  out[0] = 0;
  for (int k = 0; k < srv->opts.n; k++) {
    for (size_t w = 0; w < sizeof(watched) / sizeof(watched[0]); w++) {
      if (strcmp(srv->opts.names[k], watched[w])) continue;
      struct stat st;
      int n = stat(srv->opts.values[k], &st) == 0
                  ? snprintf(out + at, cap - at, "%lu:%lu:%lld:%lld.%09ld;", (unsigned long)st.st_dev,
                             (unsigned long)st.st_ino, (long long)st.st_size,
                             (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec)
                  : snprintf(out + at, cap - at, "-;");
      if (n > 0 && (size_t)n < cap - at) at += (size_t)n;
    }
  }
}

static void reload(server *srv, const char *why);

/* not_after: the end of the served certificate (the first --cert, else the default identity). */
static int64_t not_after(void *arg) {
  server *srv = arg;
  const char *path = NULL;
  char dcert[4096], dkey[4096];
  for (int k = 0; k < srv->opts.n && !path; k++)
    if (!strcmp(srv->opts.names[k], "SLI_CERT")) path = srv->opts.values[k];
  if (!path && sli_default_identity(dcert, dkey, sizeof(dcert)) == 0) path = dcert;
  sli_cert *c = NULL;
  if (!path || sli_cert_load_file(&c, path, NULL, 0)) return 0;
  int64_t t = sli_cert_not_after(c);
  sli_cert_free(c);
  return t;
}

/* check_expiry: a warning when the served certificate ends within 30 days, an error within 7 —
 * at start and once a day. */
static void check_expiry(uv_timer_t *t) {
  server *srv = t->data;
  int64_t end = not_after(srv);
  if (!end) return;
  int64_t left = end - (int64_t)time(NULL);
  if (left <= 0)
    relay_log("error: the served certificate has EXPIRED (%lld days ago): clients refuse it",
              (long long)(-left / 86400));
  else if (left <= 7 * 86400)
    relay_log("error: the served certificate expires in %lld day(s): renew it now",
              (long long)(left / 86400));
  else if (left <= 30 * 86400)
    relay_log("warning: the served certificate expires in %lld days", (long long)(left / 86400));
}

static void on_watch(uv_timer_t *t) {
  server *srv = t->data;
  char now[sizeof(srv->files_seen)];
  files_id(srv, now, sizeof(now));
  if (strcmp(now, srv->files_seen)) {
    memcpy(srv->files_seen, now, sizeof(now)); /* a failed set is tried again when it changes */
    reload(srv, "the certificate files changed");
  }
}

static void on_sighup(uv_signal_t *h, int sig) {
  server *srv = h->data;
  files_id(srv, srv->files_seen, sizeof(srv->files_seen));
  reload(srv, "SIGHUP");
}

static void reload(server *srv, const char *why) {
  sli_config *cfg = make_config(srv);
  if (!cfg) {
    relay_log("reload (%s) failed; keeping the previous configuration", why);
    return;
  }
  int rc = sli_ctx_reload(srv->relay.ctx, cfg, 0);
  if (rc)
    relay_log("reload (%s) failed (%s: %s); keeping the previous configuration", why,
              sli_err_name(rc), sli_config_error(cfg));
  else
    relay_log("configuration reloaded (%s); new connections use it", why);
  sli_config_free(cfg);
}

static void on_drained(relay_server *r) {
  server *srv = (server *)r;
  if (srv->stopping) uv_stop(srv->loop);
}

static void on_drain_timeout(uv_timer_t *t) {
  server *srv = t->data;
  size_t n = relay_cut(&srv->relay);
  if (n) relay_log("drain: %zu connection(s) still open after %u ms: cut (reset)", n, srv->drain_ms);
}

/* on_stop: SIGTERM or SIGINT drains: no new connection, the live ones finish (up to --drain-timeout,
 * then they are cut with a reset, never a clean end), then exit 0. A second signal cuts at once. */
static void on_stop(uv_signal_t *h, int sig) {
  server *srv = h->data;
  if (srv->stopping) {
    on_drain_timeout(&srv->drain);
    return;
  }
  srv->stopping = 1;
  cli_sd_notify("STOPPING=1");
  if (!uv_is_closing((uv_handle_t *)&srv->listener)) { /* no new connection: refused */
    uv_poll_stop(&srv->listener);
    uv_close((uv_handle_t *)&srv->listener, NULL);
    close(srv->lfd);
  }
  relay_log("stopping: %zu live connection(s) to finish (up to %u ms)", srv->relay.n_live,
            srv->drain_ms);
  if (srv->relay.n_live == 0) {
    uv_stop(srv->loop);
    return;
  }
  uv_timer_start(&srv->drain, on_drain_timeout, srv->drain_ms, 0);
}

static int usage(int help) {
  if (!strcmp(relay_name, "proxy"))
    fprintf(help ? stdout : stderr,
            "usage: sli proxy --listen ADDR:PORT --backend HOST:PORT [TLS settings] [options]\n"
            "  A TLS front for a plain TCP server: sli serve --backend under its own name, the\n"
            "  options below the same.\n");
  fprintf(help ? stdout : stderr,
          "usage: sli serve --listen ADDR:PORT [TLS settings] (--echo | --backend HOST:PORT)\n"
          "  Serves TLS on ADDR:PORT (port 0 picks one; the line 'listening on ADDR:PORT' says\n"
          "  which). Without --cert/--key it uses the per-install default identity. --echo sends\n"
          "  back what it receives; --backend forwards each connection to a plain TCP server.\n"
          "  Certificate files that change (a rename, a rewrite) are reloaded within a second, as\n"
          "  on SIGHUP, which reloads every setting. SIGTERM and SIGINT drain: no new\n"
          "  connection, the live ones finish within --drain-timeout MS (default 10000), then exit.\n"
          "  --metrics ADDR:PORT serves counters in Prometheus' text format (plain HTTP).\n"
          "  --proxy-protocol v1|v2 tells the backend the client's address (HAProxy's PROXY header).\n"
          "  Under systemd: the socket it hands over (LISTEN_FDS) replaces --listen, and READY=1 /\n"
          "  STOPPING=1 go to NOTIFY_SOCKET (Type=notify).\n");
  cli_print_tls_flags(help ? stdout : stderr);
  return help ? EXIT_OK : EXIT_USAGE;
}

int cmd_serve(int argc, char **argv) {
  server srv = {0};
  const char *listen_addr = NULL, *backend = NULL, *metrics_addr = NULL;
  relay_name = !strcmp(argv[0], "proxy") ? "proxy" : "serve";
  srv.relay.handshake_timeout_ms = 30000;
  srv.drain_ms = 10000;
  for (int i = 1; i < argc; i++) {
    int t = cli_take_tls_flag(&srv.opts, argc, argv, &i);
    if (t < 0) return usage(0);
    if (t) {
      if (!strcmp(argv[i - 1], "--handshake-timeout"))
        srv.relay.handshake_timeout_ms = (uint32_t)atol(argv[i]);
      continue;
    }
    if (cli_is_help(argv[i])) return usage(1);
    if (!strcmp(argv[i], "--listen") && i + 1 < argc) listen_addr = argv[++i];
    else if (!strcmp(argv[i], "--echo")) srv.relay.echo = 1;
    else if (!strcmp(argv[i], "--drain-timeout") && i + 1 < argc) srv.drain_ms = (uint32_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--metrics") && i + 1 < argc) metrics_addr = argv[++i];
    else if (!strcmp(argv[i], "--proxy-protocol") && i + 1 < argc) {
      const char *v = argv[++i];
      srv.relay.proxy_protocol = !strcmp(v, "v1") ? 1 : !strcmp(v, "v2") ? 2 : -1;
      if (srv.relay.proxy_protocol < 0) return usage(0);
    }
    else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
    else return usage(0);
  }
  int activated = cli_sd_listen_fd(); /* systemd's socket, if it gave one */
  if ((!listen_addr && activated < 0) || (srv.relay.echo == !!backend)) return usage(0);
  if (!strcmp(relay_name, "proxy") && !backend) return usage(0); /* a proxy has a backend */
  if (srv.relay.proxy_protocol && !backend) return usage(0);
  if (backend) {
    char *b = strdup(backend), *colon = strrchr(b, ':');
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (!colon) return usage(0);
    *colon = 0;
    char *h = b[0] == '[' ? b + 1 : b;
    if (h != b && h[strlen(h) - 1] == ']') h[strlen(h) - 1] = 0;
    if (getaddrinfo(h, colon + 1, &hints, &res) != 0) {
      fprintf(stderr, "sli serve: cannot resolve backend '%s'\n", backend);
      return EXIT_CONFIG;
    }
    memcpy(&srv.relay.backend, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    free(b);
  }
  sli_config *cfg = make_config(&srv);
  if (!cfg) return EXIT_CONFIG;
  int rc = sli_ctx_new_server(&srv.relay.ctx, cfg, 0);
  if (rc) return cli_error("serve", rc, sli_config_error(cfg));
  sli_config_free(cfg);

  int port = 0;
  int lfd = activated >= 0 ? activated : cli_listen(listen_addr, &port);
  if (lfd < 0) return EXIT_FAIL;
  srv.loop = srv.relay.loop = uv_default_loop();
  srv.relay.on_last_closed = on_drained;
  uv_timer_init(srv.loop, &srv.drain);
  srv.drain.data = &srv;
  /* rotated certificates are taken without a signal: the files are looked at twice a second */
  files_id(&srv, srv.files_seen, sizeof(srv.files_seen));
  uv_timer_init(srv.loop, &srv.watch);
  srv.watch.data = &srv;
  uv_timer_start(&srv.watch, on_watch, 500, 500);
  uv_unref((uv_handle_t *)&srv.watch);
  uv_timer_init(srv.loop, &srv.expiry);
  srv.expiry.data = &srv;
  uv_timer_start(&srv.expiry, check_expiry, 0, 86400 * 1000ULL); /* now, then daily */
  uv_unref((uv_handle_t *)&srv.expiry);
  if (metrics_addr) {
    int mport = 0, mfd = cli_listen(metrics_addr, &mport);
    srv.metrics = (metrics){.loop = srv.loop, .ctx = srv.relay.ctx, .not_after = not_after, .arg = &srv};
    if (mfd < 0 || metrics_start(&srv.metrics, mfd)) {
      fprintf(stderr, "sli serve: cannot serve metrics on %s\n", metrics_addr);
      return EXIT_FAIL;
    }
    uv_unref((uv_handle_t *)&srv.metrics.listener);
    printf("metrics on port %d\n", mport);
  }
  srv.lfd = lfd;
  srv.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int fl = fcntl(lfd, F_GETFL);
  if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0 || listen(lfd, 511) < 0 ||
      uv_poll_init(srv.loop, &srv.listener, lfd) ||
      uv_poll_start(&srv.listener, UV_READABLE, on_listener)) {
    fprintf(stderr, "sli serve: cannot listen\n");
    return EXIT_FAIL;
  }
  srv.listener.data = &srv;
  uv_signal_init(srv.loop, &srv.sighup);
  uv_signal_init(srv.loop, &srv.sigterm);
  uv_signal_init(srv.loop, &srv.sigint);
  srv.sighup.data = srv.sigterm.data = srv.sigint.data = &srv;
  uv_signal_start(&srv.sighup, on_sighup, SIGHUP);
  uv_signal_start(&srv.sigterm, on_stop, SIGTERM);
  uv_signal_start(&srv.sigint, on_stop, SIGINT);
  char shown[300];
  if (activated >= 0) { /* the address systemd bound */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    if (getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0)
      getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
                  NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(shown, sizeof(shown), "%s:%s (from systemd)", host, serv);
  } else {
    snprintf(shown, sizeof(shown), "%s", listen_addr);
    char *colon = strrchr(shown, ':');
    if (colon) snprintf(colon + 1, sizeof(shown) - (size_t)(colon + 1 - shown), "%d", port);
  }
  printf("listening on %s\n", shown);
  fflush(stdout);
  cli_sd_notify("READY=1");
  uv_run(srv.loop, UV_RUN_DEFAULT);
  relay_log("stopped");
  sli_ctx_free(srv.relay.ctx);
  return EXIT_OK;
}
