/* stdio_fdopen MODE FILE — a server that talks to its client through stdio streams on the socket
 * (fdopen), as many small C daemons and textbook servers do:
 *   rplus: one stream fdopen(fd, "r+"): fgets the request, fprintf the reply, fflush, fclose;
 *   split: the common two-stream idiom: fdopen(fd, "r") to read, fdopen(dup(fd), "w") to write;
 *   extra: "r+" when the client sent two lines at once: the second is still in the stream's read
 *          buffer when the reply is written (C requires a seek between reading and writing on an
 *          update stream; on a socket the seek fails: what fflush then reports is glibc's, on a
 *          kernel socket, and must be the same through the shim).
 * glibc's stdio calls its internal read/write/close, never the interposed ones: through the shim a
 * stream must still read plaintext, write TLS, and fclose must end the session and leave no trace
 * of it: the fd numbers fclose freed are handed out again by open() and the new files work
 * (write, read back: no ENOTSOCK, no data of the dead connection). */
#include "../host.h"

/* reuse opens FILE and checks it got number `want` and works as a file. */
static void reuse(const char *path, int want) {
  int nfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  OBS("open %s fd: %s", nfd == want ? "the freed" : "another", nfd < 0 ? RET(nfd) : "ok");
  if (nfd < 0) return;
  OBS("file write: %s", RET(write(nfd, "file text", 9)));
  OBS("file lseek: %s", RET(lseek(nfd, 0, SEEK_SET)));
  char buf[32] = {0};
  OBS("file read: %s '%s'", RET(read(nfd, buf, sizeof(buf) - 1)), buf);
  close(nfd);
  unlink(path);
}

int main(int argc, char **argv) {
  if (argc < 4) die("usage: stdio_fdopen PORT MODE FILE");
  int lfd = listen_on(atoi(argv[1]));
  const char *mode = argv[2], *path = argv[3];
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  char line[256] = {0};
  if (!strcmp(mode, "rplus") || !strcmp(mode, "extra")) {
    FILE *f = fdopen(fd, "r+");
    OBS("fdopen r+: %s, fileno is fd: %s", f ? "ok" : "NULL", f && fileno(f) == fd ? "yes" : "no");
    if (!f) return 1;
    OBS("fgets: %s", fgets(line, sizeof(line), f) ? line : "NULL");
    errno = 0;
    OBS("ftell: %s", RET(ftell(f)));
    errno = 0;
    int n = fprintf(f, "reply to %s", line);
    OBS("fprintf: %d", n);
    errno = 0;
    int r = fflush(f);
    OBS("fflush: %d %s, ferror %d", r, r ? errname(errno) : "", ferror(f) != 0);
    clearerr(f);
    OBS("fclose: %s", RET(fclose(f)));
    reuse(path, fd);
  } else {
    FILE *rf = fdopen(fd, "r");
    int wfd = dup(fd);
    FILE *wf = fdopen(wfd, "w");
    OBS("fdopen r: %s, fileno is fd: %s", rf ? "ok" : "NULL",
        rf && fileno(rf) == fd ? "yes" : "no");
    OBS("fdopen w: %s, fileno is dup: %s", wf ? "ok" : "NULL",
        wf && fileno(wf) == wfd ? "yes" : "no");
    if (!rf || !wf) return 1;
    OBS("fgets: %s", fgets(line, sizeof(line), rf) ? line : "NULL");
    OBS("fprintf: %d", fprintf(wf, "reply to %s", line));
    OBS("fflush: %d", fflush(wf));
    OBS("fclose w: %s", RET(fclose(wf)));
    const char *g = fgets(line, sizeof(line), rf);
    OBS("fgets after the reply: %s", g ? line : feof(rf) ? "EOF" : "error");
    OBS("fclose r: %s", RET(fclose(rf)));
    int lo = fd < wfd ? fd : wfd, hi = fd < wfd ? wfd : fd;
    char p2[512];
    snprintf(p2, sizeof(p2), "%s.2", path);
    int keep = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600); /* takes the lower number */
    OBS("first open takes the lower freed number: %s", keep == lo ? "yes" : "no");
    reuse(p2, hi);
    close(keep);
    unlink(path);
  }
  return 0;
}
