/* lt_fairness PORT — a level-triggered epoll loop that takes ONE event per epoll_wait
 * (maxevents 1, as some loops do to keep per-event latency flat) and does a little work per event.
 * Connection A (the first) streams a bulk upload that the server consumes slowly, 1 byte and
 * 1 ms per event, so A stays readable for a long time; connection B then sends "ping" and must be
 * accepted and answered at once. The kernel rotates level-triggered fds that stay ready to the
 * back of its ready list: the listener and B get their turns while A is still readable. A shim that
 * puts A back at the head of its list (or returns before looking at the kernel's events) starves
 * everything else. The host gives up after 5 s. Issue 9: "level-triggered exact", "cost
 * proportional to what is ready". */
#include "../host.h"

#include <sys/epoll.h>

int main(int argc, char **argv) {
  if (argc < 2) die("usage: %s PORT", argv[0]);
  signal(SIGPIPE, SIG_IGN);
  int lfd = listen_on(atoi(argv[1]));
  set_nonblock(lfd, 1);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e)) die("epoll_ctl listener");
  ready();
  int a = -1, b = -1;
  size_t a_read = 0, b_len = 0;
  char b_line[64];
  int64_t b_accepted = 0, give_up = now_ms() + 5000;
  for (;;) {
    int64_t left = give_up - now_ms();
    struct epoll_event ev;
    int n = left > 0 ? epoll_wait(ep, &ev, 1, (int)left) : 0;
    if (n <= 0) {
      OBS("gave up after 5 s: B %s", b < 0 ? "never accepted" : "accepted, never answered");
      break;
    }
    int fd = ev.data.fd;
    if (fd == lfd) {
      int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
      if (c < 0) continue;
      struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce)) die("epoll_ctl conn");
      if (a < 0) {
        a = c;
      } else {
        b = c;
        b_accepted = now_ms();
      }
      continue;
    }
    if (fd == a) { /* the bulk upload: a byte and a millisecond of work per event */
      char ch;
      if (read(a, &ch, 1) == 1) a_read++;
      usleep(1000);
      continue;
    }
    ssize_t r = read(fd, b_line + b_len, sizeof(b_line) - 1 - b_len);
    if (r < 0 && errno == EAGAIN) continue;
    if (r > 0) b_len += (size_t)r;
    if (r > 0 && !memchr(b_line, '\n', b_len) && b_len < sizeof(b_line) - 1) continue;
    OBS("B: request %.*s", (int)(b_len ? b_len - 1 : 0), b_line);
    OBS("B: reply %s", RET(write(b, "pong\n", 5)));
    obs_elapsed("B: answered after its accept", now_ms() - b_accepted, 0, 1000);
    break;
  }
  OBS("A: bytes consumed meanwhile: %s",
      a_read == 0 ? "none" : a_read < 64 * 1024 ? "some, not all" : "all");
  return 0;
}
