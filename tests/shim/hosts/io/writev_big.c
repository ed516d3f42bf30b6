/* writev_big PORT — big blocking writes (item 10 of issue 9): a server that answers with one
 * write() of 1 MiB, one writev() of 16 iovecs of 64 KiB (what a web server does for header +
 * body pieces) and one send() of 100 000 bytes. On a blocking socket the kernel writes everything
 * before returning: each call must return its full count (the landed shim returned 16 384). The
 * peer starts reading late (the calls really block) and checks every byte. */
#include "io.h"

#include <sys/uio.h>

int main(int argc, char **argv) {
  if (argc < 2) die("usage: %s PORT", argv[0]);
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept_one(lfd);
  unsigned char *p = big_pattern(10, MiB);
  OBS("write(1 MiB): %s", RET(write(fd, p, MiB)));
  struct iovec iov[16];
  for (int i = 0; i < 16; i++) {
    iov[i].iov_base = p + (size_t)i * 65536;
    iov[i].iov_len = 65536;
  }
  OBS("writev(16 x 64 KiB): %s", RET(writev(fd, iov, 16)));
  OBS("send(100000): %s", RET(send(fd, p, 100000, 0)));
  OBS("close: %s", RET(close(fd)));
  free(p);
  return 0;
}
