/* host.h — shared by the host programs of the differential shim tests (tests/shim/hosts/).
 *
 * A host program is written the way a real daemon is, against plain TCP, and never heard of TLS.
 * The harness (tests/shim/difftest.py) runs it twice: without the shim against a plain peer, and
 * with libsli-preload.so against a TLS peer. Everything the program observes — return values,
 * errno names, bytes, readiness events, timings inside bounds — is printed as one line each with
 * OBS(); the two runs must print the same lines. Anything that legitimately differs between two
 * kernel runs (a partial count, an exact time) must be printed in a normalised form (see
 * obs_count_class, obs_elapsed).
 *
 * Conventions: server programs take the port to listen on as argv[1], print "ready" once
 * listening, and exit 0 when done; client programs take the port to connect to. */
#ifndef SLI_TEST_HOST_H
#define SLI_TEST_HOST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t obs_mu = PTHREAD_MUTEX_INITIALIZER;

/* OBS prints one observation line (atomically, flushed). */
__attribute__((format(printf, 1, 2))) static void OBS(const char *fmt, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof(line) - 2) n = sizeof(line) - 2;
  line[n++] = '\n';
  pthread_mutex_lock(&obs_mu);
  ssize_t w = write(1, line, (size_t)n); /* not stdio: a forked child must not repeat buffers */
  (void)w;
  pthread_mutex_unlock(&obs_mu);
}

/* die reports a setup failure (not an observation) and exits 99. */
__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "host setup failed: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (errno %d %s)\n", errno, strerror(errno));
  va_end(ap);
  _exit(99);
}

static const char *errname(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EAGAIN) E(EINTR) E(EPIPE) E(ECONNRESET) E(ECONNREFUSED) E(ETIMEDOUT) E(EBADF)
    E(ENOTSOCK) E(ENOTCONN) E(EINPROGRESS) E(EALREADY) E(EISCONN) E(EINVAL) E(EACCES)
    E(EPERM) E(ENOENT) E(EIO) E(ESPIPE) E(EFAULT) E(ENOMEM) E(EMFILE) E(EHOSTUNREACH)
    E(ENETUNREACH) E(ECONNABORTED) E(EADDRINUSE) E(EOPNOTSUPP)
#undef E
    case 0: return "0";
  }
  static char buf[32];
  snprintf(buf, sizeof(buf), "errno%d", e);
  return buf;
}

/* ret formats a call's result: "N" or "-1 ENAME". */
static const char *ret(long r, int e) {
  static __thread char buf[64];
  if (r < 0) snprintf(buf, sizeof(buf), "-1 %s", errname(e));
  else snprintf(buf, sizeof(buf), "%ld", r);
  return buf;
}
#define RET(call) ({ long r_ = (long)(call); int e_ = errno; ret(r_, e_); })

static const char *revents_str(short r) {
  static __thread char buf[128];
  buf[0] = 0;
  if (!r) return "0";
#define B(x) if (r & x) strcat(buf, buf[0] ? "|" #x : #x);
  B(POLLIN) B(POLLPRI) B(POLLOUT) B(POLLERR) B(POLLHUP) B(POLLNVAL) B(POLLRDHUP)
#undef B
  return buf;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* obs_elapsed prints whether an elapsed time fell within [lo, hi] ms (the exact value only when it
 * did not, so two runs compare equal when both are within bounds). */
static void obs_elapsed(const char *what, int64_t ms, int64_t lo, int64_t hi) {
  if (ms >= lo && ms <= hi) OBS("%s: within %lld..%lld ms", what, (long long)lo, (long long)hi);
  else OBS("%s: took %lld ms, outside %lld..%lld", what, (long long)ms, (long long)lo, (long long)hi);
}

/* A cheap digest of a byte stream (FNV-1a 64), to compare large transfers in one line. */
typedef struct { uint64_t h; uint64_t n; } digest;
static void digest_init(digest *d) { d->h = 1469598103934665603ULL; d->n = 0; }
static void digest_add(digest *d, const void *p, size_t len) {
  const unsigned char *b = p;
  for (size_t i = 0; i < len; i++) {
    d->h ^= b[i];
    d->h *= 1099511628211ULL;
  }
  d->n += len;
}

/* Deterministic pseudo-random bytes (the peer makes the same with the same seed). */
static void fill_pattern(unsigned char *buf, size_t len, uint64_t seed, uint64_t offset) {
  for (size_t i = 0; i < len; i++) {
    uint64_t x = seed * 6364136223846793005ULL + (offset + i) * 1442695040888963407ULL;
    x ^= x >> 29;
    buf[i] = (unsigned char)(x >> 17);
  }
}

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (fd < 0) die("socket");
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 512)) die("bind/listen %d", port);
  return fd;
}

static int connect_to(const char *host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a))) die("connect %s:%d", host, port);
  return fd;
}

static void set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* read_all reads until EOF or error (blocking fd); returns bytes, *err the errno of a failure. */
static size_t read_all(int fd, char *buf, size_t cap, int *err) {
  size_t got = 0;
  *err = 0;
  for (;;) {
    ssize_t r = read(fd, buf + got, cap - got);
    if (r > 0) {
      got += (size_t)r;
      if (got == cap) return got;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) *err = errno;
    return got;
  }
}

static int write_all(int fd, const void *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, (const char *)buf + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  return 0;
}

/* read_line reads up to '\n' one byte at a time (what a naive daemon does). */
static ssize_t read_line(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t r = read(fd, buf + n, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (buf[n++] == '\n') break;
  }
  buf[n] = 0;
  return (ssize_t)n;
}

static void ready(void) { OBS("ready"); }

#endif
