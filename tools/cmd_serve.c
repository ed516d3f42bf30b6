/* cmd_serve.c — `sli serve` and `sli proxy`: the command line (and --config, a file of the same
 * flags), the settings, and the main thread's loop: signals, reloads, the certificate's expiry,
 * metrics. The connections are accepted and relayed on the loops of loops.c, each on its own
 * thread (--workers; `sli proxy` has one per core), by relay.c: --echo sends back what it
 * receives, --backend HOST:PORT and --route NAME=HOST:PORT relay to plain TCP servers, --client
 * turns the roles (plain in, verified TLS out). SIGHUP reloads the configuration (new handshakes
 * get it, live connections keep theirs); SIGTERM and SIGINT drain. */
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
#include "loops.h"
#include "relay.h"

typedef struct server {
  uv_loop_t *loop; /* the main thread's: signals, the file watch, expiry, metrics */
  relay_settings set;
  relay_route routes[64];
  serve_loops loops;
  uv_signal_t sighup, sigterm, sigint;
  uv_timer_t watch, expiry;
  metrics metrics;
  char files_seen[4096]; /* the watched files' identities when the settings were last loaded */
  cli_tls_opts opts;
  uint32_t drain_ms;
  int stopping;
} server;

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
  if (!path && !srv->set.client_mode && sli_default_identity(dcert, dkey, sizeof(dcert)) == 0)
    path = dcert;
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
  int rc = sli_ctx_reload(srv->set.ctx, cfg, 0);
  if (rc)
    relay_log("reload (%s) failed (%s: %s); keeping the previous configuration", why,
              sli_err_name(rc), sli_config_error(cfg));
  else
    relay_log("configuration reloaded (%s); new connections use it", why);
  sli_config_free(cfg);
}

static void on_all_stopped(uv_async_t *a) {
  server *srv = a->data;
  uv_stop(srv->loop);
}

/* on_stop: SIGTERM or SIGINT drains: no new connection, the live ones finish (up to --drain-timeout,
 * then they are cut with a reset, never a clean end), then exit 0. A second signal cuts at once. */
static void on_stop(uv_signal_t *h, int sig) {
  server *srv = h->data;
  size_t live = loops_stop(&srv->loops);
  if (srv->stopping++) return;
  cli_sd_notify("STOPPING=1");
  relay_log("stopping: %zu live connection(s) to finish (up to %u ms)", live, srv->drain_ms);
}

static int usage(int help) {
  FILE *o = help ? stdout : stderr;
  if (!strcmp(relay_name, "proxy"))
    fprintf(o,
            "usage: sli proxy --listen ADDR:PORT (--backend HOST:PORT | --route NAME=HOST:PORT...)\n"
            "                 [TLS settings] [options]\n"
            "       sli proxy --client --listen ADDR:PORT --backend HOST:PORT [--servername NAME]\n"
            "                 [TLS settings] [options]\n"
            "  A TLS front for plain TCP servers: TLS in, plain out; each client goes to the route\n"
            "  its SNI name chooses (NAME, or *.DOMAIN for one label in front of DOMAIN), else to\n"
            "  --backend. --client turns it round: plain in, TLS out to --backend, verified against\n"
            "  --ca (else the system's roots) as --servername (else the backend's host). One loop\n"
            "  per core (--workers N to choose).\n");
  else
    fprintf(o, "usage: sli serve --listen ADDR:PORT [TLS settings] (--echo | --backend HOST:PORT)\n"
               "                 [options]\n"
               "  Serves TLS on ADDR:PORT. --echo sends back what it receives; --backend forwards\n"
               "  each connection to a plain TCP server: then it is `sli proxy` (--route, --client\n"
               "  too) with one loop unless --workers says more.\n");
  fprintf(o,
          "  Port 0 picks a port; the line 'listening on ADDR:PORT' says which. Without --cert/--key\n"
          "  a server uses the per-install default identity. Certificate files that change (a\n"
          "  rename, a rewrite) are reloaded within a second, as on SIGHUP, which reloads every\n"
          "  setting. SIGTERM and SIGINT drain: no new connection, the live ones finish within\n"
          "  --drain-timeout MS (default 10000), then exit.\n"
          "  --workers N         event loops, each on its own thread and listening socket\n"
          "                      (SO_REUSEPORT); default 1 for serve, the number of cores for proxy.\n"
          "  --metrics ADDR:PORT serves counters in Prometheus' text format (plain HTTP).\n"
          "  --proxy-protocol v1|v2 tells the backend the client's address (HAProxy's PROXY header).\n"
          "  --config FILE       more of these flags, one per line, without the dashes:\n"
          "                      'backend 127.0.0.1:6379' ('#' starts a comment); the command\n"
          "                      line comes after the file (a flag given once: the command line wins).\n"
          "  Under systemd: the socket it hands over (LISTEN_FDS) replaces --listen, and READY=1 /\n"
          "  STOPPING=1 go to NOTIFY_SOCKET (Type=notify).\n");
  cli_print_tls_flags(o);
  return help ? EXIT_OK : EXIT_USAGE;
}

