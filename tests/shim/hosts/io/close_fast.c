/* close_fast PORT MODE — close() returns at once (item 16 of issue 9). A server writes a response
 * non-blocking until EAGAIN to a peer that is not reading (a slow client of an event loop) — until
 * the connection stalls, then until EAGAIN once more — then closes at once: close() must return
 * within 100 ms (the landed shim waited ~2 s), and everything the writes accepted must still
 * reach the peer, followed by a clean end (the kernel keeps sending a closed socket's queue; the
 * shim must finish it, close_notify last). The number of bytes accepted differs between runs, so
 * it goes to the peer on a second connection and the peer checks that exactly those arrived.
 * linger: the server stays alive until the peer is done.
 * exit:   the server exits right after closing (the kernel still delivers; the shim must drain
 *         before the process is gone).
 * shutdown: shutdown(SHUT_WR) instead of close (the FIN queued behind the data): it returns at
 *         once too, and the peer gets every byte, then the end (close_notify, then FIN). */
#include "io.h"

int main(int argc, char **argv) {
  if (argc < 3) die("usage: close_fast PORT linger|exit|shutdown");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept_one(lfd);
  char line[64];
  read_line(fd, line, sizeof(line));
  OBS("request: %.*s", chomp(line, (ssize_t)strlen(line)), line);
  OBS("write: %s", RET(write(fd, "ok\n", 3)));
  unsigned char *p = big_pattern(16, MiB);
  set_nonblock(fd, 1);
  size_t total = 0;
  ssize_t w;
  int stalled = 0;
  for (;;) { /* until EAGAIN and no POLLOUT for 200 ms (every buffer on the way is full), then
              * until EAGAIN once more: close() comes right after the kernel said "full" */
    w = write(fd, p + total % MiB, MiB - total % MiB);
    if (w > 0 && total < 256 * (size_t)MiB) { /* capped: a kernel fills long before */
      total += (size_t)w;
      continue;
    }
    if (w > 0 || errno != EAGAIN || stalled) break;
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    if (poll(&pf, 1, 200) == 0) stalled = 1;
  }
  OBS("non-blocking writes until: %s, some accepted: %s", RET(w), total ? "yes" : "no");
  int shut = !strcmp(argv[2], "shutdown");
  int64_t t0 = now_ms();
  if (shut) OBS("shutdown(SHUT_WR): %s", RET(shutdown(fd, SHUT_WR)));
  else OBS("close: %s", RET(close(fd)));
  obs_elapsed("  it returned", now_ms() - t0, 0, 100);
  int ctl = accept_one(lfd);
  char msg[64];
  int m = snprintf(msg, sizeof(msg), "%zu\n", total);
  OBS("count on the second connection: %s", write_all(ctl, msg, (size_t)m) ? "failed" : "written");
  if (strcmp(argv[2], "exit")) {
    int err = 0;
    char buf[64];
    size_t n = read_all(ctl, buf, sizeof(buf), &err);
    OBS("second connection: read to EOF: %zu bytes, %s", n, errname(err));
  }
  OBS("close: %s", RET(close(ctl)));
  if (shut) OBS("close the first: %s", RET(close(fd)));
  free(p);
  return 0;
}
