/* io.h — helpers shared by the io group's host programs (on top of ../host.h). */
#ifndef SLI_TEST_IO_H
#define SLI_TEST_IO_H
#include "../host.h"

#include <sys/time.h>

#define MiB (1024 * 1024)

/* big_pattern: `n` bytes made of the 1 MiB pattern of `seed` repeated (the peer builds the same
 * with difftest.pattern(seed, 1 MiB) * k; repetition keeps the peer's check fast). */
static unsigned char *big_pattern(uint64_t seed, size_t n) {
  unsigned char *p = malloc(n ? n : 1);
  if (!p) die("malloc");
  size_t first = n < MiB ? n : MiB;
  fill_pattern(p, first, seed, 0);
  for (size_t off = first; off < n; off += MiB) memcpy(p + off, p, n - off < MiB ? n - off : MiB);
  return p;
}

/* count_class: a write's result as a kernel-independent class. */
static const char *count_class(ssize_t r, int e, size_t asked) {
  static __thread char buf[64];
  if (r < 0) snprintf(buf, sizeof(buf), "-1 %s", errname(e));
  else if ((size_t)r == asked) snprintf(buf, sizeof(buf), "all");
  else if (r == 0) snprintf(buf, sizeof(buf), "0");
  else snprintf(buf, sizeof(buf), "partial");
  return buf;
}

static void set_timeo(int fd, int opt, int ms) {
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv))) die("setsockopt timeo");
}

/* obs_poll polls one fd and prints the result and its revents. */
static void obs_poll(const char *what, int fd, short events, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = events};
  int r = poll(&p, 1, timeout_ms);
  int e = errno;
  OBS("%s: %s, revents %s", what, ret(r, e), revents_str(p.revents));
}

/* chomp: the length of a line without its trailing newline (for printing what was read). */
static int chomp(const char *buf, ssize_t n) {
  if (n <= 0) return 0;
  return (int)(buf[n - 1] == '\n' ? n - 1 : n);
}

static int accept_one(int lfd) {
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  return fd;
}
#endif
