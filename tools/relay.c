/* relay.c — one connection of `sli serve` / `sli proxy`: TLS from the client through the engine's
 * callback transport (ciphertext in memory, libuv does the socket I/O), then either echoed or
 * relayed to a plain backend, the one of the route the client's SNI name chooses. In client mode
 * the roles turn: the accepted connection is plain and the TLS side is the one we make, to a
 * server we verify; below, "client" is always the TLS side and "backend" the plain one.
 * See relay.h for the rules; in short, for each direction:
 *   client → backend: ciphertext read from the client (while `in` is under the high-water mark),
 *     decrypted only while the backend's queue is under it, written to the backend; the client's
 *     close_notify becomes a FIN to the backend after the queued bytes (uv_shutdown waits for them);
 *     a client that ends without close_notify (truncation) is passed on as a reset;
 *   backend → client: read while the client's queue is under the high-water mark, encrypted,
 *     written; the backend's FIN becomes close_notify after the queued bytes; a backend error or
 *     an unreachable backend resets the client.
 * The connection ends when both directions have ended and every queue is written. */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <strings.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

struct relay_conn {
  relay_server *srv;
  relay_conn *prev, *next; /* in srv->live */
  uv_tcp_t tcp, backend;
  uv_timer_t timer;
  sli_conn *tls;
  char *in; /* ciphertext received from the client, not yet taken by the engine */
  size_t in_len, in_cap;
  size_t to_client, to_backend; /* bytes handed to uv_write and not yet written */
  int open_handles;
  int backend_init, backend_up, client_reading, backend_reading;
  int tls_up;           /* the TLS side's socket is connected (client mode: once we made it) */
  int secured;
  int client_eof;       /* the client's TCP FIN */
  int tls_in_done;      /* the client's direction ended (close_notify read) */
  int backend_eof;      /* the backend's FIN */
  int backend_fin_sent; /* our FIN to the backend was asked for */
  int tls_out_done;     /* our close_notify is queued */
  int client_shut;      /* the final shutdown of the client socket was asked for */
  int ending;           /* handles closing: nothing more is done */
  char peer[64];
};

typedef struct wreq {
  uv_write_t req;
  relay_conn *c;
  int to_backend;
  size_t len;
  char data[];
} wreq;

static void pump(relay_conn *c);

const char *relay_name = "serve";

void relay_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  flockfile(stderr); /* one whole line, whichever loop's thread logs */
  fprintf(stderr, "sli %s: ", relay_name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  funlockfile(stderr);
  va_end(ap);
}

/* ---- Ending ---- */

static void on_closed(uv_handle_t *h) {
  relay_conn *c = h->data;
  if (--c->open_handles > 0) return;
  relay_server *srv = c->srv;
  if (c->prev) c->prev->next = c->next;
  else srv->live = c->next;
  if (c->next) c->next->prev = c->prev;
  sli_conn_free(c->tls);
  free(c->in);
  free(c);
  if (--srv->n_live == 0 && srv->on_last_closed) srv->on_last_closed(srv);
}

static void close_handle(uv_handle_t *h, int reset) {
  if (uv_is_closing(h)) return;
  if (reset && uv_tcp_close_reset((uv_tcp_t *)h, on_closed) == 0) return;
  uv_close(h, on_closed);
}

/* close_all closes the connection's handles now (queued writes are dropped), resetting the sides
 * asked: the way a failure reaches a side as a failure. */
static void close_all(relay_conn *c, int reset_client, int reset_backend) {
  if (c->ending) return;
  c->ending = 1;
  close_handle((uv_handle_t *)&c->timer, 0);
  close_handle((uv_handle_t *)&c->tcp, reset_client);
  if (c->backend_init) close_handle((uv_handle_t *)&c->backend, reset_backend);
}

static void on_client_shut(uv_shutdown_t *req, int status) {
  relay_conn *c = req->data;
  free(req);
  close_all(c, 0, 0);
}

/* end_client closes the client's socket once everything queued for it is written (uv_shutdown
 * waits for the queue), then the connection. */
