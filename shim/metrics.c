/* metrics.c — SLI_METRICS=unix:/path | ADDR:PORT: the shim's counters in Prometheus' text format
 * (the page of `sli serve --metrics`, tools/promtext.c), served over plain HTTP by one small thread.
 *
 * Counters live in one page of memory shared by every process that forks from the one that read
 * the settings (MAP_SHARED, made at start-up), so a fork-per-connection daemon's children count
 * where the parent serves. The listening socket is made when the first TLS context is (a program
 * that never speaks TLS — a helper a daemon runs — binds nothing). A process that forks keeps the
 * socket in its children; if the serving process ends (a daemon's first process exits once it has
 * forked the real one), the first process with a new connection takes the socket over.
 *
 * The host must not be able to hurt the thread, nor the thread the host: the socket and the
 * scrape being answered are private descriptors (shim_private_set: a host's close, closefrom or
 * close_range skips them — EBADF, what the kernel says of a number never opened), a dup2 onto one
 * moves ours out of the way first, and every use of them is made under `fd_mu` after reading the
 * number again. The thread blocks every signal. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include "promtext.h"

typedef struct counters {
  _Atomic int32_t server; /* the pid whose thread serves the page; 0: none yet */
  _Atomic uint64_t handshakes, resumed, failed[16], bytes_in, bytes_out, live;
} counters;

static counters *shared; /* NULL: SLI_METRICS unset (every count is one load and a branch) */
static struct sockaddr_storage where;
static socklen_t where_len;
static char where_text[120];

static _Atomic int lfd = -1, cfd = -1; /* the listener, the scrape being answered: private */
static pthread_mutex_t fd_mu = PTHREAD_MUTEX_INITIALIZER;
static int serving;           /* this process runs the thread */
static int64_t next_look_ms;  /* a process without the thread looks again then (takeover) */

#define SCRAPE_MS 2000 /* a scraper gets this long to send its request and take the page */

/* ---- the setting ---- */

int shim_metrics_setting(const char *v) {
  memset(&where, 0, sizeof(where));
  snprintf(where_text, sizeof(where_text), "%s", v);
  if (!strncmp(v, "unix:", 5)) {
    struct sockaddr_un *u = (struct sockaddr_un *)&where;
    if (!v[5] || strlen(v + 5) >= sizeof(u->sun_path)) goto bad;
    u->sun_family = AF_UNIX;
    memcpy(u->sun_path, v + 5, strlen(v + 5) + 1);
    where_len = sizeof(*u);
    return 0;
  }
  char host[64];
  const char *colon = strrchr(v, ':');
  if (!colon || colon == v || (size_t)(colon - v) >= sizeof(host)) goto bad;
  memcpy(host, v, (size_t)(colon - v));
  host[colon - v] = 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || !colon[1] || port <= 0 || port > 65535) goto bad;
  size_t hl = strlen(host);
  if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
    host[hl - 1] = 0;
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&where;
    if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) goto bad;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    where_len = sizeof(*a);
    return 0;
  }
  struct sockaddr_in *a = (struct sockaddr_in *)&where;
  if (inet_pton(AF_INET, host, &a->sin_addr) != 1) goto bad;
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  where_len = sizeof(*a);
  return 0;
bad:
  shim_log(LOG_ERR_, "SLI_METRICS: '%s' is not unix:/path, ADDR:PORT or [ADDR6]:PORT (numeric)", v);
  return -1;
}

