/* metrics.c — `sli serve --metrics ADDR:PORT`: the context's counters (sli_ctx_stats) and the served
 * certificate's remaining life, in Prometheus' text format (promtext.c), over plain HTTP on the loop of the
 * server itself. Any request on the port gets the page; a scraper is expected on loopback or a
 * private network (the page holds no secret, but it is not TLS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "promtext.h"

typedef struct scrape {
  uv_tcp_t tcp;
  metrics *m;
  char req[1024];
  size_t len;
  uv_write_t w;
  uv_buf_t buf;
} scrape;

/* page writes the metrics into a new buffer; its length in *len. */
static char *page(metrics *m, size_t *len) {
  sli_stats st;
  sli_ctx_stats(m->ctx, &st, sizeof(st));
  int64_t expiry = PROMTEXT_NO_EXPIRY;
  if (m->not_after) {
    int64_t not_after = m->not_after(m->arg);
    if (not_after > 0) expiry = not_after - (int64_t)time(NULL);
  }
  char *out = malloc(8192);
  if (out && !(*len = promtext_page(out, 8192, &st, expiry))) { /* never with these few lines */
    free(out);
    out = NULL;
  }
  return out;
}

static void on_closed(uv_handle_t *h) {
  scrape *s = h->data;
  free(s->buf.base);
  free(s);
}

static void on_sent(uv_write_t *w, int status) {
  scrape *s = w->data;
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  scrape *s = h->data;
  buf->base = s->req + s->len;
  buf->len = sizeof(s->req) - 1 - s->len;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  scrape *s = st->data;
  if (n > 0) s->len += (size_t)n;
  s->req[s->len] = 0;
  int complete = strstr(s->req, "\r\n\r\n") || strstr(s->req, "\n\n");
  if (n >= 0 && !complete && s->len < sizeof(s->req) - 1) return;
  uv_read_stop(st);
  if (n < 0 && !complete) {
    uv_close((uv_handle_t *)&s->tcp, on_closed);
    return;
  }
  size_t len = 0;
  char *body = page(s->m, &len);
  char head[160];
  int hl = snprintf(head, sizeof(head),
                    body ? "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n\r\n"
                         : "HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
                    len);
  s->buf.base = malloc((size_t)hl + len);
  if (!s->buf.base) {
    free(body);
    uv_close((uv_handle_t *)&s->tcp, on_closed);
    return;
  }
  memcpy(s->buf.base, head, (size_t)hl);
  if (body) memcpy(s->buf.base + hl, body, len);
  free(body);
  s->buf.len = (size_t)hl + len;
  s->w.data = s;
  if (uv_write(&s->w, st, &s->buf, 1, on_sent)) uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void on_scrape(uv_stream_t *l, int status) {
  metrics *m = l->data;
  if (status < 0) return;
  scrape *s = calloc(1, sizeof(*s));
  if (!s) return;
  s->m = m;
  uv_tcp_init(m->loop, &s->tcp);
  s->tcp.data = s;
  if (uv_accept(l, (uv_stream_t *)&s->tcp) || uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, on_read))
    uv_close((uv_handle_t *)&s->tcp, on_closed);
}

int metrics_start(metrics *m, int fd) {
  uv_tcp_init(m->loop, &m->listener);
  m->listener.data = m;
  if (uv_tcp_open(&m->listener, fd) || uv_listen((uv_stream_t *)&m->listener, 16, on_scrape)) return -1;
  return 0;
}

void metrics_stop(metrics *m) {
  if (!uv_is_closing((uv_handle_t *)&m->listener)) uv_close((uv_handle_t *)&m->listener, NULL);
}