static void end_client(relay_conn *c) {
  if (c->client_shut || c->ending) return;
  c->client_shut = 1;
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (req) req->data = c;
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_client_shut) != 0) {
    free(req);
    close_all(c, 0, 0);
  }
}

/* fail: the TLS side failed with `code`: named in the log; an alert the engine queued still goes
 * to the client; the backend, if any, is reset (what it got may be incomplete). */
/* failure_shown: at most FAILURES_PER_SECOND failures a second reach the log, so that a scan cannot
 * flood it; the next line that passes says how many were left out. Returns 1 to log this one. */
#define FAILURES_PER_SECOND 20
static int failure_shown(relay_server *srv) {
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* one limit for every loop */
  static uint64_t second;
  static unsigned shown, hidden;
  uint64_t now = uv_now(srv->loop) / 1000;
  unsigned left_out = 0;
  int ok = 1;
  pthread_mutex_lock(&mu);
  if (now != second) {
    left_out = hidden;
    second = now;
    shown = hidden = 0;
  }
  if (shown < FAILURES_PER_SECOND) shown++;
  else hidden++, ok = 0;
  pthread_mutex_unlock(&mu);
  if (left_out) relay_log("%u more failed connections in the last second were not logged", left_out);
  return ok;
}

/* conn_failed logs a connection's failure, "PEER: ...", under the same limit. */
static void conn_failed(relay_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_failed(relay_conn *c, const char *fmt, ...) {
  if (!failure_shown(c->srv)) return;
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  relay_log("%s: %s", c->peer, msg);
}

/* printable: `in` for a log line — what a peer chose (an SNI name, a name in its certificate) may
 * hold line breaks or terminal escapes: each byte outside printable ASCII becomes \xNN, and the
 * text is cut (with "...") to fit `cap`. */
static const char *printable(const char *in, char *out, size_t cap) {
  size_t at = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
    if (at + 8 >= cap) {
      memcpy(out + at, "...", 3);
      at += 3;
      break;
    }
    if (*p >= 0x20 && *p < 0x7f && *p != '\\') out[at++] = (char)*p;
    else at += (size_t)snprintf(out + at, cap - at, "\\x%02x", *p);
  }
  out[at] = 0;
  return out;
}

static void fail(relay_conn *c, int code) {
  const char *m = sli_conn_error(c->tls);
  if (!failure_shown(c->srv)) {
  } else if (code == SLI_E_TRUNCATED)
    relay_log("%s: closed without close_notify (truncated)", c->peer);
  else {
    char shown[700]; /* the message may quote what the peer sent (names in its certificate) */
    relay_log("%s: %s: %s", c->peer, sli_err_name(code),
              m ? printable(m, shown, sizeof(shown)) : sli_strerror(code));
  }
  if (c->backend_init && !uv_is_closing((uv_handle_t *)&c->backend)) {
    close_handle((uv_handle_t *)&c->backend, 1);
    c->backend_init = c->backend_up = 0; /* closing on its own */
  }
  if (code == SLI_E_TRUNCATED) close_all(c, 0, 1);
  else end_client(c);
}

/* maybe_done: the end, once both directions have ended and their queues are written. */
static void maybe_done(relay_conn *c) {
  if (c->ending || !c->tls_in_done || !c->tls_out_done) return;
  if (!c->srv->set->echo && (!c->backend_eof || c->to_backend > 0)) return;
  end_client(c);
}

/* ---- Writes, counted per direction ---- */

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  relay_conn *c = w->c;
  if (w->to_backend) c->to_backend -= w->len;
  else c->to_client -= w->len;
  int to_backend = w->to_backend;
  free(w);
  if (c->ending) return;
  if (status < 0) {
    if (to_backend) {
      conn_failed(c, "backend write failed: %s", uv_strerror(status));
      close_all(c, 1, 0);
    } else {
      conn_failed(c, "client write failed: %s", uv_strerror(status));
      close_all(c, 0, 1);
    }
    return;
  }
  pump(c); /* a queue went down: read again, decrypt what waits */
}

