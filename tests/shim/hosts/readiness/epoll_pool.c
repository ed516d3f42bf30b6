/* epoll_pool PORT MODE NCLIENTS — an echo server on a worker pool sharing ONE epoll set (the
 * pattern of thread-pool daemons: memcached-like, Java NIO-like, many "reactor" libraries).
 *
 * The workers start first and block in epoll_wait (no timeout) on the still empty set; the main
 * thread accepts NCLIENTS connections, makes them non-blocking and adds them; the workers echo.
 * When all connections have ended, the main thread adds an eventfd to the set and signals it to
 * stop the workers. MODE:
 *   oneshot     4 workers, EPOLLIN|EPOLLONESHOT: a worker reads until EAGAIN, echoes, and re-arms
 *               with EPOLL_CTL_MOD;
 *   et_oneshot  the same with EPOLLIN|EPOLLET|EPOLLONESHOT;
 *   lt_single   1 worker, EPOLLIN level-triggered, ONE read per event (readiness must persist
 *               while plaintext stays buffered);
 *   et_single7  1 worker, EPOLLIN|EPOLLET, 7-byte reads until EAGAIN.
 *
 * What it proves: a one-shot registration is reported once until re-armed (the host counts, with
 * a per-fd "in use" flag, two workers on one connection — "overlaps" — and events for an fd that
 * was not re-armed, and events for fds that were never registered), no byte is lost or scrambled
 * (per-connection digests; the peer checks its echo), and level/edge semantics hold with buffered
 * plaintext — also for waits that began before the first EPOLL_CTL_ADD. Issue 9, item 6. */

#include "../host.h"
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#define MAXFD 4096

static int epfd, nclients, nworkers, drain, rsize;
static uint32_t events;
static atomic_int in_use[MAXFD], armed[MAXFD], registered[MAXFD];
static atomic_int stop_fd = -1;
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static digest got[MAXFD];
static atomic_int overlaps, disarmed_events, unknown_events, closed_count;
static char results[64][64];
static pthread_mutex_t res_mu = PTHREAD_MUTEX_INITIALIZER;

/* echo writes all of buf to the non-blocking fd, waiting with poll when the kernel is full. */
static int echo(int fd, const char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, buf + off, len - off);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      if (poll(&p, 1, 5000) <= 0) return -1;
      continue;
    }
    return -1;
  }
  return 0;
}

/* handle one event for fd: returns 1 if the connection was closed. */
static int handle(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t r = read(fd, buf, (size_t)rsize);
    if (r > 0) {
      digest_add(&got[fd], buf, (size_t)r);
      if (echo(fd, buf, (size_t)r)) OBS("echo write failed: %s", errname(errno));
      if (!drain) return 0; /* level-triggered: one read per event */
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return 0;
    /* EOF (or an error): record what this connection sent, close it */
    pthread_mutex_lock(&res_mu);
    int i = atomic_fetch_add(&closed_count, 1);
    if (i < 64)
      snprintf(results[i], sizeof(results[i]), "%s %llu:%016llx", r == 0 ? "eof" : errname(errno),
               (unsigned long long)got[fd].n, (unsigned long long)got[fd].h);
    pthread_mutex_unlock(&res_mu);
    atomic_store(&registered[fd], 0);
    atomic_store(&in_use[fd], 0);
    close(fd);
    pthread_mutex_lock(&done_mu);
    pthread_cond_signal(&done_cv);
    pthread_mutex_unlock(&done_mu);
    return 1;
  }
}

static void *worker(void *arg) {
  (void)arg;
  struct epoll_event ev[8];
  for (;;) {
    int n = epoll_wait(epfd, ev, 8, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      int fd = ev[i].data.fd;
      if (fd == stop_fd) return NULL; /* level-triggered: every worker sees it */
      if (fd < 0 || fd >= MAXFD || !atomic_load(&registered[fd])) { /* not one of ours */
        atomic_fetch_add(&unknown_events, 1);
        continue;
      }
      if (events & EPOLLONESHOT) {
        if (!atomic_exchange(&armed[fd], 0)) atomic_fetch_add(&disarmed_events, 1);
      }
      if (atomic_exchange(&in_use[fd], 1)) { /* another worker has it: a oneshot violation */
        atomic_fetch_add(&overlaps, 1);
        continue;
      }
      if (handle(fd)) continue;
      atomic_store(&in_use[fd], 0);
      if (events & EPOLLONESHOT) {
        atomic_store(&armed[fd], 1);
        struct epoll_event e = {.events = events, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e)) OBS("re-arm: %s", errname(errno));
      }
    }
  }
  return NULL;
}

static int cmp(const void *a, const void *b) { return strcmp(a, b); }

int main(int argc, char **argv) {
  if (argc < 4) die("usage: %s PORT ...", argv[0]);
  int port = atoi(argv[1]);
  const char *mode = argv[2];
  nclients = atoi(argv[3]);
  if (!strcmp(mode, "oneshot")) {
    nworkers = 4, events = EPOLLIN | EPOLLONESHOT, drain = 1, rsize = 1500;
  } else if (!strcmp(mode, "et_oneshot")) {
    nworkers = 4, events = EPOLLIN | EPOLLET | EPOLLONESHOT, drain = 1, rsize = 1500;
  } else if (!strcmp(mode, "lt_single")) {
    nworkers = 1, events = EPOLLIN, drain = 0, rsize = 1000;
  } else if (!strcmp(mode, "et_single7")) {
    nworkers = 1, events = EPOLLIN | EPOLLET, drain = 1, rsize = 7;
  } else {
    die("mode %s", mode);
  }
  signal(SIGPIPE, SIG_IGN);
  alarm(20); /* a watchdog: a stalled pool ends here, not at the harness' timeout */
  int lfd = listen_on(port);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  pthread_t th[4];
  for (int i = 0; i < nworkers; i++) pthread_create(&th[i], NULL, worker, NULL);
  ready();
  for (int i = 0; i < nclients; i++) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0 || fd >= MAXFD) die("accept");
    set_nonblock(fd, 1);
    digest_init(&got[fd]);
    atomic_store(&in_use[fd], 0);
    atomic_store(&armed[fd], 1);
    atomic_store(&registered[fd], 1);
    struct epoll_event e = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e)) die("epoll_ctl ADD");
  }
  OBS("accepted %d", nclients);
  pthread_mutex_lock(&done_mu);
  while (atomic_load(&closed_count) < nclients) pthread_cond_wait(&done_cv, &done_mu);
  pthread_mutex_unlock(&done_mu);
  stop_fd = eventfd(1, EFD_CLOEXEC);
  struct epoll_event se = {.events = EPOLLIN, .data.fd = stop_fd};
  if (stop_fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, stop_fd, &se)) die("stop eventfd");
  for (int i = 0; i < nworkers; i++) pthread_join(th[i], NULL);
  qsort(results, (size_t)nclients, sizeof(results[0]), cmp);
  for (int i = 0; i < nclients; i++) OBS("connection: %s", results[i]);
  OBS("overlaps (two workers on one connection): %d", atomic_load(&overlaps));
  OBS("events on a disarmed one-shot fd: %d", atomic_load(&disarmed_events));
  OBS("events for fds never registered: %d", atomic_load(&unknown_events));
  return 0;
}
