/* metrics.c — SLI_METRICS=unix:/path | ADDR:PORT: the shim's counters in Prometheus' text format
 * (the page of `sli serve --metrics`, tools/promtext.c), served over plain HTTP by one small thread.
 *
 * Counters live in one page of memory shared by every process that forks from the one that read
 * the settings (MAP_SHARED, made at start-up), so a fork-per-connection daemon's children count
 * where the parent serves. The thread starts with the first TLS context (a program that never
 * speaks TLS — a helper a daemon runs — binds nothing); if the serving process ends (a daemon's
 * first process exits once it has forked the real one), the next process with a new connection
 * binds the address again and serves.
 *
 * The host must not be able to hurt the thread, nor the thread the host: the thread has a table of
 * descriptors of its own (unshare(CLONE_FILES)) holding only its listening socket and the scrapes
 * it answers — none of them is a number of the host's, so no close, dup2, fcntl or close loop of
 * the host reaches them, and they are not inherited by the host's children. The thread blocks
 * every signal, answers up to SLOTS scrapes at once, each within SCRAPE_MS. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

static int serving;           /* this process runs the thread */
static int64_t next_look_ms;  /* a process without the thread looks again then (takeover) */

#define SLOTS 32       /* scrapes answered at once (more wait in the backlog) */
#define SCRAPE_MS 2000 /* a scraper gets this long to send its request and take the page */

/* ---- the setting ---- */

