/* othercalls PORT MODE — the data and readiness calls a host may use instead of read/write/epoll_wait,
 * each of which would put plaintext on the wire (or read ciphertext) if the shim missed it:
 *
 *   mmsg    server: recvmmsg() of three 5-byte messages with MSG_WAITFORONE, then sendmmsg() of three
 *           messages, recvmmsg() with a timeout, and recvmmsg() at the peer's end (a batching
 *           server, e.g. a DNS or log daemon written for UDP and reused on TCP)
 *   v2      server: preadv2()/pwritev2() with offset -1 (readv/writev with flags: RWF_NOWAIT on an
 *           empty socket is EAGAIN), with an offset (ESPIPE), with a flag a socket refuses
 *   pwait2  server: epoll_pwait2() (a timespec timeout) reading 7 bytes per wakeup, level-triggered:
 *           plaintext left inside TLS must be reported; then a 50 ms wait with nothing
 *   fastopen_mmsg  client: sendmmsg(MSG_FASTOPEN) with the target's address on an unconnected socket
 *           (an implicit connect), then a read of the answer
 *
 * Everything observed goes through OBS(); the kernel's answers in the plain run are the oracle. */
#include "io.h"

#include <sys/epoll.h>
#include <sys/uio.h>

static int accept_conn(int lfd) {
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  return fd;
}

static void mmsg(int fd) {
  char a[3][5];
  struct iovec iv[3];
  struct mmsghdr m[3];
  memset(m, 0, sizeof(m));
  for (int i = 0; i < 3; i++) {
    iv[i] = (struct iovec){a[i], 5};
    m[i].msg_hdr.msg_iov = &iv[i];
    m[i].msg_hdr.msg_iovlen = 1;
  }
  int r = recvmmsg(fd, m, 3, MSG_WAITFORONE, NULL);
  OBS("recvmmsg(3 x 5, MSG_WAITFORONE): %s", RET(r));
  for (int i = 0; i < r; i++) OBS("  message %d: %u bytes %.*s", i, m[i].msg_len, (int)m[i].msg_len, a[i]);

  const char *out[3] = {"one,", "two,", "three\n"};
  struct iovec ov[3];
  struct mmsghdr s[3];
  memset(s, 0, sizeof(s));
  for (int i = 0; i < 3; i++) {
    ov[i] = (struct iovec){(void *)out[i], strlen(out[i])};
    s[i].msg_hdr.msg_iov = &ov[i];
    s[i].msg_hdr.msg_iovlen = 1;
  }
  r = sendmmsg(fd, s, 3, 0);
  OBS("sendmmsg(3): %s, lengths %u %u %u", RET(r), s[0].msg_len, s[1].msg_len, s[2].msg_len);

  /* the peer sends 10 bytes, then 5 more 300 ms later: the timeout (2 s) is looked at only between
   * messages, so the third message waits for those 5 */
  memset(m, 0, sizeof(m));
  for (int i = 0; i < 3; i++) {
    m[i].msg_hdr.msg_iov = &iv[i];
    m[i].msg_hdr.msg_iovlen = 1;
  }
  struct timespec to = {2, 0};
  r = recvmmsg(fd, m, 3, 0, &to);
  OBS("recvmmsg(3 x 5, timeout 2 s): %s", RET(r));
  for (int i = 0; i < r; i++) OBS("  message %d: %u bytes %.*s", i, m[i].msg_len, (int)m[i].msg_len, a[i]);
  OBS("  time left: %s", to.tv_sec >= 0 && to.tv_sec < 2 ? "less than 2 s" : "wrong");
  struct timespec bad = {0, 2000000000L};
  OBS("recvmmsg(bad timeout): %s", RET(recvmmsg(fd, m, 1, 0, &bad)));

  if (write_all(fd, "end?\n", 5)) die("write");
  r = recvmmsg(fd, m, 3, 0, NULL); /* the peer has ended: every message reads 0 */
  OBS("recvmmsg at the end: %s, lengths %u %u %u", RET(r), m[0].msg_len, m[1].msg_len, m[2].msg_len);
  OBS("close: %s", RET(close(fd)));
}

