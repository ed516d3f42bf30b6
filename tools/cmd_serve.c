/* cmd_serve.c — `sli serve`: a TLS server on a libuv loop, driving the engine through its
 * caller-supplied I/O callbacks (ciphertext in memory buffers, libuv does the socket I/O).
 * --echo sends back what it receives; --backend HOST:PORT forwards to a plain TCP server.
 * SIGHUP reloads the configuration (new handshakes get it, live connections keep theirs). */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"

typedef struct server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_signal_t sighup, sigterm, sigint;
  sli_ctx *ctx;
  cli_tls_opts opts;
  int echo;
  struct sockaddr_storage backend;
  uint32_t handshake_timeout_ms;
  unsigned long accepted;
} server;

typedef struct conn {
  server *srv;
  uv_tcp_t tcp, backend;
  uv_timer_t timer;
  sli_conn *tls;
  char *in; /* ciphertext received, not yet taken by the engine */
  size_t in_len, in_cap;
  int eof, closing, finishing, open_handles, backend_ok, backend_init, secured;
  char peer[64];
} conn;

typedef struct wreq {
  uv_write_t req;
  uv_buf_t buf;
} wreq;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "sli serve: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void close_conn(struct conn *c);

static void on_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->open_handles == 0) {
    sli_conn_free(c->tls);
    free(c->in);
    free(c);
  }
}

static void close_conn(conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
  uv_close((uv_handle_t *)&c->timer, on_closed);
  if (c->backend_init) uv_close((uv_handle_t *)&c->backend, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn *c = req->data;
  free(req);
  close_conn(c);
}

/* finish sends close_notify, lets libuv flush every queued write, then closes: uv_close alone would
 * drop data still queued for a slow reader. */
static void finish(conn *c) {
  if (c->closing || c->finishing) return;
  c->finishing = 1;
  sli_conn_close(c->tls);
  if (c->backend_init) uv_read_stop((uv_stream_t *)&c->backend);
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (!req) {
    close_conn(c);
    return;
  }
  req->data = c;
  if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(req);
    close_conn(c);
  }
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  free(w->buf.base);
  free(w);
}

static int send_copy(uv_stream_t *s, const void *data, size_t len) {
  wreq *w = malloc(sizeof(*w));
  char *copy = malloc(len);
  if (!w || !copy) {
    free(w);
    free(copy);
    return UV_ENOMEM;
  }
  memcpy(copy, data, len);
  w->buf = uv_buf_init(copy, (unsigned)len);
  int r = uv_write(&w->req, s, &w->buf, 1, on_written);
  if (r) {
    free(copy);
    free(w);
  }
  return r;
}

/* Engine transport callbacks: ciphertext from c->in, ciphertext out through libuv. */
static ssize_t t_read(sli_conn *tls, void *buf, size_t len, void *arg) {
  conn *c = arg;
  if (c->in_len == 0) return c->eof ? 0 : SLI_WANT_READ;
  size_t n = len < c->in_len ? len : c->in_len;
  memcpy(buf, c->in, n);
  memmove(c->in, c->in + n, c->in_len - n);
  c->in_len -= n;
  return (ssize_t)n;
}

static ssize_t t_write(sli_conn *tls, const void *buf, size_t len, void *arg) {
  conn *c = arg;
  if (c->closing) return SLI_E_IO;
  return send_copy((uv_stream_t *)&c->tcp, buf, len) ? SLI_E_IO : (ssize_t)len;
}

static void fail(conn *c, int code) {
  const char *m = sli_conn_error(c->tls);
  if (code == SLI_E_TRUNCATED)
    logf_("%s: closed without close_notify (truncated)", c->peer);
  else
    logf_("%s: %s: %s", c->peer, sli_err_name(code), m ? m : sli_strerror(code));
  close_conn(c);
}

