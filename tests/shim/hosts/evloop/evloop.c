/* evloop.c — small plain-TCP programs, one per event-loop style, that the shim must upgrade to TLS
 * without knowing: each is an echo server (or a client) that never heard of TLS.
 *
 *   host_evloop server STYLE PORT READSIZE   STYLE: blocking | peek | poll | select | epoll-lt |
 *                                            epoll-et | fork
 *   (peek: blocking, and before each read MSG_PEEK and ioctl(FIONREAD) must agree with the read)
 *   host_evloop client-nb PORT BYTES         non-blocking connect + poll; sends BYTES, expects them
 *                                            back
 *
 * The server prints "ready" once listening, echoes one connection until it ends, prints how it ended
 * ("end: read 0" or "end: read -1 ENAME") and the time the connection lasted within bounds, and exits.
 * READSIZE small (e.g. 7) makes every read leave plaintext buffered inside TLS: a readiness wrapper
 * that forgets it hangs the test (every wait here gives up after 20 s). test_shim_evloop.py runs
 * each through difftest.py: plain against a plain peer, preloaded against a TLS peer. */
#include "../host.h"

#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>

/* How the connection ended, as the host saw it: the last read's result. */
static char end_how[96] = "end: none";
static void note_end(ssize_t r, int e) { snprintf(end_how, sizeof(end_how), "end: read %s", ret(r, e)); }

/* Echo state for non-blocking styles: bytes read but not yet written back. */
static char pend[1 << 20];
static size_t plen;

/* Reads (READSIZE at a time) until EAGAIN or EOF, writes back what it can. Returns 0 at EOF. */
static int pump(int fd, size_t rs, int until_eagain) {
  char buf[65536];
  for (;;) {
    if (plen) {
      ssize_t w = write(fd, pend, plen);
      if (w > 0) {
        memmove(pend, pend + w, plen - (size_t)w);
        plen -= (size_t)w;
      } else if (w < 0 && errno != EAGAIN) {
        snprintf(end_how, sizeof(end_how), "end: write %s", ret(w, errno));
        return 0;
      }
      if (plen > sizeof(pend) / 2) return 1; /* let the peer drain */
    }
    ssize_t r = read(fd, buf, rs);
    if (r == 0 || (r < 0 && errno != EAGAIN)) note_end(r, errno);
    if (r == 0) return 0;
    if (r < 0) return errno == EAGAIN ? 1 : 0;
    memcpy(pend + plen, buf, (size_t)r);
    plen += (size_t)r;
    if (!until_eagain) return 1;
  }
}

static void flush_blocking(int fd) {
  while (plen) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    poll(&p, 1, 1000);
    ssize_t w = write(fd, pend, plen);
    if (w > 0) {
      memmove(pend, pend + w, plen - (size_t)w);
      plen -= (size_t)w;
    } else if (w < 0 && errno != EAGAIN) {
      return;
    }
  }
}

