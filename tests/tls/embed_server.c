/* embed_server.c — the event-loop server of the README's "Embedding libsli", whole: one thread,
 * epoll, non-blocking sockets; the handshake deadline as the loop's timeout; SIGHUP reloads the
 * certificate without dropping a connection; the private key stays with a "key server" thread (an
 * HSM, a KMS) that answers after a delay while other connections go on. It echoes what it reads.
 *
 *   embed_server PORT CERT KEY [HANDSHAKE_TIMEOUT_MS [SIGN_DELAY_MS]]
 *
 * CERT is read on start and on each SIGHUP; KEY only by the key server. Prints "listening on
 * 127.0.0.1:PORT", then one line per event. Test: tests/tls/test_embed.py. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sli.h>

#define MAX_CONNS 256

typedef struct conn {
  int fd;
  sli_conn *tls;
  int waiting_key; /* the handshake waits for the key server */
  int closed;      /* dropped: freed once the events in hand are handled */
} conn;

static conn *conns[MAX_CONNS];
static const char *cert_file;
static uint32_t handshake_timeout_ms = 10000;

/* ---- The key server: signs on its own thread, after a delay, and wakes the loop ---- */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  sli_key *key;
  sli_conn *conn; /* one request at a time is enough here */
  uint8_t in[1024];
  size_t in_len;
  int delay_ms, wake_fd;
} keys = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *key_server(void *arg) {
  for (;;) {
    pthread_mutex_lock(&keys.mu);
    while (!keys.conn) pthread_cond_wait(&keys.cv, &keys.mu);
    sli_conn *c = keys.conn;
    uint8_t in[1024];
    size_t in_len = keys.in_len;
    memcpy(in, keys.in, in_len);
    pthread_mutex_unlock(&keys.mu);
    struct timespec d = {keys.delay_ms / 1000, (keys.delay_ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    uint8_t sig[1024];
    size_t n = sizeof(sig);
    int rc = sli_key_sign(keys.key, sig, &n, in, in_len);
    pthread_mutex_lock(&keys.mu); /* the loop frees no connection the key server holds */
    sli_conn_private_key_done(c, rc ? NULL : sig, n); /* from this thread: allowed */
    keys.conn = NULL;
    pthread_mutex_unlock(&keys.mu);
    uint64_t one = 1;
    if (write(keys.wake_fd, &one, sizeof(one)) < 0) perror("eventfd");
  }
  return NULL;
}

/* sign: the private-key callback; the key server answers later. */
static int sign(sli_conn *c, const sli_cert *cert, const uint8_t *in, size_t len, void *arg) {
  pthread_mutex_lock(&keys.mu);
  int busy = keys.conn != NULL || len > sizeof(keys.in);
  if (!busy) {
    keys.conn = c;
    memcpy(keys.in, in, len);
    keys.in_len = len;
    pthread_cond_signal(&keys.cv);
  }
  pthread_mutex_unlock(&keys.mu);
  if (busy) return SLI_E_INTERNAL; /* a real key server would queue */
  ((conn *)sli_conn_user_data(c))->waiting_key = 1;
  return SLI_WANT_PRIVATE_KEY;
}

/* ---- The context: built at start, rebuilt on SIGHUP ---- */

static void on_log(int level, const char *msg, void *arg) { printf("log %d: %s\n", level, msg); }

/* make_config: NULL on failure, sli_last_error() saying why. */
static sli_config *make_config(void) {
  sli_config *cfg = sli_config_new();
  if (!cfg || sli_config_add_cert_file_async_key(cfg, cert_file) ||
      sli_config_set_private_key_cb(cfg, sign, NULL) ||
      sli_config_set_handshake_timeout(cfg, handshake_timeout_ms)) {
    sli_config_free(cfg);
    return NULL;
  }
  return cfg;
}

static void reload(sli_ctx *ctx) {
  sli_config *cfg = make_config();
  if (cfg && sli_ctx_reload(ctx, cfg, 0) == 0)
    printf("reloaded %s\n", cert_file);
  else /* live connections and new ones keep the last good certificate */
    printf("reload refused, the old certificate stays: %s\n", sli_last_error());
  sli_config_free(cfg);
}

/* ---- Connections ---- */

static void drop(int ep, conn *c, const char *why) {
  printf("closed %s: %s\n", sli_conn_peer_addr(c->tls) ? sli_conn_peer_addr(c->tls) : "?", why);
  sli_conn_close(c->tls); /* close_notify, if the handshake got that far */
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->closed = 1; /* an event for it may still be in hand: freed after the batch (bury) */
}

static void bury(void) {
  pthread_mutex_lock(&keys.mu);
  for (int i = 0; i < MAX_CONNS; i++) {
    if (conns[i] && conns[i]->closed && keys.conn != conns[i]->tls) {
      sli_conn_free(conns[i]->tls); /* the key server has answered or never got it */
      free(conns[i]);
      conns[i] = NULL;
    }
  }
  pthread_mutex_unlock(&keys.mu);
}

/* serve: whatever the connection can do now — finish its handshake, echo what arrived. */
static void serve(int ep, conn *c) {
  if (c->closed) return;
  c->waiting_key = 0;
  char buf[16384];
  for (;;) {
    ssize_t n = sli_conn_read(c->tls, buf, sizeof(buf));
    if (n == SLI_WANT_READ || n == SLI_WANT_WRITE) return; /* epoll says when */
    if (n == SLI_WANT_PRIVATE_KEY) {
      c->waiting_key = 1; /* the key server's eventfd says when */
      return;
    }
    if (n == 0) return drop(ep, c, "the peer's close_notify");
    if (n < 0) return drop(ep, c, sli_conn_error(c->tls));
    for (ssize_t off = 0; off < n;) { /* echo (a real server queues on SLI_WANT_WRITE) */
      ssize_t w = sli_conn_write(c->tls, buf + off, (size_t)(n - off));
      if (w > 0) off += w;
      else if (w != SLI_WANT_WRITE && w != SLI_WANT_READ) return drop(ep, c, sli_conn_error(c->tls));
    }
  }
}

static void accept_one(int ep, int lfd, sli_ctx *ctx) {
  int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return;
  conn *c = calloc(1, sizeof(*c));
  int slot = -1;
  for (int i = 0; i < MAX_CONNS && slot < 0; i++)
    if (!conns[i]) slot = i;
  if (!c || slot < 0 || sli_conn_new_fd(&c->tls, ctx, fd, NULL, 0) != 0) {
    close(fd);
    free(c);
    return;
  }
  c->fd = fd;
  sli_conn_set_user_data(c->tls, c);
  conns[slot] = c;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  printf("accepted %s\n", sli_conn_peer_addr(c->tls));
}

/* next_timeout: the loop sleeps until the nearest handshake deadline (-1: none). */
static int next_timeout(void) {
  int64_t t = -1;
  for (int i = 0; i < MAX_CONNS; i++) {
    if (!conns[i] || conns[i]->closed) continue;
    int64_t d = sli_conn_deadline_ms(conns[i]->tls);
    if (d >= 0 && (t < 0 || d < t)) t = d;
  }
  return (int)t;
}

static void expire(int ep) {
  for (int i = 0; i < MAX_CONNS; i++)
    if (conns[i] && !conns[i]->closed && sli_conn_deadline_ms(conns[i]->tls) == 0)
      drop(ep, conns[i], "no handshake within the deadline");
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  sigset_t hup; /* SIGHUP reloads: blocked before any thread starts, read from a signalfd */
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &hup, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  cert_file = argv[2];
  if (argc > 4) handshake_timeout_ms = (uint32_t)atoi(argv[4]);
  keys.delay_ms = argc > 5 ? atoi(argv[5]) : 100;
  sli_set_log_callback(on_log, SLI_LOG_NOTICE, NULL);
  if (sli_key_load_file(&keys.key, argv[3], NULL, NULL, 0)) {
    printf("key: %s\n", sli_last_error());
    return 1;
  }
  sli_config *cfg = make_config();
  sli_ctx *ctx = NULL;
  if (!cfg || sli_ctx_new_server(&ctx, cfg, 0)) {
    printf("context: %s\n", sli_last_error());
    return 1;
  }
  sli_config_free(cfg);
  keys.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  pthread_t t;
  pthread_create(&t, NULL, key_server, NULL);
  int sfd = signalfd(-1, &hup, SFD_NONBLOCK | SFD_CLOEXEC);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 64)) {
    perror("listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.ptr = &keys.wake_fd;
  epoll_ctl(ep, EPOLL_CTL_ADD, keys.wake_fd, &ev);
  ev.data.ptr = &sfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
  printf("listening on 127.0.0.1:%s\n", argv[1]);
  for (;;) {
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, next_timeout());
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &lfd) {
        accept_one(ep, lfd, ctx);
      } else if (p == &sfd) {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof(si)) == sizeof(si)) reload(ctx);
      } else if (p == &keys.wake_fd) {
        uint64_t v;
        if (read(keys.wake_fd, &v, sizeof(v)) < 0) continue;
        for (int j = 0; j < MAX_CONNS; j++) /* signatures arrived: those waiting go on */
          if (conns[j] && conns[j]->waiting_key) serve(ep, conns[j]);
      } else {
        serve(ep, p);
      }
    }
    expire(ep);
    bury();
  }
}