int shim_metrics_setting(const char *v) {
  memset(&where, 0, sizeof(where));
  where_len = 0;
  if (!*v) return 0; /* SLI_METRICS= (systemd's Environment=SLI_METRICS=): unset */
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
  long port = colon[1] >= '0' && colon[1] <= '9' ? strtol(colon + 1, &end, 10) : -1;
  if (port <= 0 || port > 65535 || *end) goto bad;
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

/* ---- the page ---- */

typedef struct scrape {
  int fd;          /* in the thread's own table; -1: a free slot */
  int state;       /* 0 reading the request's head, 1 sending, 2 draining what it sent after */
  int64_t deadline;
  size_t len, sent, total;
  char req[1024];
  char out[4096 + 256];
} scrape;

static void page(scrape *c) {
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
  char body[4096];
  size_t blen = promtext_page(body, sizeof(body), &st,
                              not_after > 0 ? not_after - (int64_t)time(NULL) : PROMTEXT_NO_EXPIRY);
  int hl = snprintf(c->out, sizeof(c->out),
                    blen ? "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n\r\n"
                         : "HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
                    blen);
  memcpy(c->out + hl, body, blen);
  c->total = (size_t)hl + blen;
  c->sent = 0;
  c->state = 1;
}

static void drop(scrape *c) {
  real.close(c->fd);
  c->fd = -1;
}

/* step: what the scrape's socket allows now. */
static void step(scrape *c) {
  if (c->state == 0) {
    ssize_t n = real.recv(c->fd, c->req + c->len, sizeof(c->req) - 1 - c->len, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      drop(c);
      return;
    }
    if (n > 0) c->len += (size_t)n;
    c->req[c->len] = 0;
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n") || c->len == sizeof(c->req) - 1) page(c);
  }
  if (c->state == 1) {
    ssize_t n = real.send(c->fd, c->out + c->sent, c->total - c->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      drop(c);
      return;
    }
    if (n > 0) c->sent += (size_t)n;
    if (c->sent == c->total) {
      /* the end after the page; what the scraper sent beyond our buffer is read and dropped, so
       * that the close is not a reset that could cost it the page */
      real.shutdown(c->fd, SHUT_WR);
      c->state = 2;
      c->deadline = shim_now_ms() + 500;
    }
    return;
  }
  if (c->state == 2) {
    char sink[4096];
    ssize_t n;
    while ((n = real.recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0) {
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) drop(c);
  }
}

static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cv = PTHREAD_COND_INITIALIZER;
static int ready; /* 0 starting, 1 on its own table, -1 could not */
static int start_fd;

static void say_ready(int v) {
  pthread_mutex_lock(&ready_mu);
  ready = v;
  pthread_cond_signal(&ready_cv);
  pthread_mutex_unlock(&ready_mu);
}

static void *loop(void *arg) {
  /* a table of our own, then out of it everything but our listener (copies of the host's files
   * held here would keep its connections from ending) */
  int l = start_fd;
  if (unshare(CLONE_FILES) != 0 || !real.close_range ||
      (l > 0 && real.close_range(0, (unsigned)l - 1, 0)) || real.close_range((unsigned)l + 1, ~0U, 0)) {
    say_ready(-1);
    return arg;
  }
  say_ready(1);
  static scrape slot[SLOTS];
  for (int i = 0; i < SLOTS; i++) slot[i].fd = -1;
  for (;;) {
    struct pollfd p[SLOTS + 1];
    scrape *who[SLOTS + 1];
    nfds_t n = 0;
    int64_t now = shim_now_ms(), wake = now + 1000;
    int used = 0;
    for (int i = 0; i < SLOTS; i++) {
      scrape *c = &slot[i];
      if (c->fd < 0) continue;
      if (now >= c->deadline) {
        drop(c);
        continue;
      }
      used++;
      if (c->deadline < wake) wake = c->deadline;
      p[n] = (struct pollfd){.fd = c->fd, .events = c->state == 1 ? POLLOUT : POLLIN};
      who[n++] = c;
    }
    if (used < SLOTS) {
      p[n] = (struct pollfd){.fd = l, .events = POLLIN};
      who[n++] = NULL;
    }
    if (real.poll(p, n, (int)(wake - now)) <= 0) continue;
    for (nfds_t i = 0; i < n; i++) {
      if (!p[i].revents) continue;
      if (who[i]) {
        step(who[i]);
        continue;
      }
      for (int k = 0; k < SLOTS; k++) { /* new scrapes, into the free slots */
        if (slot[k].fd >= 0) continue;
        int fd = real.accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            usleep(100 * 1000);
          break;
        }
        slot[k].fd = fd;
        slot[k].state = 0;
        slot[k].len = 0;
        slot[k].deadline = shim_now_ms() + SCRAPE_MS;
      }
    }
  }
  return arg;
}

/* start_serving: the thread on the listening socket `fd` (which leaves the host's table). */
static int start_serving(int fd) {
  start_fd = fd;
  ready = 0;
  int rc = shim_thread_start(loop, 128 * 1024);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 2;
  pthread_mutex_lock(&ready_mu);
  while (!rc && !ready && pthread_cond_timedwait(&ready_cv, &ready_mu, &until) == 0) {
  }
  int ok = !rc && ready == 1;
  pthread_mutex_unlock(&ready_mu);
  shim_private_set(fd, 0);
  real.close(fd); /* the thread has its own; the host's table keeps nothing of ours */
  if (!rc && !ok)
    shim_log(LOG_WARN_, "SLI_METRICS %s: the thread cannot have descriptors of its own "
                        "(unshare): no metrics", where_text);
  return ok ? 0 : -1;
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
      struct stat st;
      const char *path = ((struct sockaddr_un *)&where)->sun_path;
      if (!live && e == ECONNREFUSED && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path); /* only a socket: a file or a link there is someone's, never removed */
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
    int fd = listen_now(cur != 0); /* a takeover is quiet about an address in use */
    shim_private_set(fd, 1);           /* until the thread has it: not the host's to close */
    if (fd >= 0 && !start_serving(fd)) {
      __atomic_store_n(&serving, 1, __ATOMIC_RELEASE);
      shim_log(LOG_INFO_, "metrics on %s", where_text);
    } else {
      atomic_store(&shared->server, 0); /* someone else may, later */
    }
  }
  errno = saved;
}

/* In a forked child: the thread, and its descriptors, are the parent's. */
void shim_metrics_atfork_child(void) {
  serving = 0;
  next_look_ms = 0;
}
