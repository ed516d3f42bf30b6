/* select_echo PORT NCLIENTS — the oldest event loop: one thread, select() over the listener and
 * every client, BLOCKING sockets, and a single 7-byte read per readable client per round (then
 * back to select). Echoes what it reads. A read that blocks means select said "readable" falsely; a
 * client that stalls means plaintext buffered inside TLS (after a 7-byte read of a larger record)
 * did not wake select. Exits once NCLIENTS connections have ended; prints each connection's
 * digest (sorted). Issue 9: "select" among the readiness patterns. */

#include "../host.h"
#include <sys/select.h>

static int cmp(const void *a, const void *b) { return strcmp(a, b); }

int main(int argc, char **argv) {
  if (argc < 3) die("usage: %s PORT ...", argv[0]);
  int nclients = atoi(argv[2]);
  signal(SIGPIPE, SIG_IGN);
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fds[64], n = 0, ended = 0, accepted = 0;
  digest dg[64];
  char results[64][64];
  long reads = 0;
  while (ended < nclients) {
    fd_set rs;
    FD_ZERO(&rs);
    int maxfd = -1;
    if (accepted < nclients) {
      FD_SET(lfd, &rs);
      maxfd = lfd;
    }
    for (int i = 0; i < n; i++)
      if (fds[i] >= 0) {
        FD_SET(fds[i], &rs);
        if (fds[i] > maxfd) maxfd = fds[i];
      }
    struct timeval tv = {5, 0};
    int r = select(maxfd + 1, &rs, NULL, NULL, &tv);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      OBS("select: %s (a stall)", r == 0 ? "timeout" : errname(errno));
      break;
    }
    if (accepted < nclients && FD_ISSET(lfd, &rs)) {
      int c = accept(lfd, NULL, NULL);
      if (c < 0 || c >= FD_SETSIZE) die("accept");
      digest_init(&dg[n]);
      fds[n++] = c;
      accepted++;
    }
    for (int i = 0; i < n; i++) {
      int fd = fds[i];
      if (fd < 0 || !FD_ISSET(fd, &rs)) continue;
      char buf[7];
      ssize_t got = read(fd, buf, sizeof(buf)); /* blocking: select must have been right */
      reads++;
      if (got > 0) {
        digest_add(&dg[i], buf, (size_t)got);
        if (write_all(fd, buf, (size_t)got)) OBS("echo: %s", errname(errno));
        continue;
      }
      snprintf(results[ended], sizeof(results[ended]), "%s %llu:%016llx",
               got == 0 ? "eof" : errname(errno), (unsigned long long)dg[i].n,
               (unsigned long long)dg[i].h);
      ended++;
      close(fd);
      fds[i] = -1;
    }
  }
  qsort(results, (size_t)ended, sizeof(results[0]), cmp);
  for (int i = 0; i < ended; i++) OBS("connection: %s", results[i]);
  OBS("ended %d of %d", ended, nclients);
  return 0;
}
