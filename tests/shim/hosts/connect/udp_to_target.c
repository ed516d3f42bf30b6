/* udp_to_target — UDP sockets connected to a target's address and port: the "which source address
 * would I use" trick (connect a datagram socket, getsockname, close: Python, Go, glibc's own
 * address sorting), and a statsd/syslog-style client sending datagrams to a connected UDP socket.
 * Only TCP connections can be TLS: a datagram socket to the same address and port must stay a
 * kernel datagram socket (nothing listens on UDP there: the kernel reports ECONNREFUSED from the
 * ICMP port unreachable). Then the host makes its TCP exchange with the target as usual.
 * usage: host_udp_to_target PORT */
#include "client.h"

int main(int argc, char **argv) {
  if (argc < 2) die("usage");
  int port = atoi(argv[1]);
  struct sockaddr_in a = loopback4("127.0.0.1", port);

  int u = socket(AF_INET, SOCK_DGRAM, 0);
  OBS("udp connect: %s", RET(connect(u, (struct sockaddr *)&a, sizeof(a))));
  struct sockaddr_in me;
  socklen_t ml = sizeof(me);
  char ip[32] = "?";
  if (getsockname(u, (struct sockaddr *)&me, &ml) == 0) inet_ntop(AF_INET, &me.sin_addr, ip, 32);
  OBS("udp source address: %s", ip);
  OBS("udp close: %s", RET(close(u)));

  u = socket(AF_INET, SOCK_DGRAM, 0);
  OBS("udp connect: %s", RET(connect(u, (struct sockaddr *)&a, sizeof(a))));
  OBS("udp send: %s", RET(send(u, "metric:1|c", 10, 0)));
  struct pollfd p = {.fd = u, .events = POLLIN};
  OBS("udp poll: %s", RET(poll(&p, 1, 2000)));
  OBS("revents: %s", revents_str(p.revents));
  char b[64];
  OBS("udp recv: %s", RET(recv(u, b, sizeof(b), MSG_DONTWAIT)));
  OBS("udp send again: %s", RET(send(u, "metric:2|c", 10, 0)));
  OBS("udp close: %s", RET(close(u)));

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  OBS("tcp connect: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  exchange(fd, "udp");
  return 0;
}
