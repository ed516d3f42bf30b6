/* epoll_handshake_out PORT NCLIENTS — an edge-triggered server that greets on writability: each new
 * connection is registered for EPOLLOUT|EPOLLET only; on the first EPOLLOUT it writes its greeting
 * and switches the registration to EPOLLIN|EPOLLET with EPOLL_CTL_MOD; then it reads a command,
 * replies "ok <command>" and closes (libevent/libuv "write when writable" servers).
 *
 * Through the shim the socket is writable before the TLS handshake is done: the greeting written
 * then is accepted as a kernel would, and must arrive after the handshake — and the handshake must
 * progress although the host asked for EPOLLOUT only. Issue 9: "writes accepted before the
 * handshake", ET readiness. */

#include "../host.h"
#include <sys/epoll.h>

#define MAXFD 4096

/* Per-connection observations are tallied and printed sorted at the end, "N x line": their order
 * depends on how the connections interleave. */
static char tally_lines[256][128];
static int ntally;

__attribute__((format(printf, 1, 2))) static void TALLY(const char *fmt, ...) {
  if (ntally == 256) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tally_lines[ntally++], sizeof(tally_lines[0]), fmt, ap);
  va_end(ap);
}

static int tally_cmp(const void *a, const void *b) { return strcmp(a, b); }

static void tally_print(void) {
  qsort(tally_lines, (size_t)ntally, sizeof(tally_lines[0]), tally_cmp);
  for (int i = 0; i < ntally;) {
    int j = i;
    while (j < ntally && !strcmp(tally_lines[i], tally_lines[j])) j++;
    OBS("%d x %s", j - i, tally_lines[i]);
    i = j;
  }
}

static char line[MAXFD][128];
static size_t llen[MAXFD];
static int greeted[MAXFD];

int main(int argc, char **argv) {
  if (argc < 3) die("usage: %s PORT ...", argv[0]);
  int nclients = atoi(argv[2]);
  signal(SIGPIPE, SIG_IGN);
  int lfd = listen_on(atoi(argv[1]));
  set_nonblock(lfd, 1);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e)) die("epoll_ctl listener");
  ready();
  static const char greeting[] = "hello from the server\n";
  int done = 0;
  struct epoll_event ev[16];
  while (done < nclients) {
    int n = epoll_wait(ep, ev, 16, 5000);
    if (n <= 0) {
      OBS("epoll_wait: %s (a stall)", n == 0 ? "timeout" : errname(errno));
      break;
    }
    for (int i = 0; i < n; i++) {
      int fd = ev[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          if (c >= MAXFD) die("fd %d", c);
          llen[c] = 0;
          greeted[c] = 0;
          struct epoll_event ce = {.events = EPOLLOUT | EPOLLET, .data.fd = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce)) OBS("ADD: %s", errname(errno));
        }
        continue;
      }
      if (!greeted[fd]) {
        TALLY("first event: %s", revents_str((short)ev[i].events));
        TALLY("greeting write: %s", RET(write(fd, greeting, sizeof(greeting) - 1)));
        greeted[fd] = 1;
        struct epoll_event ce = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
        TALLY("MOD to IN|ET: %s", RET(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ce)));
        continue;
      }
      int end = 0;
      for (;;) { /* edge-triggered: until EAGAIN */
        ssize_t r = read(fd, line[fd] + llen[fd], sizeof(line[fd]) - 1 - llen[fd]);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) break;
        if (r > 0) {
          llen[fd] += (size_t)r;
          if (!memchr(line[fd], '\n', llen[fd]) && llen[fd] < sizeof(line[fd]) - 1) continue;
          char reply[160];
          int m = snprintf(reply, sizeof(reply), "ok %.*s", (int)llen[fd], line[fd]);
          TALLY("reply write: %s", RET(write(fd, reply, (size_t)m)));
        } else {
          TALLY("connection ended before its command: %s", r == 0 ? "EOF" : errname(errno));
        }
        end = 1;
        break;
      }
      if (end) {
        done++;
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
      }
    }
  }
  tally_print();
  OBS("served %d", done);
  return 0;
}
