/* oddflags PORT MODE — flags and options of the socket calls that real programs use on TCP and that
 * are not about plain data: the error queue (MSG_ZEROCOPY completions, timestamps), MSG_TRUNC
 * (discard without copying, tcp(7)), MSG_OOB, SO_RCVLOWAT. The kernel's answers are the oracle.
 * errqueue:  with the peer's 5 bytes waiting, recvmsg(MSG_ERRQUEUE|MSG_DONTWAIT) and a plain
 *            recvmsg(MSG_ERRQUEUE) find an empty error queue (-1 EAGAIN, at once, never waiting);
 *            the data is still there for the next read.
 * trunc:     recv(MSG_TRUNC) discards: the buffer is not written, the bytes are gone from the
 *            stream; recv(NULL, n, MSG_TRUNC) skips n bytes (a "skip the body" helper).
 * oob_recv:  recv(MSG_OOB) with no urgent data is -1 EINVAL; the in-band bytes stay.
 * oob_send:  the server sends "abc", one urgent byte "!", "def": the peer's in-band stream.
 * rcvlowat:  SO_RCVLOWAT 10: poll is readable, and a blocking read returns, only once 10 bytes are
 *            there (the peer sends 5, then 5 more 300 ms later).
 * zerocopy:  SO_ZEROCOPY and four send(MSG_ZEROCOPY): the completions (POLLERR, then recvmsg of
 *            the error queue: SO_EE_ORIGIN_ZEROCOPY, sends 0..3) come within a second, as the kernel
 *            gives them (on loopback it copies, and says so: SO_EE_CODE_ZEROCOPY_COPIED). */
#include "../host.h"

#include <linux/errqueue.h>
#include <sys/time.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

static void wait_input(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  OBS("poll for input: %s", RET(poll(&p, 1, 3000)));
  usleep(100000); /* everything the peer sent is in */
}

static void set_rcvtimeo(int fd, int ms) {
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void finish(int fd) {
  OBS("reply: %s", RET(write(fd, "ok\n", 3)));
  OBS("close: %s", RET(close(fd)));
}

static int errqueue(int fd) {
  char buf[64], ctl[256];
  wait_input(fd);
  struct iovec v = {buf, sizeof(buf)};
  struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl,
                     .msg_controllen = sizeof(ctl)};
  OBS("recvmsg(MSG_ERRQUEUE|MSG_DONTWAIT): %s", RET(recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT)));
  set_rcvtimeo(fd, 1000); /* bounds a wait the kernel would not do */
  m.msg_controllen = sizeof(ctl);
  int64_t t0 = now_ms();
  OBS("recvmsg(MSG_ERRQUEUE): %s", RET(recvmsg(fd, &m, MSG_ERRQUEUE)));
  obs_elapsed("that call", now_ms() - t0, 0, 300);
  ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  OBS("then a read: %s %.*s", RET(r), (int)(r > 0 ? r : 0), buf);
  finish(fd);
  return 0;
}

static int trunc_(int fd) {
  char buf[16];
  wait_input(fd);
  memset(buf, 'X', sizeof(buf));
  ssize_t r = recv(fd, buf, 3, MSG_TRUNC);
  OBS("recv(3, MSG_TRUNC): %s, buffer %.3s", RET(r), buf);
  r = recv(fd, buf, 16, MSG_DONTWAIT);
  OBS("then read: %s %.*s", RET(r), (int)(r > 0 ? r : 0), buf);
  OBS("peer, send more");
  OBS("(write) %s", RET(write(fd, "more\n", 5)));
  wait_input(fd);
  r = recv(fd, NULL, 4, MSG_TRUNC);
  OBS("recv(NULL, 4, MSG_TRUNC): %s", RET(r));
  r = recv(fd, buf, 16, MSG_DONTWAIT);
  OBS("then read: %s %.*s", RET(r), (int)(r > 0 ? r : 0), buf);
  finish(fd);
  return 0;
}

static int oob_recv(int fd) {
  char buf[16];
  wait_input(fd);
  ssize_t r = recv(fd, buf, sizeof(buf), MSG_OOB);
  OBS("recv(MSG_OOB) with no urgent data: %s", RET(r));
  r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  OBS("then read: %s %.*s", RET(r), (int)(r > 0 ? r : 0), buf);
  finish(fd);
  return 0;
}

static int oob_send(int fd) {
  char buf[16];
  OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
  OBS("send abc: %s", RET(send(fd, "abc", 3, 0)));
  OBS("send ! (MSG_OOB): %s", RET(send(fd, "!", 1, MSG_OOB)));
  OBS("send def: %s", RET(send(fd, "def", 3, 0)));
  usleep(100000);
  OBS("close: %s", RET(close(fd)));
  return 0;
}

static int rcvlowat(int fd) {
  char buf[64];
  int lowat = 10;
  OBS("SO_RCVLOWAT 10: %s", RET(setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat))));
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int64_t t0 = now_ms();
  OBS("poll: %s", RET(poll(&p, 1, 3000)));
  obs_elapsed("readable after", now_ms() - t0, 200, 1500);
  OBS("read: %s", RET(read(fd, buf, sizeof(buf))));
  finish(fd);
  return 0;
}

static int zerocopy(int fd) {
  static char chunk[8192];
  char buf[16];
  OBS("read: %s", RET(read(fd, buf, 3)));
  int one = 1;
  OBS("SO_ZEROCOPY: %s", RET(setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one))));
  memset(chunk, 'z', sizeof(chunk));
  for (int i = 0; i < 4; i++)
    OBS("send %d (MSG_ZEROCOPY): %s", i, RET(send(fd, chunk, sizeof(chunk), MSG_ZEROCOPY)));
  unsigned done = 0; /* completions, as a bit per send */
  int64_t t0 = now_ms();
  while (done != 0xf && now_ms() - t0 < 1000) {
    struct pollfd p = {.fd = fd, .events = 0};
    if (poll(&p, 1, 100) <= 0 || !(p.revents & POLLERR)) continue;
    char ctl[256];
    struct msghdr m = {.msg_control = ctl, .msg_controllen = sizeof(ctl)};
    if (recvmsg(fd, &m, MSG_ERRQUEUE) < 0) continue;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      struct sock_extended_err *ee = (struct sock_extended_err *)CMSG_DATA(c);
      if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
      for (uint32_t i = ee->ee_info; i <= ee->ee_data && i < 32; i++) done |= 1u << i;
    }
  }
  OBS("zerocopy completions: %s", done == 0xf ? "sends 0..3" : done ? "some" : "none in 1 s");
  set_rcvtimeo(fd, 2000);
  ssize_t r = read(fd, buf, 4);
  OBS("read: %s %.*s", RET(r), (int)(r > 1 ? r - 1 : 0), buf);
  finish(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: oddflags PORT MODE");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  const char *m = argv[2];
  if (!strcmp(m, "errqueue")) return errqueue(fd);
  if (!strcmp(m, "trunc")) return trunc_(fd);
  if (!strcmp(m, "oob_recv")) return oob_recv(fd);
  if (!strcmp(m, "oob_send")) return oob_send(fd);
  if (!strcmp(m, "rcvlowat")) return rcvlowat(fd);
  if (!strcmp(m, "zerocopy")) return zerocopy(fd);
  die("unknown mode %s", m);
}
