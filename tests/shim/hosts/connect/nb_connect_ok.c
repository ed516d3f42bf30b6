/* nb_connect_ok — the event-loop client's connect (libevent, libuv, hiredis, curl): a non-blocking
 * connect to the target gives EINPROGRESS; poll(POLLOUT) says it is done (POLLOUT alone: no error,
 * no hang-up); SO_ERROR is 0; the client writes its request at once (a kernel takes the bytes as
 * soon as the TCP connection is up: the shim must take them too, before its handshake is done) and
 * reads the reply. Mode "epoll" waits with epoll (EPOLLOUT) instead of poll.
 * usage: host_nb_connect_ok PORT poll|epoll */

#include "client.h"
#include <sys/epoll.h>

int main(int argc, char **argv) {
  if (argc < 3) die("usage");
  int port = atoi(argv[1]);
  int use_epoll = strcmp(argv[2], "epoll") == 0;
  struct sockaddr_in a = loopback4("127.0.0.1", port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  OBS("connect: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  if (use_epoll) {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLRDHUP, .data.fd = fd}, out[4];
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) die("epoll_ctl");
    int n = epoll_wait(ep, out, 4, 5000);
    OBS("epoll_wait: %d", n);
    if (n == 1)
      OBS("events: %s%s%s%s", out[0].events & EPOLLOUT ? "EPOLLOUT" : "",
          out[0].events & EPOLLERR ? "|EPOLLERR" : "", out[0].events & EPOLLHUP ? "|EPOLLHUP" : "",
          out[0].events & EPOLLRDHUP ? "|EPOLLRDHUP" : "");
    close(ep);
  } else {
    struct pollfd p = {.fd = fd, .events = POLLOUT | POLLRDHUP};
    OBS("poll: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
  }
  OBS("SO_ERROR: %s", errname(so_error(fd)));
  /* the request goes out on the still non-blocking fd, right after the connect completed */
  char req[64];
  int n = snprintf(req, sizeof(req), "GET %s\n", argv[2]);
  OBS("non-blocking write: %s", RET(write(fd, req, (size_t)n)));
  set_nonblock(fd, 0);
  exchange_rest(fd, argv[2], (size_t)n);
  return 0;
}