/* resolve: "HOST:PORT" ("[::1]:PORT") to an address; the host part in `host` if asked. */
static int resolve(const char *addr, struct sockaddr_storage *out, char *host, size_t host_cap) {
  char *b = strdup(addr);
  char *colon = b ? strrchr(b, ':') : NULL;
  if (!colon) {
    free(b);
    return -1;
  }
  *colon = 0;
  char *h = b[0] == '[' ? b + 1 : b;
  if (h != b && h[0] && h[strlen(h) - 1] == ']') h[strlen(h) - 1] = 0;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
  int rc = getaddrinfo(h, colon + 1, &hints, &res);
  if (rc == 0) {
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (host) snprintf(host, host_cap, "%s", h);
  }
  free(b);
  return rc ? -1 : 0;
}

/* with_config: the arguments with those of each --config FILE in front, in order (a line
 * "name value", "name = value" or "name" becomes "--name value"; '#' at a line's start or after a
 * blank starts a comment); NULL after saying why. `origin` gets, for each argument that came from
 * a file, "FILE line N" (else NULL), for the parser's complaints. What it makes lives until exit
 * (`kept`, volatile: the stores stay, so LeakSanitizer sees it held). */
typedef struct arglist {
  char **v, **origin;
  size_t n, cap;
} arglist;
static arglist *volatile kept;

static int push(arglist *a, char *arg, char *origin) {
  if (a->n + 2 > a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 64;
    char **v = realloc(a->v, cap * sizeof(*v)), **o = v ? realloc(a->origin, cap * sizeof(*o)) : NULL;
    if (v) a->v = v;
    if (o) a->origin = o;
    if (!v || !o) return -1;
    a->cap = cap;
  }
  a->origin[a->n] = origin;
  a->v[a->n++] = arg;
  a->v[a->n] = NULL;
  return 0;
}

static int read_config(arglist *a, const char *file) {
  FILE *f = fopen(file, "re");
  struct stat st;
  if (f && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    f = NULL;
    errno = EISDIR;
  }
  if (!f) {
    fprintf(stderr, "sli %s: --config %s: %s\n", relay_name, file, strerror(errno));
    return -1;
  }
  char line[4096];
  int lineno = 0;
  while (fgets(line, sizeof(line), f)) {
    lineno++;
    char *p = line + strspn(line, " \t");
    p[strcspn(p, "\r\n")] = 0;
    for (char *h = strchr(p, '#'); h; h = strchr(h + 1, '#'))
      if (h == p || h[-1] == ' ' || h[-1] == '\t') { /* a comment, at the start or after a blank */
        *h = 0;
        break;
      }
    if (!*p) continue;
    char *end = p + strcspn(p, " \t=");
    char *value = end + strspn(end, " \t");
    if (*value == '=') value += 1 + strspn(value + 1, " \t");
    *end = 0;
    size_t vl = strlen(value);
    while (vl && (value[vl - 1] == ' ' || value[vl - 1] == '\t')) value[--vl] = 0;
    char *origin = malloc(strlen(file) + 32);
    if (!origin) break;
    snprintf(origin, strlen(file) + 32, "%s line %d", file, lineno);
    if (!strcmp(p, "config") || p[0] == '-') {
      fprintf(stderr, "sli %s: %s: '%s' is not a flag name (write it without dashes%s)\n",
              relay_name, origin, p, !strcmp(p, "config") ? "; and one file does not name another" : "");
      free(origin);
      fclose(f);
      return -1;
    }
    size_t pl = strlen(p);
    char *flag = malloc(pl + 3);
    if (!flag || push(a, flag, origin) || (*value && push(a, strdup(value), origin))) {
      fclose(f);
      return -1;
    }
    memcpy(flag, "--", 2);
    memcpy(flag + 2, p, pl + 1);
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    fprintf(stderr, "sli %s: --config %s: cannot read it\n", relay_name, file);
    return -1;
  }
  return 0;
}

