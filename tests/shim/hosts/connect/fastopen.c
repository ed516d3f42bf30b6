/* fastopen — TCP Fast Open clients (curl --tcp-fastopen, haproxy, DNS-over-TCP resolvers): the
 * connection starts with a send that carries the address, with no connect() — sendto() or
 * sendmsg() with MSG_FASTOPEN — or with TCP_FASTOPEN_CONNECT set before connect(). With
 * net.ipv4.tcp_fastopen=1 the client side is allowed and no server here grants a cookie, so the
 * kernel falls back to a plain SYN: a blocking send connects then sends it all; a non-blocking one
 * gives -1 EINPROGRESS and sends nothing. The shim must make each of these a TLS connection (the
 * landed shim did not look at MSG_FASTOPEN sends at all: the request went out in plaintext, which
 * the wire oracle fails).
 * Modes: sendto_block, sendto_nb, sendmsg (blocking, two iovecs, msg_name), sendmsg_nb,
 *        sendto_v6mapped (an AF_INET6 socket, ::ffff:127.0.0.1), fastopen_connect,
 *        sendto_again (a second MSG_FASTOPEN send on the connected socket, with or without the
 *        address: -1 EISCONN, nothing sent; a plain sendto with the address: the address is
 *        ignored, the bytes go).
 * usage: host_fastopen PORT MODE */
#include "client.h"

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif

/* after_nb waits for the connect a non-blocking fast-open send started. */
static void after_nb(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  OBS("poll: %s", RET(poll(&p, 1, 5000)));
  OBS("revents: %s", revents_str(p.revents));
  OBS("SO_ERROR: %s", errname(so_error(fd)));
  set_nonblock(fd, 0);
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage");
  int port = atoi(argv[1]);
  const char *mode = argv[2];
  char req[128];
  int n = snprintf(req, sizeof(req), "GET %s\n", mode);
  struct sockaddr_in a = loopback4("127.0.0.1", port);
  ssize_t sent = 0;
  int fd;

  if (!strcmp(mode, "sendto_block") || !strcmp(mode, "sendto_nb")) {
    int nb = !strcmp(mode, "sendto_nb");
    fd = socket(AF_INET, SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0), 0);
    sent = sendto(fd, req, (size_t)n, MSG_FASTOPEN, (struct sockaddr *)&a, sizeof(a));
    OBS("sendto MSG_FASTOPEN: %s", RET(sent));
    if (nb) after_nb(fd);
  } else if (!strcmp(mode, "sendmsg") || !strcmp(mode, "sendmsg_nb")) {
    int nb = !strcmp(mode, "sendmsg_nb");
    fd = socket(AF_INET, SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0), 0);
    struct iovec iov[2] = {{req, 4}, {req + 4, (size_t)n - 4}};
    struct msghdr m = {.msg_name = &a, .msg_namelen = sizeof(a), .msg_iov = iov, .msg_iovlen = 2};
    sent = sendmsg(fd, &m, MSG_FASTOPEN);
    OBS("sendmsg MSG_FASTOPEN: %s", RET(sent));
    if (nb) after_nb(fd);
  } else if (!strcmp(mode, "sendto_v6mapped")) {
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
    sent = sendto(fd, req, (size_t)n, MSG_FASTOPEN, (struct sockaddr *)&a6, sizeof(a6));
    OBS("sendto MSG_FASTOPEN ::ffff:127.0.0.1: %s", RET(sent));
  } else if (!strcmp(mode, "sendto_again")) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    OBS("sendto MSG_FASTOPEN: %s",
        RET(sendto(fd, req, 4, MSG_FASTOPEN, (struct sockaddr *)&a, sizeof(a))));
    OBS("sendto MSG_FASTOPEN again: %s",
        RET(sendto(fd, "XXXX", 4, MSG_FASTOPEN, (struct sockaddr *)&a, sizeof(a))));
    OBS("send MSG_FASTOPEN: %s", RET(send(fd, "YYYY", 4, MSG_FASTOPEN)));
    ssize_t r = sendto(fd, req + 4, (size_t)n - 4, 0, (struct sockaddr *)&a, sizeof(a));
    OBS("sendto with the address: %s", RET(r));
    sent = r > 0 ? 4 + r : 4;
  } else if (!strcmp(mode, "fastopen_connect")) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    OBS("TCP_FASTOPEN_CONNECT: %s",
        RET(setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one))));
    OBS("connect: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  } else {
    die("mode %s", mode);
  }
  if (fd < 0) die("socket");
  exchange_rest(fd, mode, sent > 0 ? (size_t)sent : 0);
  return 0;
}
