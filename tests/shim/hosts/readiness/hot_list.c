/* hot_list PORT NLEGIT — a level-triggered epoll server under a crowd of idle connections (port
 * scanners, half-open clients, a load balancer's idle pool): it accepts everything, registers every
 * connection for EPOLLIN, reads requests in small pieces (at most 4 bytes per wakeup, as a server
 * that parses a fixed-size header first: the rest stays buffered and level-triggered epoll must
 * report it again), answers each line with "answer <line>" and closes. It raises its soft
 * RLIMIT_NOFILE first, as daemons do. Exits after NLEGIT answers.
 *
 * The peer first opens 300 connections that never send a byte, then NLEGIT real clients; each must
 * be answered at once — readiness cost must follow what is ready, not every connection (the
 * landed shim looked at 256 entries per epoll_wait). Issue 9, item 12. */

#include "../host.h"
#include <sys/epoll.h>
#include <sys/resource.h>

#define MAXFD 8192

static char line[MAXFD][128];
static size_t llen[MAXFD];

int main(int argc, char **argv) {
  if (argc < 3) die("usage: %s PORT ...", argv[0]);
  int nlegit = atoi(argv[2]);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2048) {
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = listen_on(atoi(argv[1]));
  set_nonblock(lfd, 1);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e)) die("epoll_ctl listener");
  ready();
  int answered = 0, other_ends = 0;
  struct epoll_event ev[64];
  int64_t give_up = now_ms() + 8000; /* the peer needs well under a second */
  while (answered < nlegit) {
    int64_t left = give_up - now_ms();
    int n = left > 0 ? epoll_wait(ep, ev, 64, (int)left) : 0;
    if (n <= 0) {
      OBS("epoll_wait: %s (a stall)", n == 0 ? "gave up after 8 s" : errname(errno));
      break;
    }
    for (int i = 0; i < n; i++) {
      int fd = ev[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          if (c >= MAXFD) die("fd %d", c);
          llen[c] = 0;
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce)) OBS("ADD: %s", errname(errno));
        }
        continue;
      }
      size_t room = sizeof(line[fd]) - 1 - llen[fd];
      ssize_t r = read(fd, line[fd] + llen[fd], room < 4 ? room : 4);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r > 0) {
        llen[fd] += (size_t)r;
        if (!memchr(line[fd], '\n', llen[fd]) && llen[fd] < sizeof(line[fd]) - 1) continue;
        char reply[160];
        int m = snprintf(reply, sizeof(reply), "answer %.*s", (int)llen[fd], line[fd]);
        if (write_all(fd, reply, (size_t)m)) OBS("reply: %s", errname(errno));
        answered++;
      } else {
        other_ends++; /* a connection that ended without a line */
      }
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
      close(fd);
    }
  }
  OBS("answered %d", answered);
  OBS("connections that ended without a line: %d", other_ends);
  return 0;
}
