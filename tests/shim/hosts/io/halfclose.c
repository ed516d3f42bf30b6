/* halfclose ROLE — half-close in both directions.
 * server: the peer sends a request and half-closes (FIN / close_notify); the server reads to EOF,
 *         then writes its reply (after the peer's close_notify, TLS 1.3 keeps our direction open)
 *         and closes.
 * client: writes the request, shutdown(SHUT_WR), then reads the server's reply to EOF (what
 *         `socat` does); the reply must not be lost. */
#include "../host.h"

int main(int argc, char **argv) {
  int port = atoi(argv[1]);
  char buf[65536];
  int err;
  if (!strcmp(argv[2], "server")) {
    int lfd = listen_on(port);
    ready();
    int fd = accept(lfd, NULL, NULL);
    size_t n = read_all(fd, buf, sizeof(buf), &err);
    OBS("read to EOF: %zu bytes, %s", n, errname(err));
    OBS("read after EOF: %s", RET(read(fd, buf, 16)));
    char reply[64];
    int m = snprintf(reply, sizeof(reply), "got %zu bytes\n", n);
    OBS("write after the peer's EOF: %s", RET(write(fd, reply, (size_t)m)));
    OBS("close: %s", RET(close(fd)));
    return 0;
  }
  int fd = connect_to("127.0.0.1", port);
  const char req[] = "request, then half-close\n";
  OBS("write: %s", RET(write(fd, req, sizeof(req) - 1)));
  OBS("shutdown(SHUT_WR): %s", RET(shutdown(fd, SHUT_WR)));
  OBS("write after shutdown: %s", RET(send(fd, "x", 1, MSG_NOSIGNAL)));
  size_t n = read_all(fd, buf, sizeof(buf), &err);
  OBS("reply: %zu bytes, %s: %.*s", n, errname(err), (int)n, buf);
  OBS("close: %s", RET(close(fd)));
  return 0;
}
