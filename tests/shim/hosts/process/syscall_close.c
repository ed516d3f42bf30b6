/* syscall_close FILE — fds closed with syscall(SYS_close, fd), the way libuv (node) closes, then
 * their numbers handed out again. The server answers the request on fd A, dup()s it to B (two
 * numbers, one connection), raw-closes A (the connection stays open through B), opens FILE, which
 * holds known text and gets number A, and reads it: it must read the file's text, not data of the
 * connection. Then it raw-closes B — the last fd: a real close, so the peer sees the connection end
 * cleanly (through the shim: close_notify) — and mkstemp() (glibc's internal open, which no
 * interposer sees) gets number B: writing and reading it back must work as on any file. */
#include <sys/syscall.h>

#include "../host.h"

int main(int argc, char **argv) {
  if (argc < 3) die("usage: syscall_close PORT FILE");
  int lfd = listen_on(atoi(argv[1]));
  const char *path = argv[2];
  int tf = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (tf < 0 || write(tf, "the file's own text\n", 20) != 20) die("setup %s", path);
  close(tf);
  ready();
  int a = accept(lfd, NULL, NULL);
  if (a < 0) die("accept");
  char req[256], reply[300];
  read_line(a, req, sizeof(req));
  int n = snprintf(reply, sizeof(reply), "reply to %s", req);
  OBS("write: %s", RET(write(a, reply, (size_t)n)));
  int b = dup(a);
  OBS("raw close of the first fd: %s", RET(syscall(SYS_close, a)));
  int f = open(path, O_RDONLY);
  OBS("open gets the first fd's number: %s", f == a ? "yes" : "no");
  char buf[64] = {0};
  const char *r = RET(read(f, buf, sizeof(buf) - 1));
  buf[strcspn(buf, "\n")] = 0;
  OBS("file read: %s '%s'", r, buf);
  OBS("write on the dup: %s", RET(write(b, "still here\n", 11)));
  OBS("raw close of the last fd: %s", RET(syscall(SYS_close, b)));
  char tmpl[600];
  snprintf(tmpl, sizeof(tmpl), "%s.XXXXXX", path);
  int t = mkstemp(tmpl);
  OBS("mkstemp gets the dup's number: %s", t == b ? "yes" : "no");
  OBS("temp write: %s", RET(write(t, "temp text", 9)));
  OBS("temp lseek: %s", RET(lseek(t, 0, SEEK_SET)));
  memset(buf, 0, sizeof(buf));
  OBS("temp read: %s '%s'", RET(read(t, buf, sizeof(buf) - 1)), buf);
  OBS("close file: %s", RET(close(f)));
  OBS("close temp: %s", RET(close(t)));
  unlink(tmpl);
  unlink(path);
  return 0;
}
