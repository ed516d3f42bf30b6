/* nb_connect_refused — an event-loop client whose target port is closed (a server not up yet, a
 * failover list): a non-blocking connect gives EINPROGRESS, the refusal arrives as
 * POLLOUT|POLLERR|POLLHUP and SO_ERROR = ECONNREFUSED (read once: it is then 0), and the client
 * moves on to its next address — the open port — where the exchange happens. Both ports are TLS
 * targets. The landed shim started its handshake on the refused socket: its ClientHello write
 * consumed the error, poll showed no POLLERR and SO_ERROR was 0 — a refused connect looked like
 * success (issue item 17).
 * Modes for the refused attempt:
 *   poll      poll(POLLOUT), SO_ERROR twice, poll again
 *   epoll     epoll_wait(EPOLLOUT), SO_ERROR
 *   read      poll(POLLIN|POLLOUT), then read() reports the error itself (ECONNREFUSED once)
 *   write     poll, then send(MSG_NOSIGNAL): the pending error first, then EPIPE
 *   blocking  a blocking connect: -1 ECONNREFUSED
 *   retry     like poll, then the same socket connects to the open port (a retry loop that keeps
 *             its fd: the kernel first reports the failed attempt, ECONNABORTED once SO_ERROR
 *             was read, then connects anew)
 *   retry_blocking  a blocking connect refused, then the same socket connects to the open port
 * usage: host_nb_connect_refused OPEN_PORT CLOSED_PORT MODE */

#include "client.h"
#include <sys/epoll.h>

static const char *epoll_str(uint32_t e) {
  static char buf[128];
  buf[0] = 0;
#define B(x) if (e & x) strcat(buf, buf[0] ? "|" #x : #x);
  B(EPOLLIN) B(EPOLLOUT) B(EPOLLERR) B(EPOLLHUP) B(EPOLLRDHUP)
#undef B
  return buf[0] ? buf : "0";
}

int main(int argc, char **argv) {
  if (argc < 4) die("usage");
  int open_port = atoi(argv[1]), closed_port = atoi(argv[2]);
  const char *mode = argv[3];
  struct sockaddr_in closed = loopback4("127.0.0.1", closed_port);
  struct sockaddr_in open = loopback4("127.0.0.1", open_port);
  int blocking = !strcmp(mode, "blocking") || !strcmp(mode, "retry_blocking");
  int retry = !strncmp(mode, "retry", 5);

  int fd = socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK), 0);
  if (fd < 0) die("socket");
  OBS("connect closed port: %s", RET(connect(fd, (struct sockaddr *)&closed, sizeof(closed))));
  if (!strcmp(mode, "poll") || !strcmp(mode, "retry")) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    OBS("poll: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
    OBS("SO_ERROR: %s", errname(so_error(fd)));
    OBS("SO_ERROR again: %s", errname(so_error(fd)));
    p.revents = 0;
    OBS("poll again: %s", RET(poll(&p, 1, 1000)));
    OBS("revents: %s", revents_str(p.revents));
  } else if (!strcmp(mode, "epoll")) {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd}, out[4];
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) die("epoll_ctl");
    int n = epoll_wait(ep, out, 4, 5000);
    OBS("epoll_wait: %d", n);
    if (n == 1) OBS("events: %s", epoll_str(out[0].events));
    OBS("SO_ERROR: %s", errname(so_error(fd)));
    close(ep);
  } else if (!strcmp(mode, "read")) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
    OBS("poll: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
    char b[16];
    OBS("read: %s", RET(read(fd, b, sizeof(b))));
    OBS("read again: %s", RET(read(fd, b, sizeof(b))));
    OBS("SO_ERROR: %s", errname(so_error(fd)));
  } else if (!strcmp(mode, "write")) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    OBS("poll: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
    OBS("send: %s", RET(send(fd, "x", 1, MSG_NOSIGNAL)));
    OBS("send again: %s", RET(send(fd, "x", 1, MSG_NOSIGNAL)));
  } else if (!blocking) {
    die("mode %s", mode);
  }
  if (retry) { /* the same socket, to the open port: until it says connecting or connected */
    for (int i = 0; i < 3; i++) {
      errno = 0;
      int r = connect(fd, (struct sockaddr *)&open, sizeof(open));
      int e = errno;
      OBS("connect same socket to the open port: %s", ret(r, e));
      if (r == 0 || e == EINPROGRESS) break;
    }
  } else {
    OBS("close: %s", RET(close(fd)));
    /* the next address: the open port */
    fd = socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK), 0);
    OBS("connect open port: %s", RET(connect(fd, (struct sockaddr *)&open, sizeof(open))));
  }
  if (!blocking) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    OBS("poll: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
    OBS("SO_ERROR: %s", errname(so_error(fd)));
    set_nonblock(fd, 0);
  }
  exchange(fd, mode);
  return 0;
}
