/* halfclose PORT ROLE — half-close in both directions (items 7 and 8 of issue 9).
 * server:      the peer sends a request and half-closes (FIN / close_notify); the server reads to
 *              EOF, then writes its reply (after the peer's close_notify, TLS 1.3 keeps our
 *              direction open) and closes.
 * client:      writes the request, shutdown(SHUT_WR), then reads the server's reply to EOF (what
 *              `socat` does); the reply must not be lost.
 * poll_server: the server side as an event loop does it: a non-blocking fd, poll(POLLIN|POLLRDHUP),
 *              read until EAGAIN; the peer's end must show as a read of 0 and POLLRDHUP, and the
 *              reply written after it must arrive.
 * multi_reply: after the peer's half-close the server answers in several writes, then
 *              shutdown(SHUT_WR) (close_notify, then FIN), then reads again (0, at once) and polls
 *              (both directions ended: POLLIN|POLLOUT|POLLHUP|POLLRDHUP, as the kernel says). */
#include "io.h"

static int poll_server(int port) {
  char buf[65536];
  int lfd = listen_on(port);
  ready();
  int fd = accept_one(lfd);
  set_nonblock(fd, 1);
  size_t total = 0;
  int eof = 0;
  while (!eof) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int n = poll(&p, 1, 5000);
    if (n <= 0) {
      OBS("poll: %s (revents %s)", RET(n), revents_str(p.revents));
      break;
    }
    for (;;) {
      ssize_t r = read(fd, buf, sizeof(buf));
      if (r > 0) {
        total += (size_t)r;
        continue;
      }
      if (r == 0) eof = 1;
      else if (errno != EAGAIN) {
        OBS("read: %s", RET(r));
        eof = -1;
      }
      break;
    }
  }
  OBS("read to EOF: %zu bytes", total);
  obs_poll("poll after EOF", fd, POLLIN | POLLOUT | POLLRDHUP, 1000);
  OBS("read after EOF: %s", RET(read(fd, buf, 16)));
  char reply[64];
  int m = snprintf(reply, sizeof(reply), "got %zu bytes\n", total);
  OBS("non-blocking write after the peer's EOF: %s", RET(write(fd, reply, (size_t)m)));
  OBS("close: %s", RET(close(fd)));
  return 0;
}

static int multi_reply(int port) {
  char buf[65536];
  int err;
  int lfd = listen_on(port);
  ready();
  int fd = accept_one(lfd);
  size_t n = read_all(fd, buf, sizeof(buf), &err);
  OBS("read to EOF: %zu bytes, %s", n, errname(err));
  for (int i = 0; i < 3; i++) {
    char part[64];
    int m = snprintf(part, sizeof(part), "reply part %d of 3\n", i + 1);
    OBS("write %d: %s", i + 1, RET(write(fd, part, (size_t)m)));
  }
  OBS("shutdown(SHUT_WR): %s", RET(shutdown(fd, SHUT_WR)));
  int64_t t0 = now_ms();
  OBS("read after both ends: %s", RET(read(fd, buf, sizeof(buf))));
  obs_elapsed("that read", now_ms() - t0, 0, 100);
  obs_poll("poll", fd, POLLIN | POLLOUT | POLLRDHUP, 1000);
  OBS("write after shutdown: %s", RET(send(fd, "x", 1, MSG_NOSIGNAL)));
  OBS("close: %s", RET(close(fd)));
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: halfclose PORT server|client|poll_server|multi_reply");
  int port = atoi(argv[1]);
  char buf[65536];
  int err;
  if (!strcmp(argv[2], "poll_server")) return poll_server(port);
  if (!strcmp(argv[2], "multi_reply")) return multi_reply(port);
  if (!strcmp(argv[2], "server")) {
    int lfd = listen_on(port);
    ready();
    int fd = accept(lfd, NULL, NULL);
    size_t n = read_all(fd, buf, sizeof(buf), &err);
    OBS("read to EOF: %zu bytes, %s", n, errname(err));
    OBS("read after EOF: %s", RET(read(fd, buf, 16)));
    char reply[64];
    int m = snprintf(reply, sizeof(reply), "got %zu bytes\n", n);
    OBS("write after the peer's EOF: %s", RET(write(fd, reply, (size_t)m)));
    OBS("close: %s", RET(close(fd)));
    return 0;
  }
  int fd = connect_to("127.0.0.1", port);
  const char req[] = "request, then half-close\n";
  OBS("write: %s", RET(write(fd, req, sizeof(req) - 1)));
  OBS("shutdown(SHUT_WR): %s", RET(shutdown(fd, SHUT_WR)));
  OBS("write after shutdown: %s", RET(send(fd, "x", 1, MSG_NOSIGNAL)));
  size_t n = read_all(fd, buf, sizeof(buf), &err);
  OBS("reply: %zu bytes, %s: %.*s", n, errname(err), (int)n, buf);
  OBS("close: %s", RET(close(fd)));
  return 0;
}
