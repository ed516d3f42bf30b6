/* exit_with_open_conn MODE COUNTFILE — a server that answers with a large reply on a non-blocking
 * socket, writes what the kernel takes until EAGAIN, and then ends the process with the connection
 * still open: MODE "exit" (exit(0)) or "_exit" (_exit(0)) — a CLI tool or a one-shot daemon that
 * relies on the kernel to deliver what it accepted. The kernel keeps every accepted byte after the
 * process is gone and sends it, then the FIN, as the slow peer reads. Through the shim every byte
 * the host's writes accepted must reach the peer too, then close_notify. The number of bytes
 * accepted depends on buffer sizes, so it goes to COUNTFILE for the peer to check (the host prints
 * only "partial" / "all"). The stream is 8-byte big-endian offsets (cheap to check in the peer). */
#include "../host.h"

#define CAP (16 << 20) /* give up writing at 16 MiB (no EAGAIN by then: "all") */

static void fill(unsigned char *buf, size_t len, uint64_t off) {
  for (size_t i = 0; i < len; i++) {
    uint64_t p = off + i, k = p / 8;
    buf[i] = (unsigned char)(k >> (8 * (7 - p % 8)));
  }
}

int main(int argc, char **argv) {
  if (argc < 4) die("usage: exit_with_open_conn PORT MODE COUNTFILE");
  int lfd = listen_on(atoi(argv[1]));
  const char *mode = argv[2], *countfile = argv[3];
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  char req[256];
  read_line(fd, req, sizeof(req));
  OBS("request: %s", req);
  int sb = 65536;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
  set_nonblock(fd, 1);
  static unsigned char buf[65536];
  uint64_t off = 0;
  int err = 0;
  while (off < CAP) {
    fill(buf, sizeof(buf), off);
    ssize_t w = write(fd, buf, sizeof(buf));
    if (w < 0) {
      err = errno;
      break;
    }
    off += (uint64_t)w;
  }
  OBS("non-blocking writes: %s, then %s", off == 0 ? "none" : off < CAP ? "partial" : "all",
      err ? errname(err) : "no error");
  FILE *cf = fopen(countfile, "w");
  if (!cf) die("fopen %s", countfile);
  fprintf(cf, "%llu\n", (unsigned long long)off);
  fclose(cf);
  OBS("ending the process by %s with the connection open", mode);
  if (!strcmp(mode, "_exit")) _exit(0);
  exit(0);
}
