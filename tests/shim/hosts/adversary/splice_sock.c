/* splice_sock PORT — a proxy that tries splice() straight from one connection to another (or to a
 * file) and falls back to read/write when the kernel says EINVAL (splice needs a pipe on one side).
 * The kernel refuses both; nothing may leave the second connection but what the fallback writes. */
#include "../host.h"

#include <sys/time.h>

int main(int argc, char **argv) {
  if (argc < 2) die("usage: splice_sock PORT");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int c1 = accept(lfd, NULL, NULL);
  if (c1 < 0) die("accept");
  char line[64];
  OBS("c1 request: %s", RET(read_line(c1, line, sizeof(line))));
  OBS("c1 hello: %s", RET(write(c1, "c1\n", 3)));
  int c2 = accept(lfd, NULL, NULL);
  if (c2 < 0) die("accept");
  struct pollfd p = {.fd = c1, .events = POLLIN};
  OBS("poll c1: %s", RET(poll(&p, 1, 3000)));
  usleep(100000);
  struct timeval tv = {1, 0}; /* bounds every wait on c1 (the kernel's calls do not wait) */
  setsockopt(c1, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char path[] = "/tmp/splice_sock_XXXXXX";
  int file = mkstemp(path);
  if (file < 0) die("mkstemp");
  unlink(path);
  OBS("splice(c1 -> c2): %s", RET(splice(c1, NULL, c2, NULL, 64, 0)));
  OBS("splice(c1 -> file): %s", RET(splice(c1, NULL, file, NULL, 64, SPLICE_F_NONBLOCK)));
  char buf[64];
  ssize_t r = read(c1, buf, sizeof(buf));
  OBS("fallback read(c1): %s", RET(r));
  if (r > 0) OBS("fallback write(c2): %s", RET(write(c2, buf, (size_t)r)));
  OBS("close c2: %s", RET(close(c2)));
  OBS("close c1: %s", RET(close(c1)));
  return 0;
}
