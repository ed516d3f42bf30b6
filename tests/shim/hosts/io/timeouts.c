/* timeouts PORT MODE — SO_RCVTIMEO / SO_SNDTIMEO (item 13 of issue 9), as servers that bound
 * every wait with socket options instead of poll (many thread-per-connection daemons, Python's
 * socket.settimeout on a blocking fd does the same with poll, Java's SO_TIMEOUT with poll too).
 * rcvtimeo:           SO_RCVTIMEO 300 ms and a silent peer: read() returns -1 EAGAIN in time, and
 *                     a later read gets the peer's data; recv(MSG_WAITALL) that times out returns
 *                     the bytes that came.
 * rcvtimeo_handshake: the peer connects and sends nothing (its ClientHello only after 1 s): the
 *                     read that would run the handshake still times out per SO_RCVTIMEO; then,
 *                     with a long timeout, it gets the peer's data.
 * banner_first:       a blocking server that speaks first (SMTP, FTP) with both timeouts set to
 *                     300 ms, and a client whose ClientHello comes only after 1 s: the kernel takes
 *                     the banner at once (the socket buffer is empty), whatever the peer does.
 * sndtimeo:           SO_SNDTIMEO 300 ms and a peer that does not read: a blocking write of 64 MiB
 *                     (more than the kernel's buffers on both hops of the recorder can hold)
 *                     returns a partial count (or -1 EAGAIN) in time; a trailer then tells the
 *                     peer how many bytes that write accepted; the peer checks exactly those
 *                     arrived. */
#include "io.h"

static void read_timeout(int fd, const char *what) {
  char buf[256];
  set_timeo(fd, SO_RCVTIMEO, 300);
  int64_t t0 = now_ms();
  OBS("%s: %s", what, RET(read(fd, buf, sizeof(buf))));
  obs_elapsed("  it returned", now_ms() - t0, 200, 1500);
}

static void read_data(int fd) {
  char buf[256];
  set_timeo(fd, SO_RCVTIMEO, 5000);
  ssize_t r = read(fd, buf, sizeof(buf));
  OBS("read with a 5 s timeout: %s: %.*s", RET(r), chomp(buf, r), buf);
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: timeouts PORT rcvtimeo|rcvtimeo_handshake|banner_first|sndtimeo");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept_one(lfd);
  if (!strcmp(argv[2], "rcvtimeo")) {
    read_timeout(fd, "read, silent peer, SO_RCVTIMEO 300 ms");
    OBS("write: %s", RET(write(fd, "timed out\n", 10)));
    read_data(fd);
    /* MSG_WAITALL with a timeout: what came before it */
    OBS("write: %s", RET(write(fd, "more\n", 5)));
    char buf[256];
    set_timeo(fd, SO_RCVTIMEO, 300);
    int64_t t0 = now_ms();
    ssize_t r = recv(fd, buf, sizeof(buf), MSG_WAITALL);
    OBS("recv(256, MSG_WAITALL), 3 bytes come, SO_RCVTIMEO 300 ms: %s: %.*s", RET(r),
        chomp(buf, r), buf);
    obs_elapsed("  it returned", now_ms() - t0, 200, 1500);
  } else if (!strcmp(argv[2], "banner_first")) {
    set_timeo(fd, SO_RCVTIMEO, 300);
    set_timeo(fd, SO_SNDTIMEO, 300);
    int64_t t0 = now_ms();
    OBS("blocking write of the banner, peer silent: %s", RET(write(fd, "220 banner\n", 11)));
    obs_elapsed("  it returned", now_ms() - t0, 0, 100);
    read_data(fd);
    OBS("write: %s", RET(write(fd, "bye\n", 4)));
  } else if (!strcmp(argv[2], "rcvtimeo_handshake")) {
    read_timeout(fd, "read, peer silent since connecting, SO_RCVTIMEO 300 ms");
    read_data(fd);
    OBS("write: %s", RET(write(fd, "bye\n", 4)));
  } else {
    char line[64];
    read_line(fd, line, sizeof(line));
    OBS("request: %.*s", chomp(line, (ssize_t)strlen(line)), line);
    const size_t n = 64 * (size_t)MiB;
    unsigned char *p = big_pattern(13, n);
    set_timeo(fd, SO_SNDTIMEO, 300);
    int64_t t0 = now_ms();
    ssize_t r = write(fd, p, n);
    int e = errno;
    OBS("write(64 MiB), peer not reading, SO_SNDTIMEO 300 ms: %s", count_class(r, e, n));
    obs_elapsed("  it returned", now_ms() - t0, 200, 1500);
    set_timeo(fd, SO_SNDTIMEO, 0);
    char trailer[64];
    int m = snprintf(trailer, sizeof(trailer), "\nEND %zd\n", r > 0 ? r : 0);
    OBS("trailer: %s", write_all(fd, trailer, (size_t)m) ? "failed" : "written");
    free(p);
  }
  OBS("close: %s", RET(close(fd)));
  return 0;
}