static int serve(const char *style, int lfd, size_t rs) {
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) return 4;
  if (!strcmp(style, "peek")) {
    char buf[65536], peeked[65536];
    for (;;) {
      ssize_t p = recv(fd, peeked, rs, MSG_PEEK);
      if (p <= 0) {
        note_end(p, errno);
        return p == 0 ? 0 : 11;
      }
      int avail = -1;
      if (ioctl(fd, FIONREAD, &avail) != 0 || avail < (int)p) {
        fprintf(stderr, "FIONREAD %d < peeked %zd\n", avail, p);
        return 12;
      }
      ssize_t r = recv(fd, buf, (size_t)p, 0);
      if (r != p || memcmp(buf, peeked, (size_t)p) != 0) {
        fprintf(stderr, "read %zd differs from peek %zd\n", r, p);
        return 13;
      }
      for (ssize_t off = 0; off < r;) {
        ssize_t w = send(fd, buf + off, (size_t)(r - off), MSG_NOSIGNAL);
        if (w <= 0) return 5;
        off += w;
      }
    }
  }
  if (!strcmp(style, "blocking") || !strcmp(style, "fork")) {
    char buf[65536];
    ssize_t r;
    while ((r = read(fd, buf, rs)) > 0)
      for (ssize_t off = 0; off < r;) {
        ssize_t w = write(fd, buf + off, (size_t)(r - off));
        if (w <= 0) return 5;
        off += w;
      }
    note_end(r, errno);
    close(fd);
    return r == 0 ? 0 : 6;
  }
  set_nonblock(fd, 1);
  if (!strcmp(style, "poll")) {
    for (;;) {
      struct pollfd p = {.fd = fd, .events = POLLIN | (plen ? POLLOUT : 0)};
      if (poll(&p, 1, 20000) <= 0) return 7; /* a hang shows up as a failure, not a mystery */
      if (!pump(fd, rs, 0)) break;
    }
  } else if (!strcmp(style, "select")) {
    for (;;) {
      fd_set r, w;
      FD_ZERO(&r);
      FD_ZERO(&w);
      FD_SET(fd, &r);
      if (plen) FD_SET(fd, &w);
      struct timeval tv = {20, 0};
      if (select(fd + 1, &r, &w, NULL, &tv) <= 0) return 7;
      if (!pump(fd, rs, 0)) break;
    }
  } else { /* epoll-lt: one read per wakeup; epoll-et: read until EAGAIN, as edge-triggered loops do */
    int et = !strcmp(style, "epoll-et");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | (et ? EPOLLOUT | EPOLLET : 0), .data.u64 = 42};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    for (;;) {
      struct epoll_event out[4];
      int n = epoll_wait(ep, out, 4, 20000);
      if (n <= 0) return 7;
      if (out[0].data.u64 != 42) return 8; /* the host's data must come back unchanged */
      if (!pump(fd, rs, et)) break;
      if (!et) { /* level-triggered: ask for POLLOUT only while there is something to send */
        ev.events = EPOLLIN | (plen ? EPOLLOUT : 0);
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
      }
    }
    close(ep);
  }
  flush_blocking(fd);
  close(fd);
  return 0;
}

static int client_nb(int port, size_t bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  set_nonblock(fd, 1);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
    perror("connect");
    return 3;
  }
  char *src = malloc(bytes), *dst = malloc(bytes);
  for (size_t i = 0; i < bytes; i++) src[i] = (char)('a' + i % 26);
  size_t sent = 0, got = 0;
  while (got < bytes) {
    struct pollfd p = {.fd = fd, .events = POLLIN | (sent < bytes ? POLLOUT : 0)};
    if (poll(&p, 1, 20000) <= 0) {
      fprintf(stderr, "client: stalled at sent=%zu got=%zu\n", sent, got);
      return 7;
    }
    if (p.revents & POLLOUT && sent < bytes) {
      ssize_t w = write(fd, src + sent, bytes - sent < 10000 ? bytes - sent : 10000);
      if (w > 0) sent += (size_t)w;
      else if (errno != EAGAIN) { perror("write"); return 5; }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(fd, dst + got, bytes - got);
      if (r > 0) got += (size_t)r;
      else if (r == 0 || errno != EAGAIN) { fprintf(stderr, "client: read %zd: %s\n", r, strerror(errno)); return 6; }
    }
  }
  int ok = memcmp(src, dst, bytes) == 0;
  OBS("%s %zu bytes", ok ? "echoed" : "MISMATCH", bytes);
  close(fd);
  return ok ? 0 : 9;
}

/* serve_timed: one connection, then how it ended and how long it lasted (bounds: the case's) */
static int serve_timed(const char *style, int lfd, size_t rs, int64_t lo, int64_t hi) {
  int64_t t0 = now_ms();
  int rc = serve(style, lfd, rs);
  OBS("%s", end_how);
  obs_elapsed("served", now_ms() - t0, lo, hi);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "client-nb")) return client_nb(atoi(argv[2]), (size_t)atol(argv[3]));
  if (argc < 5 || strcmp(argv[1], "server")) {
    fprintf(stderr, "usage: host_evloop server STYLE PORT READSIZE [LO HI] | host_evloop client-nb PORT BYTES\n");
    return 2;
  }
  const char *style = argv[2];
  int lfd = listen_on(atoi(argv[3]));
  size_t rs = (size_t)atol(argv[4]);
  int64_t lo = argc > 6 ? atoll(argv[5]) : 0, hi = argc > 6 ? atoll(argv[6]) : 30000;
  if (!strcmp(style, "fork")) { /* listen in the parent, serve TLS in a forked child */
    pid_t pid = fork();
    if (pid == 0) _exit(serve_timed(style, lfd, rs, lo, hi));
    ready();
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 10;
  }
  ready();
  return serve_timed(style, lfd, rs, lo, hi);
}
