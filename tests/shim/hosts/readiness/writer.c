/* writer PORT MODE — a non-blocking server that sends a large response to a slow reader and waits
 * for writability whenever the kernel is full (every event-loop HTTP server sending a big file
 * from memory). MODE: "epoll_et" (EPOLLOUT|EPOLLET registered once), "epoll_lt" (EPOLLOUT added
 * while blocked, removed after, as libevent does), "poll" (poll(POLLOUT)).
 *
 * What it proves: a write returns EAGAIN only while the kernel is full, and writability is then
 * reported again — through the shim, ciphertext the kernel did not take is pushed out in the
 * background and the host must still be woken when there is room (no stall, no wake that finds
 * the socket full). The peer checks every byte. Issue 9: "EAGAIN only while the kernel is full",
 * readiness as the kernel gives it. */
#include "../host.h"

#include <sys/epoll.h>

#define TOTAL (8 * 1024 * 1024)
#define CHUNK (64 * 1024)

int main(int argc, char **argv) {
  if (argc < 3) die("usage: %s PORT MODE", argv[0]);
  const char *mode = argv[2];
  signal(SIGPIPE, SIG_IGN);
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  set_nonblock(fd, 1);
  int sndbuf = 64 * 1024; /* a small send buffer (as tuned servers have): many full/writable turns */
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  int ep = -1;
  if (!strcmp(mode, "epoll_et") || !strcmp(mode, "epoll_lt")) ep = epoll_create1(EPOLL_CLOEXEC);
  if (!strcmp(mode, "epoll_et")) {
    struct epoll_event e = {.events = EPOLLOUT | EPOLLET, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e)) die("epoll_ctl");
  }
  static unsigned char buf[CHUNK];
  size_t sent = 0;
  int eagains = 0, full_after_wake = 0, stalls = 0, woke = 0;
  while (sent < TOTAL) {
    size_t n = TOTAL - sent < CHUNK ? TOTAL - sent : CHUNK;
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)((sent + i) % 251); /* the peer checks */
    ssize_t w = write(fd, buf, n);
    if (w > 0) {
      sent += (size_t)w;
      woke = 0;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN) {
      OBS("write: %s after %zu bytes", errname(errno), sent);
      break;
    }
    eagains++;
    if (woke) full_after_wake++; /* woken for writability, yet the first write found it full */
    int r;
    if (!strcmp(mode, "poll")) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      r = poll(&p, 1, 3000);
    } else {
      struct epoll_event e = {.events = EPOLLOUT, .data.fd = fd}, got;
      if (ep >= 0 && !strcmp(mode, "epoll_lt") && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e))
        die("epoll_ctl ADD");
      r = epoll_wait(ep, &got, 1, 3000);
      if (!strcmp(mode, "epoll_lt")) epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    }
    if (r == 0 && ++stalls >= 3) break; /* no writability for 3 x 3 s: a stall */
    woke = r > 0;
  }
  OBS("sent %zu of %d bytes", sent, TOTAL);
  /* not an observation: with socket autotuning, 8 MiB may fit in the buffers of a plain run */
  fprintf(stderr, "writes that got EAGAIN: %d\n", eagains);
  OBS("wakes for writability that found the socket full: %d", full_after_wake);
  OBS("waits for writability that timed out (3 s): %d", stalls);
  OBS("close: %s", RET(close(fd)));
  return 0;
}
