/* splice_sendfile PORT MODE — zero-copy calls on a connection (item 9 of issue 9), as proxies
 * (haproxy, nginx's splice), file servers (sendfile) and pipe-based relays use them. Every fd is
 * non-blocking (but the connection in splice_in_blocking) and every EAGAIN is waited out with
 * poll, so what must match is the total and the digest of what arrived, never per-call counts.
 * splice_in:  the peer sends 40 000 bytes; splice(conn -> pipe) into a 4 KiB non-blocking pipe,
 *             draining the pipe between calls: all 40 000 bytes must come through (the landed shim
 *             dropped what did not fit in the pipe).
 * splice_in_blocking: the same on a *blocking* connection (SPLICE_F_NONBLOCK concerns the pipe
 *             only: the kernel waits for the socket's data), the peer sending 300 ms late.
 * splice_out: 6 MiB written into a 4 KiB pipe and splice(pipe -> conn) to a peer that starts
 *             reading late (a small SO_SNDBUF: the connection fills, EAGAIN, poll(POLLOUT)).
 * sendfile:   a 300 000-byte file sent with sendfile(conn, file, &off, ...) then again with a NULL
 *             offset (the file position moves); offsets advance exactly by what each call
 *             returns; a small SO_SNDBUF and a late reader make the calls partial. */
#include "io.h"

#include <sys/sendfile.h>
#include <sys/stat.h>

static int small_pipe(int p[2]) {
  if (pipe2(p, O_NONBLOCK)) die("pipe2");
  return fcntl(p[1], F_SETPIPE_SZ, 4096);
}

/* drain reads everything in the pipe into the digest; returns bytes read. */
static size_t drain(int rfd, digest *d) {
  char buf[65536];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(rfd, buf, sizeof(buf));
    if (r <= 0) return n;
    digest_add(d, buf, (size_t)r);
    n += (size_t)r;
  }
}

static void splice_in(int fd, int blocking) {
  int p[2];
  OBS("pipe size: %d", small_pipe(p));
  digest d;
  digest_init(&d);
  size_t spliced = 0, got = 0;
  const size_t want = 40000;
  int first = 1;
  while (got < want) {
    int64_t t0 = now_ms();
    ssize_t r = splice(fd, NULL, p[1], NULL, want - spliced, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (first && blocking) {
      int e = errno;
      OBS("first splice, before the peer's data: %s", r > 0 ? "> 0" : ret(r, e));
      obs_elapsed("  it returned", now_ms() - t0, 150, 3000);
      errno = e;
    }
    first = 0;
    if (r > 0) {
      spliced += (size_t)r;
      got += drain(p[0], &d);
      continue;
    }
    if (r == 0) {
      OBS("splice: EOF after %zu bytes", got);
      break;
    }
    if (errno != EAGAIN) {
      OBS("splice: %s after %zu bytes", RET(r), got);
      break;
    }
    got += drain(p[0], &d);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 5000) <= 0) {
      OBS("poll: nothing for 5 s after %zu bytes", got);
      break;
    }
  }
  got += drain(p[0], &d);
  unsigned char *exp = malloc(want);
  fill_pattern(exp, want, 40, 0);
  digest e;
  digest_init(&e);
  digest_add(&e, exp, want);
  free(exp);
  OBS("through the pipe: %zu bytes (spliced %zu), digest %016llx, as sent: %s", got, spliced,
      (unsigned long long)d.h, d.h == e.h && got == want ? "yes" : "no");
  set_nonblock(fd, 0);
  char reply[64];
  int m = snprintf(reply, sizeof(reply), "got %zu\n", got);
  OBS("reply: %s", RET(write(fd, reply, (size_t)m)));
}

