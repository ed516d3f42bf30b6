/* waitall PORT — reads that wait for more than one segment, and what is readable before a read:
 * recv(MSG_WAITALL) of 100 000 bytes that the peer sends in small pieces with pauses returns them
 * all in one call; recv(MSG_PEEK) then read() return the same bytes; ioctl(FIONREAD) counts the
 * bytes a read will return (plaintext, not ciphertext); MSG_WAITALL at the peer's end returns
 * what came before it. (A length-prefixed protocol server, e.g. a database's wire protocol.) */
#include "io.h"

#include <sys/ioctl.h>

int main(int argc, char **argv) {
  if (argc < 2) die("usage: %s PORT", argv[0]);
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept_one(lfd);
  static unsigned char buf[200000], want[100000], peek[16384], rd[16384];
  int64_t t0 = now_ms();
  ssize_t r = recv(fd, buf, 100000, MSG_WAITALL);
  OBS("recv(100000, MSG_WAITALL): %s", RET(r));
  obs_elapsed("it waited for the pieces", now_ms() - t0, 100, 5000);
  fill_pattern(want, sizeof(want), 30, 0);
  OBS("bytes as sent: %s", r == 100000 && !memcmp(buf, want, 100000) ? "yes" : "no");

  if (write_all(fd, "next\n", 5)) die("write");
  obs_poll("poll(POLLIN)", fd, POLLIN, 5000);
  usleep(100 * 1000); /* every byte of the peer's one send has arrived by now */
  int avail = -1;
  int ir = ioctl(fd, FIONREAD, &avail);
  OBS("ioctl(FIONREAD): %s, %d bytes", RET(ir), avail);
  ssize_t pk = recv(fd, peek, sizeof(peek), MSG_PEEK);
  OBS("recv(MSG_PEEK): %s", RET(pk));
  ssize_t rr = read(fd, rd, sizeof(rd));
  OBS("read: %s", RET(rr));
  int same = pk > 0 && rr >= pk && !memcmp(peek, rd, (size_t)pk);
  OBS("peeked bytes = the bytes read: %s", same ? "yes" : "no");
  OBS("0 < FIONREAD <= read: %s", avail > 0 && avail <= rr ? "yes" : "no");
  fill_pattern(want, 5000, 31, 0);
  OBS("read bytes as sent: %s", rr == 5000 && !memcmp(rd, want, 5000) ? "yes" : "no");
  ir = ioctl(fd, FIONREAD, &avail);
  OBS("ioctl(FIONREAD) after the read: %s, %d bytes", RET(ir), avail);

  if (write_all(fd, "more\n", 5)) die("write");
  r = recv(fd, buf, 100, MSG_WAITALL);
  OBS("recv(100, MSG_WAITALL) of 10 bytes then the peer's end: %s, %.*s", RET(r),
      r > 0 ? (int)r : 0, buf);
  OBS("recv after: %s", RET(recv(fd, buf, 100, MSG_WAITALL)));
  OBS("write: %s", RET(write(fd, "bye\n", 4)));
  OBS("close: %s", RET(close(fd)));
  return 0;
}
