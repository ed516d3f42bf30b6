/* epoll_exclusive PORT NCLIENTS VARIANT — nginx's accept model: 3 worker threads, each with its
 * own epoll set, the shared non-blocking listening socket added to every set with
 * EPOLLIN|EPOLLEXCLUSIVE (one waiter woken per connection). A worker that wakes accept()s (EAGAIN
 * when another was quicker), adds the connection to its OWN set and serves it there: read a line,
 * reply "served <line>", close. All NCLIENTS must be served.
 *
 * VARIANT "listener": connections registered with EPOLLIN. VARIANT "conn_exclusive": connections
 * registered with EPOLLIN|EPOLLEXCLUSIVE (the kernel allows it on any fd), and the first connection
 * also checks the kernel's rules for EPOLLEXCLUSIVE on a connection: ADD with EPOLLRDHUP is EINVAL,
 * ADD with EPOLLONESHOT is EINVAL, MOD of an exclusive registration is EINVAL.
 * Issue 9: "EPOLLONESHOT and EPOLLEXCLUSIVE honoured". */

#include "../host.h"
#include <stdatomic.h>
#include <sys/epoll.h>

#define MAXFD 4096

static int lfd, nclients, conn_exclusive;
static atomic_int served, accept_eagain, checked;
static char line[MAXFD][256];
static size_t llen[MAXFD];

static void check_exclusive_rules(int fd) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | EPOLLEXCLUSIVE, .data.fd = fd};
  OBS("ADD conn IN|RDHUP|EXCLUSIVE: %s", RET(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e)));
  e.events = EPOLLIN | EPOLLONESHOT | EPOLLEXCLUSIVE;
  OBS("ADD conn IN|ONESHOT|EXCLUSIVE: %s", RET(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e)));
  e.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLEXCLUSIVE;
  OBS("ADD conn IN|OUT|ET|EXCLUSIVE: %s", RET(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e)));
  e.events = EPOLLIN;
  OBS("MOD of that exclusive registration: %s", RET(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e)));
  OBS("DEL: %s", RET(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL)));
  close(ep);
}

static void *worker(void *arg) {
  (void)arg;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = lfd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e)) die("ADD listener EXCLUSIVE");
  struct epoll_event ev[16];
  while (atomic_load(&served) < nclients) {
    int n = epoll_wait(ep, ev, 16, 100);
    for (int i = 0; i < n; i++) {
      int fd = ev[i].data.fd;
      if (fd == lfd) {
        int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (c < 0) {
          if (errno == EAGAIN) atomic_fetch_add(&accept_eagain, 1);
          else OBS("accept: %s", errname(errno));
          continue;
        }
        if (c >= MAXFD) die("fd %d", c);
        if (conn_exclusive && !atomic_exchange(&checked, 1)) check_exclusive_rules(c);
        llen[c] = 0;
        struct epoll_event ce = {.events = EPOLLIN | (conn_exclusive ? EPOLLEXCLUSIVE : 0),
                                 .data.fd = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce)) { /* cannot serve it: count it, move on */
          OBS("ADD conn: %s", errname(errno));
          close(c);
          atomic_fetch_add(&served, 1);
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(fd, line[fd] + llen[fd], sizeof(line[fd]) - 1 - llen[fd]);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) break;
        if (r > 0) llen[fd] += (size_t)r;
        if (r > 0 && !memchr(line[fd], '\n', llen[fd]) && llen[fd] < sizeof(line[fd]) - 1) continue;
        if (r > 0) {
          char reply[300];
          int m = snprintf(reply, sizeof(reply), "served %.*s", (int)llen[fd], line[fd]);
          if (write_all(fd, reply, (size_t)m)) OBS("reply: %s", errname(errno));
          atomic_fetch_add(&served, 1);
        } else {
          OBS("connection ended before its line: %s", r == 0 ? "EOF" : errname(errno));
          atomic_fetch_add(&served, 1);
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
        break;
      }
    }
  }
  close(ep);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4) die("usage: %s PORT ...", argv[0]);
  nclients = atoi(argv[2]);
  conn_exclusive = !strcmp(argv[3], "conn_exclusive");
  signal(SIGPIPE, SIG_IGN);
  lfd = listen_on(atoi(argv[1]));
  set_nonblock(lfd, 1);
  pthread_t th[3];
  for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, worker, NULL);
  ready();
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  OBS("served %d", atomic_load(&served));
  return 0;
}