static int queue_write(relay_conn *c, int to_backend, const void *data, size_t len) {
  uv_stream_t *to = (uv_stream_t *)(to_backend ? &c->backend : &c->tcp);
  if ((to_backend ? c->to_backend : c->to_client) == 0) {
    /* nothing queued: straight to the kernel (no request, copy or callback — and no epoll_ctl,
     * which libuv 1.44 makes after every queued write drains) */
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write(to, &b, 1);
    if (n == (int)len) return 0;
    if (n > 0) {
      data = (const char *)data + n;
      len -= (size_t)n;
    } else if (n != UV_EAGAIN) {
      return n;
    }
  }
  wreq *w = malloc(sizeof(*w) + len);
  if (!w) return UV_ENOMEM;
  w->c = c;
  w->to_backend = to_backend;
  w->len = len;
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  int r = uv_write(&w->req, to, &b, 1, on_written);
  if (r) {
    free(w);
    return r;
  }
  if (to_backend) c->to_backend += len;
  else c->to_client += len;
  return 0;
}

/* ---- The engine's transport: ciphertext from `in`, ciphertext out to the client ---- */

static ssize_t t_read(sli_conn *tls, void *buf, size_t len, void *arg) {
  relay_conn *c = arg;
  if (c->in_len == 0) return c->client_eof ? 0 : SLI_WANT_READ;
  size_t n = len < c->in_len ? len : c->in_len;
  memcpy(buf, c->in, n);
  memmove(c->in, c->in + n, c->in_len - n);
  c->in_len -= n;
  return (ssize_t)n;
}

static ssize_t t_write(sli_conn *tls, const void *buf, size_t len, void *arg) {
  relay_conn *c = arg;
  if (c->ending || c->client_shut) return SLI_E_IO;
  return queue_write(c, 0, buf, len) ? SLI_E_IO : (ssize_t)len;
}

static int tls_write_all(relay_conn *c, const char *p, size_t len) {
  while (len > 0) {
    ssize_t w = sli_conn_write(c->tls, p, len);
    if (w < 0) return (int)w;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* ---- Reading, under the high-water marks ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static _Thread_local char slab[65536]; /* one read at a time on each loop's thread */
  buf->base = slab;
  buf->len = sizeof(slab);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_backend_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* flow starts or stops reading each side: the client while `in` is under the mark (the engine
 * takes from it only while the backend's queue is), the backend while the client's queue is. */
static void flow(relay_conn *c) {
  if (c->ending) return;
  int want = c->tls_up && !c->client_eof && !c->client_shut &&
             c->in_len < (c->client_reading ? RELAY_HIGH_WATER : RELAY_LOW_WATER);
  if (want != c->client_reading) {
    if (want) uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_client_read);
    else uv_read_stop((uv_stream_t *)&c->tcp);
    c->client_reading = want;
  }
  want = c->backend_up && !c->backend_eof && !c->tls_out_done &&
         c->to_client < (c->backend_reading ? RELAY_HIGH_WATER : RELAY_LOW_WATER);
  if (want != c->backend_reading) {
    if (want) uv_read_start((uv_stream_t *)&c->backend, alloc_cb, on_backend_read);
    else uv_read_stop((uv_stream_t *)&c->backend);
    c->backend_reading = want;
  }
}

static void on_backend_shut(uv_shutdown_t *req, int status) {
  relay_conn *c = req->data;
  free(req);
  if (!c->ending) maybe_done(c);
}

/* fin_backend passes the client's end on: a FIN after the bytes queued for the backend. */
static void fin_backend(relay_conn *c) {
  if (c->backend_fin_sent || !c->backend_up) return;
  c->backend_fin_sent = 1;
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (req) req->data = c;
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->backend, on_backend_shut) != 0) {
    free(req);
    conn_failed(c, "cannot pass the end on to the backend");
    close_all(c, 1, 1);
  }
}

static void start_backend(relay_conn *c);

/* pump: the handshake, then plaintext from the engine to the backend (or back to the client),
 * as far as the queues allow. */