static int tls_write_all(conn *c, const char *p, size_t len) {
  while (len > 0) {
    ssize_t w = sli_conn_write(c->tls, p, len);
    if (w < 0) return (int)w;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

static void start_backend(conn *c);

static void pump(conn *c) {
  if (c->closing || c->finishing) return;
  if (!c->secured) {
    int rc = sli_conn_handshake(c->tls);
    if (rc == SLI_WANT_READ || rc == SLI_WANT_WRITE) return;
    if (rc < 0) {
      fail(c, rc);
      return;
    }
    c->secured = 1;
    uv_timer_stop(&c->timer);
    logf_("%s: secured %s %s%s%s%s", c->peer, sli_conn_version(c->tls), sli_conn_cipher(c->tls),
          sli_conn_alpn(c->tls) ? " alpn=" : "", sli_conn_alpn(c->tls) ? sli_conn_alpn(c->tls) : "",
          sli_conn_is_resumed(c->tls) ? " resumed" : "");
    if (!c->srv->echo) start_backend(c);
  }
  if (!c->srv->echo && !c->backend_ok) return; /* data waits in the engine until then */
  char buf[16384];
  for (;;) {
    ssize_t n = sli_conn_read(c->tls, buf, sizeof(buf));
    if (n > 0) {
      int rc = c->srv->echo ? tls_write_all(c, buf, (size_t)n)
                            : send_copy((uv_stream_t *)&c->backend, buf, (size_t)n);
      if (rc < 0 && rc != SLI_WANT_WRITE) {
        if (c->srv->echo) fail(c, rc);
        else close_conn(c);
        return;
      }
      continue;
    }
    if (n == SLI_WANT_READ || n == SLI_WANT_WRITE) return;
    if (n == 0) {
      logf_("%s: closed", c->peer);
      finish(c);
      return;
    }
    fail(c, (int)n);
    return;
  }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char slab[65536];
  buf->base = slab;
  buf->len = sizeof(slab);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *c = s->data;
  if (n < 0) {
    if (n == UV_EOF) {
      c->eof = 1;
    } else {
      logf_("%s: %s", c->peer, uv_strerror((int)n));
      close_conn(c);
      return;
    }
  } else if (n > 0) {
    if (c->in_len + (size_t)n > c->in_cap) {
      size_t cap = (c->in_len + (size_t)n) * 2;
      char *p = realloc(c->in, cap);
      if (!p) {
        close_conn(c);
        return;
      }
      c->in = p;
      c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, buf->base, (size_t)n);
    c->in_len += (size_t)n;
  }
  pump(c);
}

static void on_backend_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *c = s->data;
  if (c->closing || c->finishing) return;
  if (n > 0) {
    int rc = tls_write_all(c, buf->base, (size_t)n);
    if (rc < 0) fail(c, rc);
    return;
  }
  if (n < 0) finish(c); /* backend closed: close TLS cleanly once everything is sent */
}

static void on_backend_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  free(req);
  if (c->closing) return;
  if (status < 0) {
    logf_("%s: backend unreachable: %s", c->peer, uv_strerror(status));
    finish(c);
    return;
  }
  c->backend_ok = 1;
  uv_read_start((uv_stream_t *)&c->backend, alloc_cb, on_backend_read);
  pump(c);
}

static void start_backend(conn *c) {
  uv_tcp_init(c->srv->loop, &c->backend);
  c->backend.data = c;
  c->backend_init = 1;
  c->open_handles++;
  uv_connect_t *req = malloc(sizeof(*req));
  if (!req) {
    close_conn(c);
    return;
  }
  req->data = c;
  if (uv_tcp_connect(req, &c->backend, (struct sockaddr *)&c->srv->backend, on_backend_connect)) {
    free(req);
    close_conn(c);
  }
}

static void on_timeout(uv_timer_t *t) {
  conn *c = t->data;
  if (c->secured) return;
  logf_("%s: SLI_E_TIMEOUT: the handshake did not complete within %u ms", c->peer,
        c->srv->handshake_timeout_ms);
  close_conn(c);
}

static void on_connection(uv_stream_t *l, int status) {
  server *srv = l->data;
  if (status < 0) return;
  conn *c = calloc(1, sizeof(*c));
  if (!c) return;
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    close_conn(c);
    return;
  }
  srv->accepted++;
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int sl = sizeof(ss);
  char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
    getnameinfo((struct sockaddr *)&ss, (socklen_t)sl, host, sizeof(host), port, sizeof(port),
                NI_NUMERICHOST | NI_NUMERICSERV);
  snprintf(c->peer, sizeof(c->peer), "%s:%s", host, port);
  int rc = sli_conn_new_cbs(&c->tls, srv->ctx, t_read, t_write, c, NULL, 0);
  if (rc) {
    logf_("%s: %s", c->peer, sli_err_name(rc));
    close_conn(c);
    return;
  }
  if (srv->handshake_timeout_ms) uv_timer_start(&c->timer, on_timeout, srv->handshake_timeout_ms, 0);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_client_read);
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

