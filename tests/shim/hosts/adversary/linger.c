/* linger PORT — an abortive close: a server (or proxy) whose upstream failed half-way sets
 * SO_LINGER {1, 0} and closes, so that the client sees a reset instead of a clean end and does not
 * take the partial response for a complete one (nginx's reset_timedout_connection, proxies on an
 * upstream error). The peer must see the bytes and then the reset, never a clean end. */
#include "../host.h"

int main(int argc, char **argv) {
  if (argc < 2) die("usage: linger PORT");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  char buf[64];
  OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
  OBS("write the first half: %s", RET(write(fd, "partial body", 12)));
  usleep(100000);
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  OBS("SO_LINGER {1, 0}: %s", RET(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l))));
  OBS("close: %s", RET(close(fd)));
  usleep(300000);
  return 0;
}
