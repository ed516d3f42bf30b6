/* loops.c — `sli serve` / `sli proxy` on one libuv loop per thread (loops.h). The main thread keeps
 * the signals, reloads and metrics; a loop only accepts and relays. Stopping goes by uv_async: the
 * loop closes its listener, lets its connections finish (relay.c's on_last_closed), cuts what is
 * left after the drain time, and tells the main loop when it has stopped. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loops.h"

struct serve_loop {
  relay_server relay; /* first: on_last_closed gets it */
  serve_loops *all;
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t stop;
  uv_poll_t listener;
  uv_timer_t drain;
  int lfd, own_lfd, spare_fd;
  atomic_int stop_asked; /* how many times loops_stop asked */
  atomic_int refusing;   /* the listener is closed: new connections are refused */
  pthread_mutex_t mu;    /* `ended` and the stop handle: loops_stop never sends to a closed one */
  int ended;
  int stopping;
  uint64_t last_accept_error_ms;
};

static uv_async_t *main_done;
static atomic_int running;

/* turn_away: out of descriptors, a client waiting in the backlog is accepted with the spare one
 * and told so — a fatal internal_error alert, which a TLS client may take in plaintext before the
 * handshake — rather than closed in silence; and it is said in the log, once a second. */
static int turn_away(serve_loop *s, int err) {
  uint64_t now = uv_now(&s->loop);
  if (!s->last_accept_error_ms || now - s->last_accept_error_ms >= 1000) {
    relay_log("accept: %s: a client was turned away", strerror(err));
    s->last_accept_error_ms = now ? now : 1;
  }
  if (s->spare_fd < 0) return -1;
  close(s->spare_fd);
  int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) {
    static const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50};
    if (send(fd, alert, sizeof(alert), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
    }
    close(fd);
  }
  s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0 ? 0 : -1;
}

static void on_listener(uv_poll_t *h, int status, int events) {
  serve_loop *s = h->data;
  for (int i = 0; i < 64 && !s->stopping; i++) { /* a batch, then the other events */
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      relay_start(&s->relay, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if ((errno == EMFILE || errno == ENFILE) && turn_away(s, errno) == 0) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) relay_log("accept: %s", strerror(errno));
    return;
  }
}

static void on_drained(relay_server *r) {
  serve_loop *s = (serve_loop *)r;
  if (s->stopping) uv_stop(&s->loop);
}

static void cut(serve_loop *s, const char *why) {
  size_t n = relay_cut(&s->relay);
  if (n) relay_log("drain: %zu connection(s) still open %s: cut (reset)", n, why);
}

static void on_drain_timeout(uv_timer_t *t) {
  serve_loop *s = t->data;
  char why[64];
  snprintf(why, sizeof(why), "after %u ms", s->all->drain_ms);
  cut(s, why);
}

static void on_stop(uv_async_t *a) {
  serve_loop *s = a->data;
  if (s->stopping) {
    if (atomic_load(&s->stop_asked) > 1) cut(s, "at a second signal"); /* asked again: cut now */
    return;
  }
  s->stopping = 1;
  if (!uv_is_closing((uv_handle_t *)&s->listener)) { /* no new connection: refused */
    uv_poll_stop(&s->listener);
    uv_close((uv_handle_t *)&s->listener, NULL);
    if (s->own_lfd) close(s->lfd);
  }
  atomic_store(&s->refusing, 1);
  if (s->relay.n_live == 0) {
    uv_stop(&s->loop);
    return;
  }
  uv_timer_start(&s->drain, on_drain_timeout, s->all->drain_ms, 0);
  if (atomic_load(&s->stop_asked) > 1) cut(s, "at a second signal");
}

