/* duplex_threads — one connection, two threads: one only reads, the other only writes, at the same
 * time (relays, terminal servers, streaming RPC — the pattern every proxy thread pair uses). Each
 * direction carries 8 MiB (bytes i % 251 one way, i % 241 the other), more than the buffers on the
 * path hold, so both threads are blocked inside their calls at once. Proves that a blocked reader
 * and a blocked writer on one TLS session neither deadlock nor disturb each other: each side gets
 * the other's stream intact, the writer's shutdown(SHUT_WR) reaches the peer as the end of input
 * while the reader goes on, and the records are at consecutive sequence numbers. */
#include "../host.h"

#define BIG (8 << 20)

static int fd;
static size_t rgot;
static int rintact = 1;
static const char *rend;

static void *reader(void *arg) {
  static char buf[65536];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      rend = r == 0 ? "EOF" : errname(errno);
      break;
    }
    for (ssize_t i = 0; i < r; i++)
      if ((unsigned char)buf[i] != (unsigned char)((rgot + (size_t)i) % 241)) rintact = 0;
    rgot += (size_t)r;
  }
  return arg;
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: duplex_threads PORT");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  pthread_t th;
  if (pthread_create(&th, NULL, reader, NULL)) die("pthread_create");
  unsigned char *out = malloc(BIG);
  if (!out) die("malloc");
  for (size_t i = 0; i < BIG; i++) out[i] = (unsigned char)(i % 251);
  size_t off = 0;
  while (off < BIG) { /* 1 MiB writes: each blocks until the peer has read enough */
    size_t n = BIG - off < (1 << 20) ? BIG - off : (1 << 20);
    ssize_t w = write(fd, out + off, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      OBS("writer: write failed %s after %s", RET(w), off ? "some bytes" : "nothing");
      break;
    }
    off += (size_t)w;
  }
  OBS("writer: %s", off == BIG ? "all 8 MiB written" : "stopped early");
  OBS("writer: shutdown(SHUT_WR) %s", RET(shutdown(fd, SHUT_WR)));
  pthread_join(th, NULL);
  OBS("reader: %s, intact %s, then %s", rgot == BIG ? "8 MiB" : "a different amount",
      rintact ? "yes" : "no", rend);
  OBS("close %s", RET(close(fd)));
  free(out);
  return 0;
}