static char **with_config(int *argc, char **argv, char ***origin) {
  static arglist a;
  kept = &a;
  if (push(&a, argv[0], NULL)) return NULL;
  for (int i = 1; i < *argc; i++)
    if (!strcmp(argv[i], "--config")) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "sli %s: --config needs a FILE\n", relay_name);
        return NULL;
      }
      if (read_config(&a, argv[++i])) return NULL;
    }
  for (int i = 1; i < *argc; i++) {
    if (!strcmp(argv[i], "--config")) {
      i++;
      continue;
    }
    if (push(&a, argv[i], NULL)) return NULL;
  }
  *argc = (int)a.n;
  *origin = a.origin;
  return a.v;
}

/* count: a whole decimal number in [lo, hi], else -1 after saying so ("10s", "1e4", "-5" are not:
 * a drain of 10 ms where 10 s was meant would cut every live connection at each restart). */
static long count(const char *flag, const char *v, long lo, long hi) {
  char *end;
  errno = 0;
  long n = v[0] >= '0' && v[0] <= '9' ? strtol(v, &end, 10) : -1;
  if (n < lo || n > hi || errno || *end) {
    fprintf(stderr, "sli %s: %s '%s' is not a whole number from %ld to %ld\n", relay_name, flag, v,
            lo, hi);
    return -1;
  }
  return n;
}

