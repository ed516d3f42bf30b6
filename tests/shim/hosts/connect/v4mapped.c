/* v4mapped — a dual-stack client: one AF_INET6 socket for every address, IPv4 peers reached as
 * IPv4-mapped addresses (::ffff:a.b.c.d), as Java, Go's net (with an AF_INET6 socket) and many
 * daemons configured with "::ffff:..." do. The target is configured as 127.0.0.1:PORT; the shim
 * must see the mapped address as the same target (the landed shim compared families and let the
 * request out in plaintext: the wire oracle fails it). Modes: "block" (a blocking connect) and
 * "nonblock" (EINPROGRESS, poll POLLOUT, SO_ERROR, then the exchange).
 * usage: host_v4mapped PORT block|nonblock */
#include "client.h"

int main(int argc, char **argv) {
  if (argc < 3) die("usage");
  int port = atoi(argv[1]);
  int nb = strcmp(argv[2], "nonblock") == 0;
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &a.sin6_addr);
  if (nb) set_nonblock(fd, 1);
  OBS("connect ::ffff:127.0.0.1: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  if (nb) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    OBS("poll: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
    OBS("SO_ERROR: %s", errname(so_error(fd)));
    set_nonblock(fd, 0);
  }
  struct sockaddr_in6 peer;
  socklen_t pl = sizeof(peer);
  char ip[64] = "?";
  if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0)
    inet_ntop(AF_INET6, &peer.sin6_addr, ip, sizeof(ip));
  OBS("peer: %s family %s", ip, peer.sin6_family == AF_INET6 ? "AF_INET6" : "other");
  exchange(fd, argv[2]);
  return 0;
}
