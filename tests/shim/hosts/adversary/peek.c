/* peek PORT MODE — servers that look at input before taking it (protocol sniffers, PROXY-protocol
 * and HTTP header readers, length-prefixed RPC loops). The kernel's MSG_PEEK and FIONREAD see every
 * byte that has arrived, however the peer split its writes; through the shim they must too.
 * peek_header:    the peer writes the request line and the headers in two writes (two segments /
 *                 two records); the server polls, peeks, and reads only once "\r\n\r\n" is visible.
 * peek_big:       the peer writes 20000 bytes at once; 300 ms later one recv(MSG_PEEK) of 64 KiB
 *                 must show all of them (the kernel has them all).
 * fionread_msg:   a 4-byte length, then (50 ms later) a 96-byte body; the server waits until
 *                 FIONREAD says the whole message (100 bytes) is there, then reads it in one call.
 * fionread_handshake: right after accept the server only asks FIONREAD (every 10 ms) until input
 *                 is there, as a sleep-and-check loop does; the peer's 5 bytes must show up. */
#include "../host.h"

#include <sys/ioctl.h>

static int accept_one(int lfd) {
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  return fd;
}

static void reply_and_close(int fd, const char *msg) {
  OBS("reply: %s", RET(write(fd, msg, strlen(msg))));
  OBS("close: %s", RET(close(fd)));
}

static int peek_header(int fd) {
  char buf[4096];
  int64_t t0 = now_ms();
  ssize_t whole = -1;
  int peeks = 0;
  while (now_ms() - t0 < 2000) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_PEEK);
    peeks++;
    if (n <= 0) {
      OBS("peek: %s", RET(n));
      break;
    }
    buf[n] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (end) {
      whole = end + 4 - buf;
      break;
    }
    usleep(5000);
  }
  if (whole < 0) {
    OBS("peek never showed the whole header within 2 s");
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_PEEK | MSG_DONTWAIT);
    OBS("last peek: %s", RET(n));
    n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    OBS("but a read takes: %s", RET(n));
    return 1;
  }
  OBS("peek showed the whole header: %zd bytes", whole);
  ssize_t r = read(fd, buf, (size_t)whole);
  OBS("read: %s", RET(r));
  reply_and_close(fd, "ok\n");
  return 0;
}

static int peek_big(int fd) {
  static char buf[65536];
  usleep(300000);
  ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK);
  OBS("peek of 64 KiB after 300 ms: %s", n == 20000 ? "all 20000 bytes" : RET(n));
  digest d;
  digest_init(&d);
  size_t got = 0;
  while (got < 20000) {
    ssize_t r = read(fd, buf, 20000 - got);
    if (r <= 0) break;
    digest_add(&d, buf, (size_t)r);
    got += (size_t)r;
  }
  OBS("read %zu bytes, digest %016llx", got, (unsigned long long)d.h);
  reply_and_close(fd, "ok\n");
  return 0;
}

static int fionread_msg(int fd) {
  char buf[256];
  int64_t t0 = now_ms();
  int avail = -1;
  while (now_ms() - t0 < 2000) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    if (ioctl(fd, FIONREAD, &avail)) die("FIONREAD");
    if (avail >= 100) break;
    usleep(5000);
  }
  if (avail < 100) {
    OBS("FIONREAD stayed at %d for 2 s (the message is 100 bytes)", avail);
    ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    OBS("a read takes %s", RET(r));
    return 1;
  }
  OBS("FIONREAD: %d", avail);
  ssize_t r = read(fd, buf, 100);
  OBS("read of the message: %s, length field %u", RET(r), (unsigned)(unsigned char)buf[3]);
  reply_and_close(fd, "ok\n");
  return 0;
}

static int fionread_handshake(int fd) {
  char buf[64];
  int64_t t0 = now_ms();
  int avail = 0;
  while (now_ms() - t0 < 2000) {
    if (ioctl(fd, FIONREAD, &avail)) die("FIONREAD");
    if (avail > 0) break;
    usleep(10000);
  }
  if (avail <= 0) {
    OBS("FIONREAD stayed 0 for 2 s");
    return 1;
  }
  obs_elapsed("FIONREAD > 0", now_ms() - t0, 0, 1500);
  OBS("FIONREAD: %d", avail);
  ssize_t r = read(fd, buf, sizeof(buf));
  OBS("read: %s %.*s", RET(r), (int)(r > 0 ? r : 0), buf);
  reply_and_close(fd, "ok\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: peek PORT MODE");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept_one(lfd);
  const char *m = argv[2];
  if (!strcmp(m, "peek_header")) return peek_header(fd);
  if (!strcmp(m, "peek_big")) return peek_big(fd);
  if (!strcmp(m, "fionread_msg")) return fionread_msg(fd);
  if (!strcmp(m, "fionread_handshake")) return fionread_handshake(fd);
  die("unknown mode %s", m);
}
