/* nonblock PORT ROLE — a non-blocking fd never blocks (event loops: nginx, libuv, asyncio), even
 * while the TLS handshake is still going on: read() with nothing to read returns -1 EAGAIN at
 * once, and a write before the handshake completes is accepted as a kernel accepts it (and sent
 * once the session is up). Every call is timed; none may take more than 50 ms (reads) / 100 ms.
 * server: the peer connects and sends its ClientHello in two pieces 300 ms apart, the server says
 *         "banner" first (a server-speaks-first protocol: SMTP, FTP, redis replicas).
 * client: connects (blocking), goes non-blocking and writes its request at once; the peer
 *         answers the handshake only after 300 ms. */
#include "io.h"

static int64_t worst;

#define TIMED(expr) ({ int64_t t0_ = now_ms(); long r_ = (long)(expr); int e_ = errno; \
                       int64_t d_ = now_ms() - t0_; if (d_ > worst) worst = d_; errno = e_; r_; })

/* wait_line polls and reads until a whole line arrived (or the end, or 5 s). */
static void wait_line(int fd, const char *what) {
  char buf[256];
  size_t got = 0;
  int64_t end = now_ms() + 5000;
  while (got < sizeof(buf) - 1 && now_ms() < end) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, 200);
    ssize_t r = TIMED(read(fd, buf + got, sizeof(buf) - 1 - got));
    if (r > 0) {
      got += (size_t)r;
      if (buf[got - 1] == '\n') break;
      continue;
    }
    if (r < 0 && errno == EAGAIN) continue;
    OBS("read: %s", RET(r));
    break;
  }
  OBS("%s: %.*s", what, chomp(buf, (ssize_t)got), buf);
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: nonblock PORT server|client");
  char buf[256];
  int fd;
  if (!strcmp(argv[2], "server")) {
    int lfd = listen_on(atoi(argv[1]));
    ready();
    fd = accept_one(lfd);
    set_nonblock(fd, 1);
    int64_t t0 = now_ms();
    OBS("read before the handshake: %s", RET(TIMED(read(fd, buf, sizeof(buf)))));
    obs_elapsed("  it returned", now_ms() - t0, 0, 50);
    t0 = now_ms();
    OBS("write before the handshake: %s", RET(TIMED(write(fd, "banner\n", 7))));
    obs_elapsed("  it returned", now_ms() - t0, 0, 100);
    usleep(150 * 1000); /* the first half of the ClientHello is here by now */
    t0 = now_ms();
    OBS("read with part of a ClientHello: %s", RET(TIMED(read(fd, buf, sizeof(buf)))));
    obs_elapsed("  it returned", now_ms() - t0, 0, 50);
    wait_line(fd, "request");
    OBS("reply: %s", RET(TIMED(write(fd, "reply\n", 6))));
  } else {
    fd = connect_to("127.0.0.1", atoi(argv[1]));
    set_nonblock(fd, 1);
    int64_t t0 = now_ms();
    OBS("write before the handshake: %s", RET(TIMED(write(fd, "hello\n", 6))));
    obs_elapsed("  it returned", now_ms() - t0, 0, 100);
    t0 = now_ms();
    OBS("read before the handshake: %s", RET(TIMED(read(fd, buf, sizeof(buf)))));
    obs_elapsed("  it returned", now_ms() - t0, 0, 50);
    wait_line(fd, "reply");
  }
  if (worst <= 100) OBS("every read/write call returned within 100 ms");
  else OBS("a read/write call took %lld ms", (long long)worst);
  set_nonblock(fd, 0);
  OBS("close: %s", RET(close(fd)));
  return 0;
}