static void close_cb(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void run(void *arg) {
  serve_loop *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
  pthread_mutex_lock(&s->mu);
  s->ended = 1; /* from here on the stop handle closes: no more uv_async_send to it */
  pthread_mutex_unlock(&s->mu);
  uv_walk(&s->loop, close_cb, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  if (s->spare_fd >= 0) close(s->spare_fd);
  if (atomic_fetch_sub(&running, 1) == 1) uv_async_send(main_done);
}

/* listen_like: another socket on `lfd`'s address, for one more loop (SO_REUSEPORT). */
static int listen_like(int lfd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(lfd, (struct sockaddr *)&ss, &sl)) return -1;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
      bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 511)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

int loops_start(serve_loops *l, int n, int lfd, int shared, const relay_settings *set,
                uint32_t drain_ms, uv_loop_t *main_loop, uv_async_cb all_done) {
  l->loops = calloc((size_t)n, sizeof(*l->loops));
  if (!l->loops) return -1;
  l->n = n;
  l->drain_ms = drain_ms;
  l->shared_lfd = shared ? lfd : -1;
  main_done = &l->all_done;
  uv_async_init(main_loop, &l->all_done, all_done);
  l->all_done.data = l;
  for (int i = 0; i < n; i++) {
    serve_loop *s = &l->loops[i];
    s->all = l;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = i == 0 || shared ? lfd : listen_like(lfd);
    s->own_lfd = !shared;
    if (s->lfd < 0) {
      fprintf(stderr, "sli %s: cannot listen for loop %d: %s\n", relay_name, i + 1, strerror(errno));
      return -1;
    }
    int fl = fcntl(s->lfd, F_GETFL);
    if (fl < 0 || fcntl(s->lfd, F_SETFL, fl | O_NONBLOCK) < 0 || listen(s->lfd, 511) < 0) {
      fprintf(stderr, "sli %s: cannot listen: %s\n", relay_name, strerror(errno));
      return -1;
    }
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    uv_loop_init(&s->loop);
    s->relay.loop = &s->loop;
    s->relay.set = set;
    s->relay.on_last_closed = on_drained;
    uv_timer_init(&s->loop, &s->drain);
    s->drain.data = s;
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    if (uv_poll_init(&s->loop, &s->listener, s->lfd) ||
        uv_poll_start(&s->listener, UV_READABLE, on_listener)) {
      fprintf(stderr, "sli %s: cannot listen\n", relay_name);
      return -1;
    }
    s->listener.data = s;
  }
  atomic_store(&running, n);
  for (int i = 0; i < n; i++)
    if (uv_thread_create(&l->loops[i].thread, run, &l->loops[i])) {
      fprintf(stderr, "sli %s: cannot start loop %d\n", relay_name, i + 1);
      return -1;
    }
  return 0;
}

size_t loops_stop(serve_loops *l) {
  for (int i = 0; i < l->n; i++) {
    serve_loop *s = &l->loops[i];
    atomic_fetch_add(&s->stop_asked, 1);
    pthread_mutex_lock(&s->mu);
    if (!s->ended) uv_async_send(&s->stop); /* a loop that has ended has nothing left to cut */
    pthread_mutex_unlock(&s->mu);
  }
  /* back once every loop refuses new connections (a second or so at most), so that what the
   * caller says next ("stopping") is true; a shared systemd socket is closed here, once */
  for (int waited = 0; waited < 2000; waited++) {
    int all = 1;
    for (int i = 0; i < l->n; i++) all &= atomic_load(&l->loops[i].refusing);
    if (all) break;
    uv_sleep(1);
  }
  if (l->shared_lfd >= 0) { /* no loop polls it any more */
    close(l->shared_lfd);
    l->shared_lfd = -1;
  }
  size_t live = 0;
  for (int i = 0; i < l->n; i++)
    live += l->loops[i].relay.n_live; /* a glance from another thread: for the log line only */
  return live;
}

void loops_join(serve_loops *l) {
  for (int i = 0; i < l->n; i++) uv_thread_join(&l->loops[i].thread);
  free(l->loops);
  l->loops = NULL;
}
