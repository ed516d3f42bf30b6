/* not_data PORT server|client — bytes on the socket that are not data must not wake the host:
 * a TLS handshake message, a session ticket, half of a record. The kernel sees them as readable;
 * a plain socket in their place has nothing to read, so poll() and epoll_wait() must time out.
 *   server: accept; poll(POLLIN, 300 ms) and epoll_wait(300 ms) while the peer's handshake ends and
 *           half of its first record arrives (plain: nothing arrives); then the whole request
 *   client: connect, write a request (the handshake runs, the server's session tickets follow);
 *           poll and epoll_wait 300 ms each before the peer answers
 * Both then read the data with a blocking read and answer. (Any server or client whose poll loop
 * treats "readable" as "a read will return data": a blocking read after a false POLLIN hangs.) */
#include "../host.h"

#include <sys/epoll.h>

static void wait_nothing_then_data(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int64_t t0 = now_ms();
  int r = poll(&p, 1, 300);
  OBS("poll(POLLIN, 300 ms) before the data: %s, revents %s", RET(r), revents_str(p.revents));
  obs_elapsed("poll waited", now_ms() - t0, 250, 1500);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, out[2];
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  t0 = now_ms();
  OBS("epoll_wait(300 ms) before the data: %s", RET(epoll_wait(ep, out, 2, 300)));
  obs_elapsed("epoll_wait waited", now_ms() - t0, 250, 1500);
  OBS("epoll_wait(5 s) for the data: %s", RET(epoll_wait(ep, out, 2, 5000)));
  close(ep);
  char buf[128];
  ssize_t n = read(fd, buf, sizeof(buf));
  OBS("read: %s %.*s", RET(n), n > 0 ? (int)n : 0, buf);
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: not_data PORT server|client");
  int fd;
  if (!strcmp(argv[2], "server")) {
    int lfd = listen_on(atoi(argv[1]));
    ready();
    fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept");
  } else {
    fd = connect_to("127.0.0.1", atoi(argv[1]));
    OBS("request: %s", RET(write(fd, "request", 7)));
  }
  wait_nothing_then_data(fd);
  OBS("answer: %s", RET(write(fd, "ok", 2)));
  OBS("close: %s", RET(close(fd)));
  return 0;
}