static void v2(int fd) {
  char buf[64];
  struct iovec iv = {buf, sizeof(buf)};
  OBS("preadv2(-1, RWF_NOWAIT) with nothing come: %s", RET(preadv2(fd, &iv, 1, -1, RWF_NOWAIT)));
  OBS("preadv2(offset 0): %s", RET(preadv2(fd, &iv, 1, 0, 0)));
  OBS("preadv2(-1, flag 0x40): %s", RET(preadv2(fd, &iv, 1, -1, 0x40)));
  if (write_all(fd, "go\n", 3)) die("write");
  obs_poll("poll(POLLIN)", fd, POLLIN, 5000);
  ssize_t r = preadv2(fd, &iv, 1, -1, 0);
  OBS("preadv2(-1): %s %.*s", RET(r), r > 0 ? (int)r : 0, buf);
  char h[] = "head,", t[] = "tail\n";
  struct iovec ov[2] = {{h, 5}, {t, 5}};
  OBS("pwritev2(-1, 2 iovecs): %s", RET(pwritev2(fd, ov, 2, -1, 0)));
  OBS("pwritev2(-1, RWF_NOWAIT): %s", RET(pwritev2(fd, ov, 1, -1, RWF_NOWAIT)));
  OBS("pwritev2(offset 5): %s", RET(pwritev2(fd, ov, 1, 5, 0)));
  OBS("pwritev2(-1, flag 0x40): %s", RET(pwritev2(fd, ov, 1, -1, 0x40)));
  OBS("shutdown(SHUT_WR): %s", RET(shutdown(fd, SHUT_WR)));
  r = preadv2(fd, &iv, 1, -1, 0);
  OBS("preadv2 at the peer's end: %s", RET(r));
  OBS("close: %s", RET(close(fd)));
}

static void pwait2(int fd) {
  set_nonblock(fd, 1);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) die("epoll_ctl");
  char all[64];
  size_t got = 0;
  int wakeups = 0;
  while (got < 35) {
    struct epoll_event out[2];
    struct timespec to = {5, 0};
    int n = epoll_pwait2(ep, out, 2, &to, NULL);
    if (n != 1 || out[0].data.u64 != 7) {
      OBS("epoll_pwait2: %s (data %llu) after %zu bytes", RET(n), n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL, got);
      break;
    }
    wakeups++;
    ssize_t r = read(fd, all + got, 7); /* one read per wakeup: the rest stays buffered */
    if (r <= 0) {
      OBS("read: %s after %zu bytes", RET(r), got);
      break;
    }
    got += (size_t)r;
  }
  OBS("read %zu bytes in %d wakeups: %.*s", got, wakeups, (int)got, all);
  struct epoll_event out[2];
  struct timespec to = {0, 50 * 1000 * 1000};
  int64_t t0 = now_ms();
  OBS("epoll_pwait2(50 ms) with nothing left: %s", RET(epoll_pwait2(ep, out, 2, &to, NULL)));
  obs_elapsed("it waited", now_ms() - t0, 40, 1500);
  struct timespec bad = {-1, 0};
  OBS("epoll_pwait2(bad timeout): %s", RET(epoll_pwait2(ep, out, 2, &bad, NULL)));
  if (write_all(fd, "done\n", 5)) die("write");
  close(ep);
  OBS("close: %s", RET(close(fd)));
}

static void fastopen_mmsg(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  char q1[] = "GET /", q2[] = " now\n";
  struct iovec iv[2] = {{q1, 5}, {q2, 5}};
  struct mmsghdr m[2];
  memset(m, 0, sizeof(m));
  m[0].msg_hdr = (struct msghdr){.msg_name = &a, .msg_namelen = sizeof(a), .msg_iov = &iv[0], .msg_iovlen = 1};
  m[1].msg_hdr = (struct msghdr){.msg_iov = &iv[1], .msg_iovlen = 1};
  int r = sendmmsg(fd, m, 2, MSG_FASTOPEN);
  OBS("sendmmsg(MSG_FASTOPEN, 2 messages): %s, lengths %u %u", RET(r), m[0].msg_len, m[1].msg_len);
  if (r == 1) { /* MSG_FASTOPEN again on the connected socket is EISCONN: sendmmsg counts one */
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    poll(&p, 1, 5000);
    if (write_all(fd, q2, 5)) die("write");
  }
  char buf[64];
  int err;
  size_t n = read_all(fd, buf, sizeof(buf), &err);
  OBS("answer: %.*s, then %s", (int)n, buf, errname(err));
  OBS("close: %s", RET(close(fd)));
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: %s PORT MODE", argv[0]);
  int port = atoi(argv[1]);
  const char *mode = argv[2];
  if (!strcmp(mode, "fastopen_mmsg")) {
    fastopen_mmsg(port);
    return 0;
  }
  int lfd = listen_on(port);
  ready();
  int fd = accept_conn(lfd);
  if (!strcmp(mode, "mmsg")) mmsg(fd);
  else if (!strcmp(mode, "v2")) v2(fd);
  else if (!strcmp(mode, "pwait2")) pwait2(fd);
  else die("unknown mode %s", mode);
  return 0;
}
