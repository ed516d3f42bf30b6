/* fdtable.c — the table fd -> TLS connection, and a connection's life: created at accept/connect,
 * shared by dup'd fds, ended (close_notify, if this process owns it) when its last fd is closed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "shim.h"

fdent *fdtab;
size_t fdtab_cap;
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;

void fdtab_init(void) {
  if (fdtab) return;
  struct rlimit rl;
  size_t cap = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max > cap)
    cap = rl.rlim_max;
  if (cap > (1u << 20)) cap = 1u << 20;
  /* Anonymous zero pages: untouched entries cost no memory. */
  void *p = mmap(NULL, cap * sizeof(fdent), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  fdtab = p;
  fdtab_cap = cap;
}

static ssize_t t_read(sli_conn *c, void *buf, size_t len, void *arg) {
  tconn *tc = arg;
  for (;;) {
    ssize_t r = real.recv(tc->io_fd, buf, len, MSG_DONTWAIT);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return SLI_WANT_READ;
    tc->rerr = errno;
    return SLI_E_IO;
  }
}

/* queue keeps ciphertext the kernel did not take; tc_flush hands it over later. */
static ssize_t queue(tconn *tc, const void *buf, size_t len) {
  if (tc->olen + len > tc->ocap) {
    size_t cap = tc->ocap ? tc->ocap : 16384 + 512;
    while (cap < tc->olen + len) cap *= 2;
    unsigned char *p = realloc(tc->obuf, cap);
    if (!p) return SLI_E_IO;
    tc->obuf = p;
    tc->ocap = cap;
  }
  memcpy(tc->obuf + tc->olen, buf, len);
  tc->olen += len;
  return (ssize_t)len;
}

/* The engine's transport write never reports WANT_WRITE: what the kernel does not take now is
 * queued, so the host's write() semantics (all, or EAGAIN before anything is taken) stay simple.
 * With nothing queued the bytes go straight to the kernel (no copy, no allocation). */
static ssize_t t_write(sli_conn *c, const void *buf, size_t len, void *arg) {
  tconn *tc = arg;
  if (tc->olen > 0 || tc->werr) return tc->werr ? SLI_E_IO : queue(tc, buf, len);
  ssize_t r;
  do r = real.send(tc->io_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r == (ssize_t)len) return r;
  if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    tc->werr = tc->rerr = errno;
    return SLI_E_IO;
  }
  size_t done = r > 0 ? (size_t)r : 0;
  ssize_t q = queue(tc, (const char *)buf + done, len - done);
  return q < 0 ? q : (ssize_t)len;
}

static void describe_peer(tconn *tc);

/* tc_peer names the peer for log lines, computed on first use (no syscall per connection). */
const char *tc_peer(tconn *tc) {
  if (!tc->peer[0]) describe_peer(tc);
  return tc->peer;
}

static void describe_peer(tconn *tc) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  char a[64] = "?";
  int port = 0;
  if (getpeername(tc->io_fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof(a));
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof(a));
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
  }
  snprintf(tc->peer, sizeof(tc->peer), "%s:%d", a, port);
}

tconn *tconn_new(int fd, int is_server, const char *servername, int sniff) {
  if (!fdtab || (size_t)fd >= fdtab_cap) return NULL;
  tconn *tc = calloc(1, sizeof(*tc));
  if (!tc) return NULL;
  pthread_mutex_init(&tc->lock, NULL);
  atomic_init(&tc->refs, 1);
  atomic_init(&tc->fdrefs, 1);
  tc->io_fd = fd;
  tc->is_server = is_server;
  tc->owner = getpid();
  tc->state = sniff ? ST_SNIFF : ST_TLS;
  tc->sniff_deadline_ms = shim_now_ms() + cfg.sniff_timeout_ms;
  tc->hs_deadline_ms = cfg.handshake_timeout_ms > 0 ? shim_now_ms() + cfg.handshake_timeout_ms : INT64_MAX;
  int rc = sli_conn_new_cbs(&tc->conn, is_server ? cfg.server_ctx : cfg.client_ctx, t_read, t_write,
                            tc, servername, 0);
  if (rc) {
    shim_log(LOG_ERR_, "%s: cannot create a TLS connection: %s", tc_peer(tc), sli_err_name(rc));
    free(tc);
    return NULL;
  }
  return tc;
}

