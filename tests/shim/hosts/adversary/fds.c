/* fds PORT MODE — fd-number games real programs play on a connection.
 * dup_interleave: dup(), fcntl(F_DUPFD_CLOEXEC), dup2(fd, fd), dup3(fd, fd, 0); writes through
 *                 the three numbers interleaved; close the first, write through the second, read
 *                 through the third; close the second; write, shutdown(SHUT_WR) and read to EOF
 *                 through the third (one connection, one byte stream, whatever the number).
 * poll_odd:       poll() arrays with the same fd twice, negative fds (ignored), events = 0 (only
 *                 HUP/ERR), nfds 0, and a closed fd (POLLNVAL), before and after the data.
 * zero_len:       write(fd, buf, 0), send(fd, "", 0, 0), read(fd, buf, 0) and recv(MSG_DONTWAIT)
 *                 of 0 bytes before the peer has said anything (in TLS: before its ClientHello),
 *                 after the data, and after shutdown(SHUT_WR) (-1 EPIPE, SIGPIPE ignored). */
#include "../host.h"

#include <sys/uio.h>

static int dup_interleave(int fd) {
  char buf[64];
  int d1 = dup(fd), d2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
  OBS("dup: %s, F_DUPFD_CLOEXEC >= 100: %s", d1 > fd ? "a new number" : RET(d1),
      d2 >= 100 ? "a new number" : RET(d2));
  OBS("dup2(fd, fd): %s", dup2(fd, fd) == fd ? "fd" : "other");
  OBS("dup3(fd, fd, 0): %s", RET(dup3(fd, fd, 0)));
  OBS("F_GETFD: fd %d, dup %d, F_DUPFD_CLOEXEC %d", fcntl(fd, F_GETFD), fcntl(d1, F_GETFD),
      fcntl(d2, F_GETFD));
  OBS("write a via fd: %s", RET(write(fd, "a\n", 2)));
  OBS("write b via dup: %s", RET(write(d1, "b\n", 2)));
  OBS("write c via dupfd: %s", RET(send(d2, "c\n", 2, 0)));
  OBS("write d via fd: %s", RET(write(fd, "d\n", 2)));
  OBS("close fd: %s", RET(close(fd)));
  OBS("write e via dup: %s", RET(write(d1, "e\n", 2)));
  ssize_t r = read(d2, buf, sizeof(buf));
  OBS("read via dupfd: %s %.*s", RET(r), (int)(r > 1 ? r - 1 : 0), buf);
  OBS("write via the closed fd: %s", RET(write(fd, "z\n", 2)));
  OBS("close dup: %s", RET(close(d1)));
  OBS("write f via dupfd: %s", RET(write(d2, "f\n", 2)));
  OBS("shutdown(SHUT_WR) via dupfd: %s", RET(shutdown(d2, SHUT_WR)));
  r = read(d2, buf, sizeof(buf));
  OBS("read via dupfd: %s", RET(r));
  OBS("close dupfd: %s", RET(close(d2)));
  return 0;
}

static void obs_polls(const char *what, struct pollfd *p, int n, int timeout) {
  int r = poll(p, (nfds_t)n, timeout);
  int e = errno;
  char line[512];
  int off = snprintf(line, sizeof(line), "%s: %s,", what, ret(r, e));
  for (int i = 0; i < n; i++)
    off += snprintf(line + off, sizeof(line) - (size_t)off, " [%s]", revents_str(p[i].revents));
  OBS("%s", line);
}

static int poll_odd(int fd) {
  char buf[64];
  struct pollfd a[4] = {{fd, POLLIN, 0}, {fd, POLLOUT, 0}, {-1, POLLIN, 0}, {fd, 0, 0}};
  obs_polls("before data: IN, OUT, -1, 0", a, 4, 100);
  struct pollfd b[4] = {{fd, POLLIN, 0}, {fd, POLLIN | POLLRDHUP, 0}, {-5, POLLIN, 0}, {fd, 0, 0}};
  obs_polls("waiting: IN, IN|RDHUP, -5, 0", b, 4, 3000);
  ssize_t r = read(fd, buf, sizeof(buf));
  OBS("read: %s", RET(r));
  obs_polls("after the read: IN, IN|RDHUP, -5, 0", b, 4, 100);
  OBS("nfds 0: %s", RET(poll(NULL, 0, 50)));
  OBS("write: %s", RET(write(fd, "ok\n", 3)));
  struct pollfd c[2] = {{fd, 0, 0}, {fd, POLLIN, 0}};
  obs_polls("peer's end: 0, IN", c, 2, 3000);
  OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
  obs_polls("again: 0, IN", c, 2, 100);
  int keep = dup(fd);
  OBS("close: %s", RET(close(fd)));
  struct pollfd d[2] = {{fd, POLLIN, 0}, {keep, POLLOUT, 0}};
  obs_polls("closed fd, its dup: IN, OUT", d, 2, 100);
  OBS("close dup: %s", RET(close(keep)));
  return 0;
}

static int zero_len(int fd) {
  char buf[64];
  signal(SIGPIPE, SIG_IGN);
  OBS("write 0 before anything: %s", RET(write(fd, buf, 0)));
  OBS("send 0 before anything: %s", RET(send(fd, "", 0, 0)));
  int64_t t0 = now_ms();
  OBS("read 0 before anything: %s", RET(read(fd, buf, 0)));
  obs_elapsed("that read", now_ms() - t0, 0, 100);
  OBS("recv 0 MSG_DONTWAIT: %s", RET(recv(fd, buf, 0, MSG_DONTWAIT)));
  struct iovec v = {buf, 0};
  OBS("writev of one empty iovec: %s", RET(writev(fd, &v, 1)));
  OBS("writev of no iovec: %s", RET(writev(fd, &v, 0)));
  ssize_t r = read(fd, buf, sizeof(buf));
  OBS("read: %s %.*s", RET(r), (int)(r > 1 ? r - 1 : 0), buf);
  OBS("write 0 after the data: %s", RET(write(fd, buf, 0)));
  OBS("read 0 after the data: %s", RET(read(fd, buf, 0)));
  OBS("write: %s", RET(write(fd, "ok\n", 3)));
  OBS("shutdown(SHUT_WR): %s", RET(shutdown(fd, SHUT_WR)));
  OBS("write 0 after shutdown: %s", RET(write(fd, buf, 0)));
  OBS("send 0 after shutdown: %s", RET(send(fd, "", 0, MSG_NOSIGNAL)));
  OBS("read to the peer's end: %s", RET(read(fd, buf, sizeof(buf))));
  OBS("read 0 at the end: %s", RET(read(fd, buf, 0)));
  OBS("close: %s", RET(close(fd)));
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: fds PORT MODE");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  const char *m = argv[2];
  if (!strcmp(m, "dup_interleave")) return dup_interleave(fd);
  if (!strcmp(m, "poll_odd")) return poll_odd(fd);
  if (!strcmp(m, "zero_len")) return zero_len(fd);
  die("unknown mode %s", m);
}
