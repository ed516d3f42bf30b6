/* epoll_two PORT — one connection in two epoll sets at once, edge-triggered in one and
 * level-triggered in the other (a library with its own loop next to the program's), and an
 * EPOLL_CTL_MOD from another thread while the main thread waits (a worker asking for EPOLLOUT).
 * Each set must report what the kernel reports for its own registration. */
#include "../host.h"

#include <sys/epoll.h>

static int fd, lt;

static void obs_wait(const char *what, int ep, int timeout) {
  struct epoll_event ev[4];
  int n = epoll_wait(ep, ev, 4, timeout);
  int e = errno;
  OBS("%s: %s%s%s%s", what, ret(n, e), n > 0 && (ev[0].events & EPOLLIN) ? " IN" : "",
      n > 0 && (ev[0].events & EPOLLOUT) ? " OUT" : "",
      n > 0 && ev[0].data.u64 != 7 ? " (wrong data)" : "");
}

static void *modder(void *arg) {
  (void)arg;
  usleep(200000);
  struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.u64 = 7};
  OBS("thread: EPOLL_CTL_MOD to IN|OUT: %s", RET(epoll_ctl(lt, EPOLL_CTL_MOD, fd, &e)));
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: epoll_two PORT");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  set_nonblock(fd, 1);
  int et = epoll_create1(0);
  lt = epoll_create1(0);
  struct epoll_event e1 = {.events = EPOLLIN | EPOLLET, .data.u64 = 7};
  struct epoll_event e2 = {.events = EPOLLIN, .data.u64 = 7};
  OBS("add ET: %s", RET(epoll_ctl(et, EPOLL_CTL_ADD, fd, &e1)));
  OBS("add LT: %s", RET(epoll_ctl(lt, EPOLL_CTL_ADD, fd, &e2)));
  obs_wait("ET wait", et, 3000);
  usleep(100000);
  obs_wait("LT wait", lt, 3000);
  char buf[64];
  OBS("read 3: %s", RET(read(fd, buf, 3)));
  obs_wait("ET again (no new edge)", et, 0);
  obs_wait("LT again (7 bytes left)", lt, 0);
  obs_wait("LT once more", lt, 0);
  OBS("read the rest: %s", RET(read(fd, buf, sizeof(buf))));
  OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
  obs_wait("LT drained", lt, 0);
  obs_wait("ET drained", et, 0);
  pthread_t t;
  pthread_create(&t, NULL, modder, NULL);
  int64_t t0 = now_ms();
  obs_wait("LT wait, MOD from a thread", lt, 3000);
  obs_elapsed("woken", now_ms() - t0, 100, 1500);
  pthread_join(t, NULL);
  struct epoll_event e3 = {.events = EPOLLIN, .data.u64 = 7};
  OBS("MOD back to IN: %s", RET(epoll_ctl(lt, EPOLL_CTL_MOD, fd, &e3)));
  OBS("write: %s", RET(write(fd, "ok1\n", 4)));
  obs_wait("ET wait for bye", et, 3000);
  usleep(100000);
  obs_wait("LT wait for bye", lt, 3000);
  OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
  OBS("DEL from ET: %s", RET(epoll_ctl(et, EPOLL_CTL_DEL, fd, NULL)));
  OBS("write: %s", RET(write(fd, "ok2\n", 4)));
  OBS("close: %s", RET(close(fd)));
  obs_wait("LT after close", lt, 0);
  obs_wait("ET after close", et, 0);
  return 0;
}