/* shim_metrics_init: the shared page, at start-up (before the host forks anything). */
void shim_metrics_init(void) {
  if (!where_len || shared) return;
  void *p = mmap(NULL, sizeof(counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    shim_log(LOG_WARN_, "SLI_METRICS: no shared memory for the counters: no metrics");
    return;
  }
  shared = p;
}

/* ---- counting (any process, any thread) ---- */

void shim_count_handshake(int resumed) {
  if (!shared) return;
  atomic_fetch_add_explicit(&shared->handshakes, 1, memory_order_relaxed);
  if (resumed) atomic_fetch_add_explicit(&shared->resumed, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&shared->live, 1, memory_order_relaxed);
}

void shim_count_failure(int code) {
  if (!shared) return;
  int c = sli_error_category(code);
  if (c > 0 && c < 16) atomic_fetch_add_explicit(&shared->failed[c], 1, memory_order_relaxed);
}

void shim_count_ended(void) {
  if (shared) atomic_fetch_sub_explicit(&shared->live, 1, memory_order_relaxed);
}

void shim_count_bytes(size_t in, size_t out) {
  if (!shared) return;
  if (in) atomic_fetch_add_explicit(&shared->bytes_in, in, memory_order_relaxed);
  if (out) atomic_fetch_add_explicit(&shared->bytes_out, out, memory_order_relaxed);
}

/* ---- private descriptors ---- */

static int ours(int fd) { return fd >= 0 && (fd == atomic_load(&lfd) || fd == atomic_load(&cfd)); }

/* shim_metrics_vacate: the host is about to make `fd` its own (dup2 onto it): ours moves. */
void shim_metrics_vacate(int fd) {
  if (!ours(fd)) return;
  int saved = errno;
  pthread_mutex_lock(&fd_mu);
  _Atomic int *slot = fd == atomic_load(&lfd) ? &lfd : fd == atomic_load(&cfd) ? &cfd : NULL;
  if (slot) {
    int moved = shim_private_move(fd);
    if (moved < 0) { /* no number left: ours is simply gone */
      shim_private_set(fd, 0);
      real.close(fd);
    }
    atomic_store(slot, moved);
  }
  pthread_mutex_unlock(&fd_mu);
  errno = saved;
}

/* ---- the page ---- */

static void answer(void) {
  char req[1024];
  size_t len = 0;
  int64_t end = shim_now_ms() + SCRAPE_MS;
  for (;;) { /* the request's head, up to an empty line (or a full buffer) */
    int64_t left = end - shim_now_ms();
    if (left <= 0) return;
    struct pollfd p = {.fd = atomic_load(&cfd), .events = POLLIN};
    real.poll(&p, 1, (int)left);
    pthread_mutex_lock(&fd_mu);
    int fd = atomic_load(&cfd);
    ssize_t n = fd < 0 ? 0 : real.recv(fd, req + len, sizeof(req) - 1 - len, MSG_DONTWAIT);
    int e = errno;
    pthread_mutex_unlock(&fd_mu);
    if (n == 0 || (n < 0 && e != EAGAIN && e != EINTR)) return;
    if (n > 0) len += (size_t)n;
    req[len] = 0;
    if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n") || len == sizeof(req) - 1) break;
  }
  sli_stats st;
  memset(&st, 0, sizeof(st));
  st.handshakes = atomic_load(&shared->handshakes);
  st.resumed = atomic_load(&shared->resumed);
  for (int i = 0; i < 16; i++) st.failed[i] = atomic_load(&shared->failed[i]);
  st.bytes_in = atomic_load(&shared->bytes_in);
  st.bytes_out = atomic_load(&shared->bytes_out);
  int64_t live = (int64_t)atomic_load(&shared->live);
  st.live = live > 0 ? (uint64_t)live : 0;
  int64_t not_after = shim_cert_not_after();
  char body[4096], out[4096 + 200];
  size_t blen = promtext_page(body, sizeof(body), &st,
                              not_after > 0 ? not_after - (int64_t)time(NULL) : PROMTEXT_NO_EXPIRY);
  int hl = snprintf(out, sizeof(out),
                    blen ? "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n\r\n"
                         : "HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
                    blen);
  memcpy(out + hl, body, blen);
  size_t total = (size_t)hl + blen, sent = 0;
  while (sent < total) {
    int64_t left = end - shim_now_ms();
    if (left <= 0) return;
    struct pollfd p = {.fd = atomic_load(&cfd), .events = POLLOUT};
    real.poll(&p, 1, (int)left);
    pthread_mutex_lock(&fd_mu);
    int fd = atomic_load(&cfd);
    ssize_t n = fd < 0 ? 0 : real.send(fd, out + sent, total - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    int e = errno;
    pthread_mutex_unlock(&fd_mu);
    if (n == 0 || (n < 0 && e != EAGAIN && e != EINTR)) return;
    if (n > 0) sent += (size_t)n;
  }
}

static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cv = PTHREAD_COND_INITIALIZER;
static int started;

static void *loop(void *arg) {
  pthread_mutex_lock(&start_mu);
  started = 1;
  pthread_cond_signal(&start_cv);
  pthread_mutex_unlock(&start_mu);
  for (;;) {
    struct pollfd p = {.fd = atomic_load(&lfd), .events = POLLIN};
    if (p.fd < 0) break;
    real.poll(&p, 1, 1000); /* the number may change under us (vacate): looked up again below */
    pthread_mutex_lock(&fd_mu);
    int l = atomic_load(&lfd);
    int c = l < 0 ? -1 : real.accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int e = errno;
    if (c >= 0) {
      shim_private_set(c, 1);
      atomic_store(&cfd, c);
    }
    pthread_mutex_unlock(&fd_mu);
    if (c < 0) {
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) usleep(100 * 1000);
      continue;
    }
    answer();
    pthread_mutex_lock(&fd_mu);
    c = atomic_exchange(&cfd, -1);
    if (c >= 0) {
      shim_private_set(c, 0);
      real.close(c);
    }
    pthread_mutex_unlock(&fd_mu);
  }
  return arg;
}

/* listen_now makes the listening socket; -1 if the address is taken or refused (logged). */
static int listen_now(int quiet) {
  static int said; /* one line per process, however often it tries */
  if (said) quiet = 1;
  int fam = where.ss_family;
  int fd = real.socket(fam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (fam == AF_UNIX) {
    /* a socket file nobody answers on is a stale one (its server died): replace it; one a live
     * server answers on is that server's */
    int probe = real.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
      int live = real.connect(probe, (struct sockaddr *)&where, where_len) == 0;
      int e = errno;
      real.close(probe);
      if (!live && e == ECONNREFUSED) unlink(((struct sockaddr_un *)&where)->sun_path);
    }
  } else {
    int one = 1;
    real.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  }
  if (real.bind(fd, (struct sockaddr *)&where, where_len) || real.listen(fd, 16)) {
    int e = errno;
    real.close(fd);
    if (!quiet && !said++)
      shim_log(LOG_WARN_, "SLI_METRICS %s: %s%s: TLS is served, the metrics are not", where_text,
               strerror(e), e == EADDRINUSE ? " (another program, or one this host ran, has it)" : "");
    return -1;
  }
  return fd;
}

static int start_thread(void) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&a, 128 * 1024);
  started = 0;
  int rc = pthread_create(&t, &a, loop, NULL);
  pthread_attr_destroy(&a);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  /* Back to the host only once the thread runs our code: a fork in between would copy a thread
   * half-way through its start-up, holding whatever its runtime's start-up holds (ASan's
   * allocator, for one: the child's next malloc waits forever). */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 2;
  pthread_mutex_lock(&start_mu);
  while (!rc && !started && pthread_cond_timedwait(&start_cv, &start_mu, &until) == 0) {
  }
  pthread_mutex_unlock(&start_mu);
  return rc;
}

