/* epoll_early_wait PORT — a worker thread starts blocking in epoll_wait (no timeout) on a new,
 * still EMPTY epoll set; only then does the main thread accept a connection and add it with
 * EPOLLIN|EPOLLONESHOT and a pointer-like cookie in data.u64 (how thread pools and most event
 * libraries start: workers first, connections later). The worker must get exactly the registered
 * cookie and events, and — one-shot — nothing more until re-armed: its next wait (300 ms) times
 * out. Then it re-arms, reads the request, replies and closes.
 * Found by the epoll pool test: a wait that began before the set's first epoll_ctl went straight to
 * the kernel, bypassing the emulation (raw internal tags reached the host, ONESHOT ignored). */
#include "../host.h"

#include <sys/epoll.h>

#define COOKIE 0x5eed00000000c0deULL

static int epfd, conn = -1;

static void *worker(void *arg) {
  (void)arg;
  struct epoll_event ev[4];
  int n = epoll_wait(epfd, ev, 4, -1);
  OBS("first wait: %s", RET(n));
  for (int i = 0; i < n; i++)
    OBS("  event: %s, data %s", revents_str((short)ev[i].events),
        ev[i].data.u64 == COOKIE ? "the registered cookie" : "NOT the registered cookie");
  n = epoll_wait(epfd, ev, 4, 300);
  OBS("second wait (one-shot, not re-armed): %s", RET(n));
  struct epoll_event e = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = COOKIE};
  OBS("re-arm: %s", RET(epoll_ctl(epfd, EPOLL_CTL_MOD, conn, &e)));
  n = epoll_wait(epfd, ev, 4, 3000);
  OBS("third wait: %s", RET(n));
  char buf[256];
  ssize_t r = read(conn, buf, sizeof(buf));
  OBS("read: %s", RET(r));
  if (r > 0) OBS("reply: %s", RET(write(conn, "got it\n", 7)));
  OBS("close: %s", RET(close(conn)));
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: %s PORT", argv[0]);
  signal(SIGPIPE, SIG_IGN);
  alarm(20); /* a watchdog */
  int lfd = listen_on(atoi(argv[1]));
  epfd = epoll_create1(EPOLL_CLOEXEC);
  pthread_t th;
  pthread_create(&th, NULL, worker, NULL);
  usleep(100 * 1000); /* the worker is blocked in epoll_wait by now */
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  set_nonblock(fd, 1);
  conn = fd;
  struct epoll_event e = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = COOKIE};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e)) die("epoll_ctl");
  pthread_join(th, NULL);
  return 0;
}