int cmd_serve(int argc, char **argv) {
  static server srv;
  const char *listen_addr = NULL, *backend = NULL, *metrics_addr = NULL, *servername = NULL;
  relay_name = !strcmp(argv[0], "proxy") ? "proxy" : "serve";
  int proxy = !strcmp(relay_name, "proxy");
  char **origin;
  argv = with_config(&argc, argv, &origin);
  if (!argv) return EXIT_CONFIG;
  relay_settings *set = &srv.set;
  set->handshake_timeout_ms = 30000;
  srv.drain_ms = 10000;
  long workers = proxy ? (long)uv_available_parallelism() : 1;
  if (workers > 256) workers = 256; /* the most --workers takes */
  for (int i = 1; i < argc; i++) {
    int from = i, t = cli_take_tls_flag(&srv.opts, argc, argv, &i);
    if (t < 0) {
      if (origin[from]) fprintf(stderr, "sli %s: in %s\n", relay_name, origin[from]);
      return usage(0);
    }
    if (t) {
      if (!strcmp(argv[i - 1], "--handshake-timeout"))
        set->handshake_timeout_ms = (uint32_t)atol(argv[i]);
      continue;
    }
    if (cli_is_help(argv[i])) return usage(1);
    int more = i + 1 < argc;
    if (!strcmp(argv[i], "--listen") && more) listen_addr = argv[++i];
    else if (!strcmp(argv[i], "--echo")) set->echo = 1;
    else if (!strcmp(argv[i], "--client")) set->client_mode = 1;
    else if (!strcmp(argv[i], "--servername") && more) servername = argv[++i];
    else if (!strcmp(argv[i], "--drain-timeout") && more) {
      long ms = count("--drain-timeout", argv[++i], 0, 86400000);
      if (ms < 0) return EXIT_USAGE;
      srv.drain_ms = (uint32_t)ms;
    } else if (!strcmp(argv[i], "--workers") && more) {
      if ((workers = count("--workers", argv[++i], 1, 256)) < 0) return EXIT_USAGE;
    }
    else if (!strcmp(argv[i], "--metrics") && more) metrics_addr = argv[++i];
    else if (!strcmp(argv[i], "--proxy-protocol") && more) {
      const char *v = argv[++i];
      set->proxy_protocol = !strcmp(v, "v1") ? 1 : !strcmp(v, "v2") ? 2 : -1;
      if (set->proxy_protocol < 0) return usage(0);
    } else if (!strcmp(argv[i], "--backend") && more) backend = argv[++i];
    else if (!strcmp(argv[i], "--route") && more) {
      const char *r = argv[++i], *eq = strchr(r, '=');
      relay_route *rt = &srv.routes[set->n_routes];
      if (!eq || eq == r || (size_t)(eq - r) >= sizeof(rt->name) || set->n_routes == 64) {
        fprintf(stderr, "sli proxy: --route '%s' is not NAME=HOST:PORT\n", r);
        return EXIT_USAGE;
      }
      memcpy(rt->name, r, (size_t)(eq - r));
      rt->name[eq - r] = 0;
      if (resolve(eq + 1, &rt->backend, NULL, 0)) {
        fprintf(stderr, "sli proxy: cannot resolve the route's backend '%s'\n", eq + 1);
        return EXIT_CONFIG;
      }
      set->n_routes++;
    } else {
      fprintf(stderr, "sli %s: unknown or incomplete option '%s'%s%s%s\n", relay_name, argv[i],
              origin[i] ? " (" : "", origin[i] ? origin[i] : "", origin[i] ? ")" : "");
      return usage(0);
    }
  }
  set->routes = srv.routes;
  int activated = cli_sd_listen_fd(); /* systemd's socket, if it gave one */
  int relays = backend || set->n_routes;
  if (!listen_addr && activated < 0) return usage(0);
  if (set->echo == relays || (proxy && set->echo)) return usage(0); /* --workers: count() */
  if (set->proxy_protocol && !relays) return usage(0);
  if (set->client_mode && (!backend || set->n_routes || set->proxy_protocol)) return usage(0);
  if (servername && !set->client_mode) return usage(0);
  char backend_host[256] = "";
  if (backend) {
    if (resolve(backend, &set->backend, backend_host, sizeof(backend_host))) {
      fprintf(stderr, "sli %s: cannot resolve backend '%s'\n", relay_name, backend);
      return EXIT_CONFIG;
    }
    set->has_backend = 1;
  }
  if (set->client_mode)
    snprintf(set->servername, sizeof(set->servername), "%s", servername ? servername : backend_host);
  sli_config *cfg = make_config(&srv);
  if (!cfg) return EXIT_CONFIG;
  int rc = set->client_mode ? sli_ctx_new_client(&set->ctx, cfg, 0) : sli_ctx_new_server(&set->ctx, cfg, 0);
  if (rc) return cli_error(relay_name, rc, sli_config_error(cfg));
  sli_config_free(cfg);

  int port = 0;
  int lfd = activated >= 0 ? activated
            : workers > 1 ? cli_listen_shared(listen_addr, &port) : cli_listen(listen_addr, &port);
  if (lfd < 0) return EXIT_FAIL;
  srv.loop = uv_default_loop();
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
    srv.metrics = (metrics){.loop = srv.loop, .ctx = set->ctx, .not_after = not_after, .arg = &srv};
    if (mfd < 0 || metrics_start(&srv.metrics, mfd)) {
      fprintf(stderr, "sli %s: cannot serve metrics on %s\n", relay_name, metrics_addr);
      return EXIT_FAIL;
    }
    uv_unref((uv_handle_t *)&srv.metrics.listener);
    printf("metrics on port %d\n", mport);
  }
  uv_signal_init(srv.loop, &srv.sighup);
  uv_signal_init(srv.loop, &srv.sigterm);
  uv_signal_init(srv.loop, &srv.sigint);
  srv.sighup.data = srv.sigterm.data = srv.sigint.data = &srv;
  uv_signal_start(&srv.sighup, on_sighup, SIGHUP);
  uv_signal_start(&srv.sigterm, on_stop, SIGTERM);
  uv_signal_start(&srv.sigint, on_stop, SIGINT);
  if (loops_start(&srv.loops, (int)workers, lfd, activated >= 0, set, srv.drain_ms, srv.loop,
                  on_all_stopped))
    return EXIT_FAIL;
  srv.loops.all_done.data = &srv;
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
  loops_join(&srv.loops);
  relay_log("stopped");
  sli_ctx_free(set->ctx);
  return EXIT_OK;
}