static void splice_out(int fd) {
  int p[2];
  OBS("pipe size: %d", small_pipe(p));
  const size_t total = 6 * (size_t)MiB;
  unsigned char *pat = big_pattern(41, MiB);
  size_t produced = 0, sent = 0;
  int eagain = 0;
  while (sent < total) {
    while (produced < total) {
      size_t off = produced % MiB, n = MiB - off;
      if (n > total - produced) n = total - produced;
      ssize_t w = write(p[1], pat + off, n);
      if (w <= 0) break;
      produced += (size_t)w;
    }
    ssize_t r = splice(p[0], NULL, fd, NULL, produced - sent, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (r > 0) {
      sent += (size_t)r;
      continue;
    }
    if (r < 0 && errno == EAGAIN) {
      eagain = 1;
      struct pollfd pf = {.fd = fd, .events = POLLOUT};
      if (poll(&pf, 1, 5000) <= 0) {
        OBS("poll(POLLOUT): nothing for 5 s after %zu bytes", sent);
        break;
      }
      continue;
    }
    OBS("splice: %s after %zu bytes", RET(r), sent);
    break;
  }
  OBS("spliced %zu bytes, the connection filled on the way: %s", sent, eagain ? "yes" : "no");
  free(pat);
}

/* send_file sends all of `file` with sendfile(), with an offset pointer or (off == NULL) the file
 * position; checks that offsets move exactly by each call's count. */
static void send_file(int fd, int file, size_t size, off_t *offp) {
  const char *how = offp ? "&off" : "NULL";
  size_t done = 0;
  int exact = 1;
  off_t start_pos = lseek(file, 0, SEEK_CUR);
  while (done < size) {
    off_t before = offp ? *offp : lseek(file, 0, SEEK_CUR);
    ssize_t r = sendfile(fd, file, offp, size - done);
    off_t after = offp ? *offp : lseek(file, 0, SEEK_CUR);
    if (r > 0) {
      if (after != before + r) exact = 0;
      done += (size_t)r;
      continue;
    }
    if (after != before) exact = 0;
    if (r < 0 && errno == EAGAIN) { /* or partial counts: either is the kernel's, not observed */
      struct pollfd pf = {.fd = fd, .events = POLLOUT};
      if (poll(&pf, 1, 5000) <= 0) {
        OBS("sendfile(%s): no POLLOUT for 5 s after %zu bytes", how, done);
        break;
      }
      continue;
    }
    OBS("sendfile(%s): %s after %zu bytes", how, RET(r), done);
    break;
  }
  OBS("sendfile(%s): %zu bytes, offsets advanced exactly: %s", how, done, exact ? "yes" : "no");
  if (offp)
    OBS("file position unchanged: %s", lseek(file, 0, SEEK_CUR) == start_pos ? "yes" : "no");
  else
    OBS("file position at the end: %s", lseek(file, 0, SEEK_CUR) == (off_t)size ? "yes" : "no");
}

static void send_files(int fd) {
  const size_t size = 300000;
  char path[] = "/tmp/sli-io-sendfile-XXXXXX";
  int file = mkstemp(path);
  if (file < 0) die("mkstemp");
  unlink(path);
  unsigned char *buf = malloc(size);
  fill_pattern(buf, size, 42, 0);
  if (write_all(file, buf, size)) die("write file");
  free(buf);
  lseek(file, 0, SEEK_SET);
  off_t off = 0;
  send_file(fd, file, size, &off);
  send_file(fd, file, size, NULL);
  close(file);
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: splice_sendfile PORT splice_in|splice_in_blocking|splice_out|sendfile");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept_one(lfd);
  if (strncmp(argv[2], "splice_in", 9)) {
    int sz = 16384; /* the kernel doubles it: a few records, so the calls go partial */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  }
  set_nonblock(fd, strcmp(argv[2], "splice_in_blocking") != 0);
  if (!strcmp(argv[2], "splice_in")) splice_in(fd, 0);
  else if (!strcmp(argv[2], "splice_in_blocking")) splice_in(fd, 1);
  else if (!strcmp(argv[2], "splice_out")) splice_out(fd);
  else send_files(fd);
  set_nonblock(fd, 0);
  OBS("close: %s", RET(close(fd)));
  return 0;
}