static void on_sighup(uv_signal_t *h, int sig) {
  server *srv = h->data;
  sli_config *cfg = make_config(srv);
  if (!cfg) {
    logf_("reload failed; keeping the previous configuration");
    return;
  }
  int rc = sli_ctx_reload(srv->ctx, cfg, 0);
  if (rc)
    logf_("reload failed (%s: %s); keeping the previous configuration", sli_err_name(rc),
          sli_config_error(cfg));
  else
    logf_("configuration reloaded; new connections use it");
  sli_config_free(cfg);
}

static void on_stop(uv_signal_t *h, int sig) {
  server *srv = h->data;
  logf_("stopping");
  uv_stop(srv->loop);
}

static int usage(int help) {
  fprintf(help ? stdout : stderr,
          "usage: sli serve --listen ADDR:PORT [TLS settings] (--echo | --backend HOST:PORT)\n"
          "  Serves TLS on ADDR:PORT (port 0 picks one; the line 'listening on ADDR:PORT' says\n"
          "  which). Without --cert/--key it uses the per-install default identity. --echo sends\n"
          "  back what it receives; --backend forwards each connection to a plain TCP server.\n"
          "  SIGHUP reloads certificates and settings; SIGTERM stops.\n");
  cli_print_tls_flags(help ? stdout : stderr);
  return help ? EXIT_OK : EXIT_USAGE;
}

int cmd_serve(int argc, char **argv) {
  server srv = {0};
  const char *listen_addr = NULL, *backend = NULL;
  srv.handshake_timeout_ms = 30000;
  for (int i = 1; i < argc; i++) {
    int t = cli_take_tls_flag(&srv.opts, argc, argv, &i);
    if (t < 0) return usage(0);
    if (t) {
      if (!strcmp(argv[i - 1], "--handshake-timeout")) srv.handshake_timeout_ms = (uint32_t)atol(argv[i]);
      continue;
    }
    if (cli_is_help(argv[i])) return usage(1);
    if (!strcmp(argv[i], "--listen") && i + 1 < argc) listen_addr = argv[++i];
    else if (!strcmp(argv[i], "--echo")) srv.echo = 1;
    else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
    else return usage(0);
  }
  if (!listen_addr || (srv.echo == !!backend)) return usage(0);
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
    memcpy(&srv.backend, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    free(b);
  }
  sli_config *cfg = make_config(&srv);
  if (!cfg) return EXIT_CONFIG;
  int rc = sli_ctx_new_server(&srv.ctx, cfg, 0);
  if (rc) return cli_error("serve", rc, sli_config_error(cfg));
  sli_config_free(cfg);

  int port = 0;
  int lfd = cli_listen(listen_addr, &port);
  if (lfd < 0) return EXIT_FAIL;
  srv.loop = uv_default_loop();
  uv_tcp_init(srv.loop, &srv.listener);
  srv.listener.data = &srv;
  if (uv_tcp_open(&srv.listener, lfd) || uv_listen((uv_stream_t *)&srv.listener, 511, on_connection)) {
    fprintf(stderr, "sli serve: cannot listen\n");
    return EXIT_FAIL;
  }
  uv_signal_init(srv.loop, &srv.sighup);
  uv_signal_init(srv.loop, &srv.sigterm);
  uv_signal_init(srv.loop, &srv.sigint);
  srv.sighup.data = srv.sigterm.data = srv.sigint.data = &srv;
  uv_signal_start(&srv.sighup, on_sighup, SIGHUP);
  uv_signal_start(&srv.sigterm, on_stop, SIGTERM);
  uv_signal_start(&srv.sigint, on_stop, SIGINT);
  char shown[300];
  snprintf(shown, sizeof(shown), "%s", listen_addr);
  char *colon = strrchr(shown, ':');
  if (colon) snprintf(colon + 1, sizeof(shown) - (size_t)(colon + 1 - shown), "%d", port);
  printf("listening on %s\n", shown);
  fflush(stdout);
  uv_run(srv.loop, UV_RUN_DEFAULT);
  sli_ctx_free(srv.ctx);
  return EXIT_OK;
}
