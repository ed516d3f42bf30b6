/* nb_connect_slow — a non-blocking connect that takes a while (a far or busy server; here the
 * peer script fills the accept queue so the SYN is retransmitted after 1 s). While the kernel is
 * still connecting: write and read give EAGAIN (nothing is taken before the connection exists),
 * SO_ERROR is 0, getpeername gives ENOTCONN, connect again gives EALREADY, poll(POLLOUT) times out;
 * then POLLOUT, connect gives 0 (done) then EISCONN, and the exchange.
 * usage: host_nb_connect_slow PORT SYNC_FILE */
#include "client.h"

int main(int argc, char **argv) {
  if (argc < 3) die("usage");
  struct sockaddr_in a = loopback4("127.0.0.1", atoi(argv[1]));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  for (int i = 0; access(argv[2], F_OK) != 0; i++) {
    if (i == 500) die("no %s after 5 s", argv[2]);
    usleep(10 * 1000);
  }
  unlink(argv[2]);
  int64_t t0 = now_ms();
  OBS("connect: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  OBS("write while connecting: %s", RET(write(fd, "GET early\n", 10)));
  char b[16];
  OBS("read while connecting: %s", RET(read(fd, b, sizeof(b))));
  OBS("SO_ERROR while connecting: %s", errname(so_error(fd)));
  struct sockaddr_in peer;
  socklen_t pl = sizeof(peer);
  OBS("getpeername while connecting: %s", RET(getpeername(fd, (struct sockaddr *)&peer, &pl)));
  OBS("connect again: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
  OBS("poll 100 ms: %s", RET(poll(&p, 1, 100)));
  OBS("revents: %s", revents_str(p.revents));
  p.events = POLLOUT;
  OBS("poll: %s", RET(poll(&p, 1, 5000)));
  OBS("revents: %s", revents_str(p.revents));
  obs_elapsed("connected", now_ms() - t0, 400, 4000);
  OBS("connect once connected: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  OBS("connect once more: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  OBS("getpeername: %s", RET(getpeername(fd, (struct sockaddr *)&peer, &pl)));
  set_nonblock(fd, 0);
  exchange(fd, "slow");
  return 0;
}
