/* sigpipe PORT MODE — writing to a connection the peer has closed. The peer sends "bye", ends its
 * direction, reads our "ack" and closes (or resets). The next write reaches a closed socket (the
 * peer's kernel answers with a reset), and the write after that fails.
 * fin_ignored:   SIGPIPE ignored (what most daemons do): the failing write returns -1 EPIPE and
 *                the program goes on.
 * reset_ignored: the peer does not end its direction but resets (SO_LINGER 0) after our ack:
 *                -1 ECONNRESET, then EPIPE.
 * reset_soerror: after the reset, getsockopt(SO_ERROR) reports ECONNRESET once (then 0), and
 *                reads return 0, writes EPIPE.
 * fin_default:   SIGPIPE left at its default: the kernel kills the program at the failing write()
 *                (send with MSG_NOSIGNAL first returns -1 EPIPE without a signal). What the host
 *                sees through the shim must be the same: killed by SIGPIPE at the same call. */
#include "io.h"

int main(int argc, char **argv) {
  if (argc < 3) die("usage: sigpipe PORT fin_ignored|fin_default|reset_ignored|reset_soerror");
  const char *mode = argv[2];
  if (!strstr(mode, "default")) signal(SIGPIPE, SIG_IGN);
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept_one(lfd);
  char buf[256];
  read_line(fd, buf, sizeof(buf));
  OBS("request: %.*s", chomp(buf, (ssize_t)strlen(buf)), buf);
  int reset = strstr(mode, "reset") != NULL;
  if (!reset) OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
  OBS("write ack: %s", RET(write(fd, "ack\n", 4)));
  /* the peer reads the ack and closes; wait for it */
  usleep(300 * 1000);
  if (reset) {
    obs_poll("poll after the reset", fd, POLLIN | POLLOUT | POLLRDHUP, 1000);
    if (strstr(mode, "soerror")) {
      for (int i = 0; i < 2; i++) {
        int err = -1;
        socklen_t sl = sizeof(err);
        int r = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
        OBS("getsockopt(SO_ERROR): %s, %s", RET(r), errname(err));
      }
      OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
    }
  } else {
    OBS("write to the closed peer: %s", RET(write(fd, "one\n", 4)));
    usleep(300 * 1000); /* the peer's reset arrives */
    obs_poll("poll after the reset", fd, POLLIN | POLLOUT | POLLRDHUP, 1000);
  }
  if (strstr(mode, "default")) {
    OBS("send(MSG_NOSIGNAL): %s", RET(send(fd, "two\n", 4, MSG_NOSIGNAL)));
    OBS("write (SIGPIPE at its default: the kernel kills us here)");
    OBS("write: %s", RET(write(fd, "three\n", 6)));
    OBS("still alive after the write");
  } else {
    OBS("write: %s", RET(write(fd, "two\n", 4)));
    OBS("write again: %s", RET(write(fd, "three\n", 6)));
    OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
  }
  OBS("close: %s", RET(close(fd)));
  return 0;
}