/* alive: the process still runs (a zombie does not serve). */
static int alive(pid_t pid) {
  if (pid <= 0 || (kill(pid, 0) && errno == ESRCH)) return 0;
  char path[64], buf[256];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  int fd = real.open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  ssize_t n = real.read(fd, buf, sizeof(buf) - 1);
  real.close(fd);
  if (n <= 0) return 1;
  buf[n] = 0;
  const char *rp = strrchr(buf, ')');
  return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* shim_metrics_maybe: when a context is made and at new connections — serve the page here if no
 * living process does (at most one look a second). */
void shim_metrics_maybe(void) {
  if (!shared || __atomic_load_n(&serving, __ATOMIC_ACQUIRE)) return;
  int64_t now = shim_now_ms();
  if (now < __atomic_load_n(&next_look_ms, __ATOMIC_RELAXED)) return;
  __atomic_store_n(&next_look_ms, now + 1000, __ATOMIC_RELAXED);
  int saved = errno;
  pid_t me = getpid();
  int32_t cur = atomic_load(&shared->server);
  if ((cur == 0 || (cur != me && !alive(cur))) &&
      atomic_compare_exchange_strong(&shared->server, &cur, me)) {
    pthread_mutex_lock(&fd_mu);
    int fd = atomic_load(&lfd); /* inherited from the process that served before */
    int first = fd < 0 && cur == 0;
    if (fd < 0) {
      fd = listen_now(!first);
      shim_private_set(fd, 1);
      atomic_store(&lfd, fd);
    }
    pthread_mutex_unlock(&fd_mu);
    if (fd >= 0 && !start_thread()) {
      __atomic_store_n(&serving, 1, __ATOMIC_RELEASE);
      shim_log(LOG_INFO_, "metrics on %s", where_text);
    } else {
      atomic_store(&shared->server, 0); /* someone else may, later */
    }
  }
  errno = saved;
}

/* In a forked child: the thread is the parent's, and so is the scrape it is answering (a copy
 * kept here would hold the scraper's connection open). The listener stays, for a takeover. */
void shim_metrics_atfork_child(void) {
  pthread_mutex_init(&fd_mu, NULL);
  pthread_mutex_init(&start_mu, NULL);
  int c = atomic_exchange(&cfd, -1);
  if (c >= 0) {
    shim_private_set(c, 0);
    real.close(c);
  }
  serving = 0;
  next_look_ms = 0;
}