void fdtab_set(int fd, tconn *tc) {
  if (fdtab && fd >= 0 && (size_t)fd < fdtab_cap) __atomic_store_n(&fdtab[fd].tc, tc, __ATOMIC_RELEASE);
}

void tconn_release(tconn *tc) {
  if (atomic_fetch_sub(&tc->refs, 1) != 1) return;
  sli_conn_free(tc->conn);
  free(tc->rbuf);
  free(tc->obuf);
  pthread_mutex_destroy(&tc->lock);
  free(tc);
}

/* Drops fd `closing_fd`'s reference; the last fd ends the session (with I/O only if `may_io`). */
static void tconn_unref(tconn *tc, int closing_fd, int may_io) {
  if (atomic_fetch_sub(&tc->fdrefs, 1) != 1) {
    if (tc->io_fd == closing_fd) { /* another fd still refers to the socket: do I/O through it */
      pthread_mutex_lock(&tab_lock);
      for (size_t i = 0; i < fdtab_cap; i++)
        if ((int)i != closing_fd && fdtab[i].tc == tc) {
          tc->io_fd = (int)i;
          break;
        }
      pthread_mutex_unlock(&tab_lock);
    }
    tconn_release(tc);
    return;
  }
  if (may_io) tc_close(tc); /* flush, close_notify if we own it; the fd is still open here */
  else shim_hot_remove(tc);
  pthread_mutex_lock(&tc->lock);
  tc->state = ST_FAILED;
  tc->ferr = EBADF;
  tc->io_fd = -1;
  pthread_mutex_unlock(&tc->lock);
  tconn_release(tc);
}

void fdtab_forget(int fd) {
  if (!fdtab || fd < 0 || (size_t)fd >= fdtab_cap) return;
  fdtab[fd].listener = 0;
  tconn *tc = __atomic_exchange_n(&fdtab[fd].tc, NULL, __ATOMIC_ACQ_REL);
  if (tc) tconn_unref(tc, fd, 1);
}

/* A call that creates fd number `fd` proves any entry left for it is stale (closed behind our back,
 * e.g. by a raw syscall): forget it without touching the socket now behind that number. */
void fdtab_drop_stale(int fd) {
  if (!fdtab || fd < 0 || (size_t)fd >= fdtab_cap) return;
  fdtab[fd].listener = 0;
  tconn *tc = __atomic_exchange_n(&fdtab[fd].tc, NULL, __ATOMIC_ACQ_REL);
  if (tc) tconn_unref(tc, fd, 0);
}

/* In a forked child: locks may have been held by threads that do not exist here. */
void fdtab_after_fork(void) {
  pthread_mutex_init(&tab_lock, NULL);
  shim_hot_reset_after_fork();
  for (size_t i = 0; fdtab && i < fdtab_cap; i++)
    if (fdtab[i].tc) pthread_mutex_init(&fdtab[i].tc->lock, NULL);
}

void fdtab_alias(int oldfd, int newfd) {
  if (!fdtab || newfd < 0 || (size_t)newfd >= fdtab_cap) return;
  tconn *tc = shim_tc(oldfd);
  if (tc) {
    atomic_fetch_add(&tc->refs, 1);
    atomic_fetch_add(&tc->fdrefs, 1);
  }
  fdtab[newfd].listener = (size_t)oldfd < fdtab_cap ? fdtab[oldfd].listener : 0;
  tconn *old = __atomic_exchange_n(&fdtab[newfd].tc, tc, __ATOMIC_ACQ_REL);
  if (old) tconn_unref(old, newfd, 1);
}