static void pump(relay_conn *c) {
  if (c->ending) return;
  if (!c->secured) {
    int rc = sli_conn_handshake(c->tls);
    if (rc == SLI_WANT_READ || rc == SLI_WANT_WRITE) {
      flow(c);
      return;
    }
    if (rc < 0) {
      fail(c, rc);
      return;
    }
    c->secured = 1;
    uv_timer_stop(&c->timer);
    const char *alpn = sli_conn_alpn(c->tls);
    relay_log("%s: secured %s %s%s%s%s", c->peer, sli_conn_version(c->tls), sli_conn_cipher(c->tls),
              alpn ? " alpn=" : "", alpn ? alpn : "", sli_conn_is_resumed(c->tls) ? " resumed" : "");
    if (c->srv->set->client_mode) c->backend_up = 1; /* the plain side is read from now on */
    else if (!c->srv->set->echo) start_backend(c);
    if (c->ending) return;
  }
  char buf[16384];
  while (!c->tls_in_done) {
    if (c->srv->set->echo ? c->to_client >= RELAY_HIGH_WATER
                     : !c->backend_up || c->to_backend >= RELAY_HIGH_WATER)
      break; /* the engine keeps the rest; the client is read while `in` has room */
    ssize_t n = sli_conn_read(c->tls, buf, sizeof(buf));
    if (n > 0) {
      int rc = c->srv->set->echo ? tls_write_all(c, buf, (size_t)n) : queue_write(c, 1, buf, (size_t)n);
      if (rc && c->srv->set->echo) {
      fail(c, rc);
      return;
    }
      if (rc) {
        conn_failed(c, "backend write failed: %s", uv_strerror(rc));
        {
      close_all(c, 1, 1);
      return;
    }
      }
      continue;
    }
    if (n == SLI_WANT_READ || n == SLI_WANT_WRITE) break;
    if (n < 0) {
      fail(c, (int)n);
      return;
    }
    /* the client's close_notify: its direction ended */
    c->tls_in_done = 1;
    if (c->srv->set->echo) {
      relay_log("%s: closed", c->peer);
      sli_conn_close(c->tls);
      c->tls_out_done = 1;
    } else {
      fin_backend(c);
    }
  }
  flow(c);
  maybe_done(c);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  relay_conn *c = s->data;
  if (c->ending) return;
  if (n == UV_EOF) {
    c->client_eof = 1;
  } else if (n < 0) {
    conn_failed(c, "%s", uv_strerror((int)n));
    {
      close_all(c, 0, 1);
      return;
    }
  } else if (n > 0) {
    if (c->in_len + (size_t)n > c->in_cap) {
      size_t cap = (c->in_len + (size_t)n) * 2;
      char *p = realloc(c->in, cap);
      if (!p) {
      close_all(c, 1, 1);
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
  relay_conn *c = s->data;
  if (c->ending) return;
  if (n > 0) {
    int rc = tls_write_all(c, buf->base, (size_t)n);
    if (rc < 0) {
      fail(c, rc);
      return;
    }
    flow(c);
    return;
  }
  if (n == UV_EOF) { /* the backend's end: close_notify after what is queued */
    c->backend_eof = 1;
    flow(c);
    relay_log("%s: closed", c->peer);
    sli_conn_close(c->tls);
    c->tls_out_done = 1;
    maybe_done(c);
    return;
  }
  if (n < 0) {
    conn_failed(c, "backend: %s", uv_strerror((int)n));
    close_all(c, 1, 0);
  }
}

/* proxy_header writes the PROXY protocol header (v1 text or v2 binary) telling the backend the
 * client's address and the address it connected to; returns its length, 0 if it cannot. */
static size_t proxy_header(relay_conn *c, char *out, size_t cap) {
  struct sockaddr_storage src, dst;
  int sl = sizeof(src), dl = sizeof(dst);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&src, &sl) ||
      uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&dst, &dl) || src.ss_family != dst.ss_family)
    return 0;
  int v4 = src.ss_family == AF_INET;
  const struct sockaddr_in *s4 = (void *)&src, *d4 = (void *)&dst;
  const struct sockaddr_in6 *s6 = (void *)&src, *d6 = (void *)&dst;
  if (c->srv->set->proxy_protocol == 1) {
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    inet_ntop(src.ss_family, v4 ? (const void *)&s4->sin_addr : (const void *)&s6->sin6_addr, a, sizeof(a));
    inet_ntop(dst.ss_family, v4 ? (const void *)&d4->sin_addr : (const void *)&d6->sin6_addr, b, sizeof(b));
    int n = snprintf(out, cap, "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6", a, b,
                     ntohs(v4 ? s4->sin_port : s6->sin6_port), ntohs(v4 ? d4->sin_port : d6->sin6_port));
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
  }
  static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
  size_t alen = v4 ? 12 : 36;
  if (cap < 16 + alen) return 0;
  memcpy(out, sig, 12);
  out[12] = 0x21;                 /* version 2, PROXY */
  out[13] = v4 ? 0x11 : 0x21;     /* TCP over IPv4 / IPv6 */
  out[14] = (char)(alen >> 8);
  out[15] = (char)(alen & 0xff);
  char *p = out + 16;
  if (v4) {
    memcpy(p, &s4->sin_addr, 4);
    memcpy(p + 4, &d4->sin_addr, 4);
    memcpy(p + 8, &s4->sin_port, 2);
    memcpy(p + 10, &d4->sin_port, 2);
  } else {
    memcpy(p, &s6->sin6_addr, 16);
    memcpy(p + 16, &d6->sin6_addr, 16);
    memcpy(p + 32, &s6->sin6_port, 2);
    memcpy(p + 34, &d6->sin6_port, 2);
  }
  return 16 + alen;
}

