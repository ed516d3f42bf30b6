/* cork PORT MODE — TCP_CORK and MSG_MORE, as nginx (tcp_nopush), HTTP servers and proxies use them
 * to send a response's header and body together. The shim emulates the cork (it holds plaintext and
 * seals it as one record at the uncork), so what the host sees and when the peer gets the bytes must
 * match the kernel's corked socket:
 *   uncork:  cork, write a header and a body, getsockopt(TCP_CORK) says 1, wait 100 ms, uncork
 *            (getsockopt says 0): the peer gets both together, after the uncork;
 *   timeout: cork, write, never uncork: the kernel sends corked data after 200 ms anyway;
 *   more:    send(MSG_MORE) then send(0): the two go out together;
 *   big:     cork, write 100 000 bytes, uncork: full segments (records) go out as they fill. */
#include <netinet/tcp.h>

#include "io.h"

static int cork(int fd, int on) { return setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)); }

static int corked(int fd) {
  int v = -1;
  socklen_t l = sizeof(v);
  getsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, &l);
  return v;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: cork PORT uncork|timeout|more|big");
  const char *mode = argv[2];
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept(lfd, NULL, NULL);
  char line[64];
  read_line(fd, line, sizeof(line));
  if (!strcmp(mode, "uncork")) {
    const char *r = RET(cork(fd, 1));
    OBS("cork: %s, TCP_CORK %d", r, corked(fd));
    OBS("header: %s", RET(write(fd, "HEADER\n", 7)));
    OBS("body: %s", RET(write(fd, "body\n", 5)));
    usleep(100 * 1000);
    r = RET(cork(fd, 0));
    OBS("uncork: %s, TCP_CORK %d", r, corked(fd));
  } else if (!strcmp(mode, "timeout")) {
    OBS("cork: %s", RET(cork(fd, 1)));
    OBS("write: %s", RET(write(fd, "held\n", 5)));
    usleep(900 * 1000); /* the peer measures when the bytes came */
    OBS("still corked: %d", corked(fd));
  } else if (!strcmp(mode, "more")) {
    OBS("send(MSG_MORE): %s", RET(send(fd, "first ", 6, MSG_MORE)));
    usleep(50 * 1000);
    OBS("send: %s", RET(send(fd, "second\n", 7, 0)));
  } else {
    unsigned char *p = big_pattern(7, 100000);
    OBS("cork: %s", RET(cork(fd, 1)));
    OBS("write: %s", RET(write_all(fd, p, 100000) ? -1 : 100000));
    OBS("uncork: %s", RET(cork(fd, 0)));
    free(p);
  }
  OBS("close: %s", RET(close(fd)));
  return 0;
}
