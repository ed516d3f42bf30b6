/* client.h — shared by the connect group's client hosts (tests/shim/test_shim_connect.py): the
 * request/reply exchange every host ends with once it has a connection. The peer (the server,
 * ctx.accept()) reads one line, answers "reply to <line>" and ends its direction; the host reads
 * the reply up to EOF (reads bounded by SO_RCVTIMEO 5 s) and closes. Include it first: host.h
 * defines _GNU_SOURCE (POLLRDHUP, SOCK_NONBLOCK...). */
#ifndef SLI_TEST_CONNECT_CLIENT_H
#define SLI_TEST_CONNECT_CLIENT_H
#include "../host.h"
#include <sys/time.h>

/* bound_reads makes a lost reply a quick failure (-1 EAGAIN after 5 s), not a hang. */
static void bound_reads(int fd) {
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* exchange writes "GET <tag>\n" on a connected blocking fd, reads the reply to EOF, closes. */
static void exchange(int fd, const char *tag) {
  char req[128], reply[512];
  int n = snprintf(req, sizeof(req), "GET %s\n", tag);
  OBS("write request: %s", RET(write(fd, req, (size_t)n)));
  bound_reads(fd);
  int err;
  size_t got = read_all(fd, reply, sizeof(reply) - 1, &err);
  reply[got] = 0;
  if (got && reply[got - 1] == '\n') reply[got - 1] = 0;
  OBS("reply: '%s' (%s)", reply, err ? errname(err) : "eof");
  OBS("close: %s", RET(close(fd)));
}

/* exchange_rest is exchange for a request whose first `sent` bytes were already written (a TCP
 * Fast Open send carried them). */
static void exchange_rest(int fd, const char *tag, size_t sent) {
  char req[128], reply[512];
  int n = snprintf(req, sizeof(req), "GET %s\n", tag);
  if (sent < (size_t)n)
    OBS("write rest of request: %s", RET(write(fd, req + sent, (size_t)n - sent)));
  bound_reads(fd);
  int err;
  size_t got = read_all(fd, reply, sizeof(reply) - 1, &err);
  reply[got] = 0;
  if (got && reply[got - 1] == '\n') reply[got - 1] = 0;
  OBS("reply: '%s' (%s)", reply, err ? errname(err) : "eof");
  OBS("close: %s", RET(close(fd)));
}

static struct sockaddr_in loopback4(const char *ip, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

static int so_error(int fd) {
  int e = -1;
  socklen_t l = sizeof(e);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l)) return -1;
  return e;
}

#endif
