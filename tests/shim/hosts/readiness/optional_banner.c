/* optional_banner PORT NCLIENTS — a server that speaks first (SMTP, FTP, POP3, IMAP, Redis'
 * "-ERR" greeters...) on a non-blocking epoll loop: it writes its banner the moment it accepts,
 * then reads one command per connection, replies "250 ok <command>" and closes.
 *
 * Run under SLI_MODE=optional (TLS and plaintext on one port, decided by sniffing the client's first
 * byte): a plaintext client that waits for the banner says nothing, so the shim can only decide
 * "plaintext" at the sniff deadline. A NON-blocking write must never block meanwhile: each banner
 * must arrive within the sniff timeout, not one timeout per earlier client (the landed shim
 * blocked in write: banners at 1, 2, 3, 4, 5 s). Issue 9, item 15. */

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
  static const char banner[] = "220 sli-test ready\r\n";
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
          int64_t t0 = now_ms();
          ssize_t w = write(c, banner, sizeof(banner) - 1);
          int err = errno;
          TALLY("banner write: %s", ret(w, err));
          int64_t ms = now_ms() - t0;
          if (ms <= 100) TALLY("banner write returned within 0..100 ms");
          else TALLY("banner write took %lld ms, outside 0..100", (long long)ms);
          llen[c] = 0;
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce)) OBS("ADD: %s", errname(errno));
        }
        continue;
      }
      ssize_t r = read(fd, line[fd] + llen[fd], sizeof(line[fd]) - 1 - llen[fd]);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r > 0) {
        llen[fd] += (size_t)r;
        if (!memchr(line[fd], '\n', llen[fd]) && llen[fd] < sizeof(line[fd]) - 1) continue;
        char reply[160];
        int m = snprintf(reply, sizeof(reply), "250 ok %.*s", (int)llen[fd], line[fd]);
        if (write_all(fd, reply, (size_t)m)) OBS("reply: %s", errname(errno));
      } else {
        TALLY("connection ended before its command: %s", r == 0 ? "EOF" : errname(errno));
      }
      done++;
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
      close(fd);
    }
  }
  tally_print();
  OBS("served %d", done);
  return 0;
}
