/* odd_waits PORT — waits whose arguments a wrapper may get wrong: select() leaves the time not
 * slept in its timeval (Linux) and carries microseconds over into seconds; a ppoll() timeout longer than INT_MAX milliseconds does not wrap
 * into a short one; invalid timeouts are EINVAL (not a wait forever); readv/writev with a negative
 * count are EINVAL. The peer sends "late" 1 s after the host says "go", then "more" when asked. */
#include "../host.h"

#include <sys/select.h>
#include <sys/uio.h>

int main(int argc, char **argv) {
  if (argc < 2) die("usage: odd_waits PORT");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  char buf[64];
  struct iovec iv = {buf, sizeof(buf)};
  volatile int minus_one = -1; /* (a constant -1 draws a compiler warning) */
  OBS("readv(-1 iovecs): %s", RET(readv(fd, &iv, minus_one)));
  OBS("writev(-1 iovecs): %s", RET(writev(fd, &iv, minus_one)));

  fd_set r;
  FD_ZERO(&r);
  FD_SET(fd, &r);
  struct timeval bad = {-1, 0};
  OBS("select(tv_sec -1): %s", RET(select(fd + 1, &r, NULL, NULL, &bad)));
  FD_ZERO(&r);
  FD_SET(fd, &r);
  struct timeval carry = {0, 1200000}; /* the kernel carries microseconds into seconds */
  int64_t t1 = now_ms();
  OBS("select(tv_usec 1200000) with nothing: %s", RET(select(fd + 1, &r, NULL, NULL, &carry)));
  obs_elapsed("  it waited", now_ms() - t1, 1100, 2500);
  struct timespec badts = {-1, 0};
  struct pollfd p = {.fd = fd, .events = POLLIN};
  OBS("ppoll(tv_sec -1): %s", RET(ppoll(&p, 1, &badts, NULL)));

  FD_ZERO(&r);
  FD_SET(fd, &r);
  struct timeval tv = {0, 300000};
  int64_t t0 = now_ms();
  OBS("select(300 ms) with nothing: %s", RET(select(fd + 1, &r, NULL, NULL, &tv)));
  obs_elapsed("  it waited", now_ms() - t0, 250, 1500);
  OBS("  timeval after: %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);

  if (write_all(fd, "go\n", 3)) die("write");
  struct timespec huge = {4294968, 0}; /* 4294968000 ms: wraps to about 704 ms in an int */
  t0 = now_ms();
  OBS("ppoll(4294968 s), data after 1 s: %s", RET(ppoll(&p, 1, &huge, NULL)));
  obs_elapsed("  it waited", now_ms() - t0, 850, 3000);
  ssize_t n = read(fd, buf, sizeof(buf));
  OBS("read: %s %.*s", RET(n), n > 1 ? (int)n - 1 : 0, buf);

  if (write_all(fd, "more\n", 5)) die("write");
  FD_ZERO(&r);
  FD_SET(fd, &r);
  tv = (struct timeval){5, 0};
  t0 = now_ms();
  OBS("select(5 s), data after 0.3 s: %s", RET(select(fd + 1, &r, NULL, NULL, &tv)));
  long left = (long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
  OBS("  time left: %s", left >= 3500 && left <= 4900 ? "between 3.5 and 4.9 s" : "wrong");
  n = read(fd, buf, sizeof(buf));
  OBS("read: %s %.*s", RET(n), n > 1 ? (int)n - 1 : 0, buf);
  OBS("close: %s", RET(close(fd)));
  return 0;
}
