/* sigpipe_blocked PORT — a threaded daemon that blocks SIGPIPE with sigprocmask (not SIG_IGN: its
 * signal thread would see it) and writes to a client that reset: ECONNRESET first (no signal),
 * then EPIPE with SIGPIPE left pending, consumed by sigtimedwait. */
#include "../host.h"

int main(int argc, char **argv) {
  if (argc < 2) die("usage: sigpipe_blocked PORT");
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  char buf[64];
  OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
  OBS("write: %s", RET(write(fd, "ack\n", 4)));
  usleep(300000);
  sigset_t pend;
  OBS("write after the reset: %s", RET(write(fd, "x", 1)));
  sigpending(&pend);
  OBS("SIGPIPE pending: %d", sigismember(&pend, SIGPIPE));
  OBS("write again: %s", RET(write(fd, "x", 1)));
  sigpending(&pend);
  OBS("SIGPIPE pending: %d", sigismember(&pend, SIGPIPE));
  struct timespec ts = {0, 0};
  OBS("sigtimedwait: %s", sigtimedwait(&s, NULL, &ts) == SIGPIPE ? "SIGPIPE" : "none");
  OBS("send MSG_NOSIGNAL: %s", RET(send(fd, "x", 1, MSG_NOSIGNAL)));
  sigpending(&pend);
  OBS("SIGPIPE pending: %d", sigismember(&pend, SIGPIPE));
  OBS("close: %s", RET(close(fd)));
  return 0;
}