static void on_backend_connect(uv_connect_t *req, int status) {
  relay_conn *c = req->data;
  free(req);
  if (c->ending) return;
  if (status < 0) {
    conn_failed(c, "backend unreachable: %s", uv_strerror(status));
    {
      close_all(c, 1, 0);
      return;
    }
  }
  c->backend_up = 1;
  if (c->srv->set->proxy_protocol) { /* the real client's address, before its first byte */
    char hdr[232];
    size_t n = proxy_header(c, hdr, sizeof(hdr));
    if (!n || queue_write(c, 1, hdr, n)) {
      conn_failed(c, "cannot send the PROXY protocol header to the backend");
      close_all(c, 1, 1);
      return;
    }
  }
  pump(c);
}

/* name_matches: SNI `name` against a route's (case-insensitive; "*.example.com" matches one label
 * in front of example.com, not example.com itself). */
static int name_matches(const char *route, const char *name) {
  if (route[0] == '*' && route[1] == '.') {
    const char *dot = strchr(name, '.');
    return dot && dot != name && !strcasecmp(dot + 1, route + 2);
  }
  return !strcasecmp(route, name);
}

/* backend_for: the route the client's SNI name chooses, else the default backend, else NULL. */
static const struct sockaddr_storage *backend_for(relay_conn *c) {
  const relay_settings *set = c->srv->set;
  const char *sni = sli_conn_servername(c->tls);
  for (int i = 0; sni && i < set->n_routes; i++)
    if (name_matches(set->routes[i].name, sni)) return &set->routes[i].backend;
  return set->has_backend ? &set->backend : NULL;
}

static void start_backend(relay_conn *c) {
  const struct sockaddr_storage *to = backend_for(c);
  if (!to) {
    const char *sni = sli_conn_servername(c->tls);
    char shown[100];
    conn_failed(c, "no route for the name '%s' and no default --backend: refused",
                sni ? printable(sni, shown, sizeof(shown)) : "(none sent)");
    close_all(c, 1, 0);
    return;
  }
  int r = uv_tcp_init(c->srv->loop, &c->backend);
  if (r) {
    conn_failed(c, "backend: %s", uv_strerror(r));
    {
      close_all(c, 1, 0);
      return;
    }
  }
  c->backend.data = c;
  c->backend_init = 1;
  c->open_handles++;
  uv_connect_t *req = malloc(sizeof(*req));
  if (req) req->data = c;
  r = req ? uv_tcp_connect(req, &c->backend, (const struct sockaddr *)to, on_backend_connect)
          : UV_ENOMEM;
  if (r) {
    free(req);
    conn_failed(c, "backend unreachable: %s", uv_strerror(r));
    close_all(c, 1, 0);
  }
}

