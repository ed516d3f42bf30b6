/* banner — a client of a server-speaks-first protocol (SMTP, FTP, POP3, IMAP, MySQL): it connects
 * and waits for the server's greeting before it writes anything. With a non-blocking connect the
 * first thing it waits for is POLLIN, never POLLOUT: the shim has to run its handshake while the
 * host waits, without any write from the host to drive it.
 * Modes: block (blocking connect and read), poll (non-blocking connect, poll(POLLIN)), epoll
 * (EPOLLIN), select (readfds only).
 * usage: host_banner PORT MODE */
#include "client.h"
#include <sys/epoll.h>
#include <sys/select.h>

int main(int argc, char **argv) {
  if (argc < 3) die("usage");
  int port = atoi(argv[1]);
  const char *mode = argv[2];
  int nb = strcmp(mode, "block") != 0;
  struct sockaddr_in a = loopback4("127.0.0.1", port);
  int fd = socket(AF_INET, SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) die("socket");
  OBS("connect: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  int64_t t0 = now_ms();
  if (!strcmp(mode, "poll")) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    OBS("poll POLLIN: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
  } else if (!strcmp(mode, "epoll")) {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd}, out[4];
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) die("epoll_ctl");
    int n = epoll_wait(ep, out, 4, 5000);
    OBS("epoll_wait EPOLLIN: %d", n);
    if (n == 1) OBS("events: %s", out[0].events == EPOLLIN ? "EPOLLIN" : "other");
    close(ep);
  } else if (!strcmp(mode, "select")) {
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = {.tv_sec = 5};
    OBS("select readfds: %s", RET(select(fd + 1, &r, NULL, NULL, &tv)));
    OBS("readable: %d", FD_ISSET(fd, &r) ? 1 : 0);
  }
  obs_elapsed("greeting waited", now_ms() - t0, 0, 2000);
  char line[256];
  ssize_t n = nb ? read(fd, line, sizeof(line) - 1) : read_line(fd, line, sizeof(line));
  if (n >= 0) line[n] = 0;
  if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
  OBS("greeting: %s '%s'", n < 0 ? RET(n) : "ok", n > 0 ? line : "");
  set_nonblock(fd, 0);
  exchange(fd, mode);
  return 0;
}
