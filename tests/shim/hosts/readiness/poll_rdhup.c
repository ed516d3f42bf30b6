/* poll_rdhup PORT MODE — a server that watches for the peer's half-close with POLLRDHUP /
 * EPOLLRDHUP (what servers that detect "client went away" while working do, e.g. a long poll).
 * MODE: "poll" (poll(POLLIN|POLLRDHUP)), "epoll_lt" (EPOLLIN|EPOLLRDHUP), "epoll_et" (the same
 * with EPOLLET, reading until EAGAIN).
 *
 * The peer sends a request, pauses ~200 ms, then half-closes. The host prints every wait's events
 * and every read's result: first POLLIN alone (data, no RDHUP yet), later POLLIN|POLLRDHUP and a read
 * of 0. After the EOF it waits once more (not edge-triggered: still IN|RDHUP), then writes its reply
 * and closes; the peer must get the reply and a clean end. Issue 9, item 17 (second half).
 *
 * MODE "poll_late" / "epoll_lt_late": the peer sends its request and half-closes at once; the host,
 * once woken, sleeps 300 ms (everything has arrived) before it looks: the kernel then reports
 * IN|RDHUP with the data still unread, and again after the data is read. */

#include "../host.h"
#include <sys/epoll.h>

static int epfd = -1, et, late;

/* waits for events on fd; returns the POLL* bits (EPOLL* bits have the same values), 0 on timeout */
static short wait_for(int fd, int timeout_ms) {
  if (epfd < 0) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0) OBS("poll: %s", errname(errno));
    return r > 0 ? p.revents : 0;
  }
  struct epoll_event ev;
  int r = epoll_wait(epfd, &ev, 1, timeout_ms);
  if (r < 0) OBS("epoll_wait: %s", errname(errno));
  return r > 0 ? (short)ev.events : 0;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: %s PORT ...", argv[0]);
  const char *mode = argv[2];
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  set_nonblock(fd, 1);
  late = strstr(mode, "_late") != NULL;
  if (strncmp(mode, "poll", 4)) {
    et = !strcmp(mode, "epoll_et");
    epfd = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | (et ? EPOLLET : 0), .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e)) die("epoll_ctl");
  }
  char buf[4096];
  int eof = 0;
  size_t total = 0;
  if (late) { /* woken by whatever came first (racy: not printed), then everything is there */
    OBS("first wake: %s", wait_for(fd, 3000) ? "an event" : "timeout");
    usleep(300 * 1000);
  }
  for (int i = 0; i < 8 && !eof; i++) {
    short ev = wait_for(fd, late ? 0 : 3000);
    OBS("wait %d: %s", i, revents_str(ev));
    if (!ev) break;
    for (;;) {
      ssize_t r = read(fd, buf, sizeof(buf));
      if (r > 0) {
        total += (size_t)r;
        OBS("  read: data (%zu bytes so far)", total);
      } else {
        OBS("  read: %s", RET(r));
      }
      if (r == 0) eof = 1;
      if (r <= 0 || !et) break; /* edge-triggered: until EAGAIN */
    }
  }
  if (eof && !et) { /* (edge-triggered: the kernel may or may not signal the FIN twice) */
    short ev = wait_for(fd, 3000);
    OBS("wait after EOF: %s", revents_str(ev));
    if (ev) OBS("  read: %s", RET(read(fd, buf, sizeof(buf))));
  }
  char reply[64];
  int n = snprintf(reply, sizeof(reply), "got %zu bytes, then your half-close\n", total);
  OBS("reply write: %s", RET(write(fd, reply, (size_t)n)));
  OBS("close: %s", RET(close(fd)));
  return 0;
}