static void on_timeout(uv_timer_t *t) {
  relay_conn *c = t->data;
  if (c->secured || c->ending) return;
  conn_failed(c, "SLI_E_TIMEOUT: the handshake did not complete within %u ms",
              c->srv->set->handshake_timeout_ms);
  close_all(c, 0, c->srv->set->client_mode); /* a plain client waiting on us: a reset */
}

/* start_tls: the TLS side's socket is connected: the engine's connection, its handshake clock. */
static void start_tls(relay_conn *c, const struct sockaddr *peer, socklen_t peer_len) {
  const relay_settings *set = c->srv->set;
  c->tls_up = 1;
  int r = sli_conn_new_cbs(&c->tls, set->ctx, t_read, t_write, c,
                           set->client_mode ? set->servername : NULL, 0);
  if (r) {
    conn_failed(c, "%s: %s", sli_err_name(r), sli_last_error());
    close_all(c, 1, 1);
    return;
  }
  if (peer) sli_conn_set_peer_addr(c->tls, peer, peer_len);
  if (set->handshake_timeout_ms && !set->client_mode) /* client mode: running since the accept */
    uv_timer_start(&c->timer, on_timeout, set->handshake_timeout_ms, 0);
  pump(c); /* a client speaks first */
}

static void on_tls_connect(uv_connect_t *req, int status) {
  relay_conn *c = req->data;
  free(req);
  if (c->ending) return;
  if (status < 0) {
    conn_failed(c, "the TLS server is unreachable: %s", uv_strerror(status));
    close_all(c, 0, 1);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  start_tls(c, (const struct sockaddr *)&c->srv->set->backend, sizeof(c->srv->set->backend));
}

void relay_start(relay_server *srv, int fd) {
  const relay_settings *set = srv->set;
  relay_conn *c = calloc(1, sizeof(*c));
  if (!c) {
    relay_log("accept: out of memory");
    close(fd);
    return;
  }
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->next = srv->live;
  if (srv->live) srv->live->prev = c;
  srv->live = c;
  srv->n_live++;
  /* the accepted socket: the TLS side, or in client mode the plain one */
  uv_tcp_t *accepted = &c->tcp;
  if (set->client_mode) {
    uv_tcp_init(srv->loop, &c->backend);
    c->backend.data = c;
    c->backend_init = 1;
    c->open_handles++;
    accepted = &c->backend;
  }
  int r = uv_tcp_open(accepted, fd);
  if (r) {
    close(fd);
    relay_log("accept: %s", uv_strerror(r));
    close_all(c, 0, 0);
    return;
  }
  uv_tcp_nodelay(accepted, 1);
  struct sockaddr_storage ss;
  int sl = sizeof(ss);
  char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
  if (uv_tcp_getpeername(accepted, (struct sockaddr *)&ss, &sl) == 0)
    getnameinfo((struct sockaddr *)&ss, (socklen_t)sl, host, sizeof(host), port, sizeof(port),
                NI_NUMERICHOST | NI_NUMERICSERV);
  snprintf(c->peer, sizeof(c->peer), "%s:%s", host, port);
  if (!set->client_mode) {
    start_tls(c, (struct sockaddr *)&ss, (socklen_t)sl);
    return;
  }
  /* client mode: the plain client waits (unread) until the TLS server is connected and verified,
   * within the handshake timeout */
  if (set->handshake_timeout_ms) uv_timer_start(&c->timer, on_timeout, set->handshake_timeout_ms, 0);
  uv_connect_t *req = malloc(sizeof(*req));
  if (req) req->data = c;
  r = req ? uv_tcp_connect(req, &c->tcp, (const struct sockaddr *)&set->backend, on_tls_connect)
          : UV_ENOMEM;
  if (r) {
    free(req);
    conn_failed(c, "the TLS server is unreachable: %s", uv_strerror(r));
    close_all(c, 0, 1);
  }
}

size_t relay_cut(relay_server *srv) {
  size_t n = 0;
  for (relay_conn *c = srv->live; c; c = c->next) {
    if (c->ending) continue;
    close_all(c, 1, 1);
    n++;
  }
  return n;
}
