/* lifecycle.c — where TLS connections begin and end: accept/accept4 on a listener bound to a TLS
 * port, connect to a configured target; close, close_range, shutdown, dup/dup2/dup3,
 * fcntl(F_DUPFD*), ioctl(FIONREAD); bind/listen/connect fail closed (EACCES) when the configuration
 * is invalid; fork. Handshakes are lazy: nothing here blocks on TLS. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "shim.h"

#define ENSURE(fn) \
  if (!real.fn) shim_resolve()

void shim_epoll_forget(int epfd);

static uint16_t port_of(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

static int is_inet(const struct sockaddr *sa) {
  return sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

/* listener_kind: 1 if `lfd` listens on a TLS port, 2 if not (cached per fd). */
static int listener_kind(int lfd) {
  if ((size_t)lfd >= fdtab_cap) return 2;
  uint8_t k = fdtab[lfd].listener;
  if (k) return k;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  k = 2;
  if (getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0 && is_inet((struct sockaddr *)&ss) &&
      shim_port_is_tls(port_of((struct sockaddr *)&ss)))
    k = 1;
  fdtab[lfd].listener = k;
  return k;
}

static int after_accept(int lfd, int fd) {
  if (fd < 0) return fd;
  fdtab_drop_stale(fd);
  if (!cfg.active || !cfg.n_ports || listener_kind(lfd) != 1) return fd;
  int saved = errno;
  tconn *tc = tconn_new(fd, 1, NULL, cfg.optional);
  if (!tc) { /* never hand the host a plaintext connection on a TLS port */
    real.close(fd);
    errno = ECONNABORTED;
    return -1;
  }
  fdtab_set(fd, tc);
  tc_track(tc);
  shim_log(LOG_DEBUG_, "%s: accepted on a TLS port (fd %d)", tc_peer(tc), fd);
  errno = saved;
  return fd;
}

int accept(int lfd, struct sockaddr *addr, socklen_t *len) {
  ENSURE(accept);
  return after_accept(lfd, real.accept(lfd, addr, len));
}

int accept4(int lfd, struct sockaddr *addr, socklen_t *len, int flags) {
  ENSURE(accept4);
  return after_accept(lfd, real.accept4(lfd, addr, len, flags));
}

int socket(int domain, int type, int protocol) {
  ENSURE(socket);
  int fd = real.socket(domain, type, protocol);
  if (fd >= 0) fdtab_drop_stale(fd);
  return fd;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  ENSURE(connect);
  const shim_target *t = (cfg.n_targets && is_inet(addr)) ? shim_target_match(addr, len) : NULL;
  if (cfg.fail_closed && is_inet(addr) && (t || cfg.n_targets)) {
    if (t) {
      shim_log(LOG_ERR_, "refusing connect to a TLS target: the configuration is invalid");
      errno = EACCES;
      return -1;
    }
  }
  int r = real.connect(fd, addr, len);
  if (!t || !cfg.active) return r;
  int saved = errno;
  /* hiredis and others call connect() again to learn that a non-blocking connect completed: the
   * connection made by the first call stays. */
  if ((r == 0 || errno == EINPROGRESS) && !shim_tc(fd)) {
    tconn *tc = tconn_new(fd, 0, t->servername, 0);
    if (!tc) {
      errno = ECONNREFUSED;
      return -1;
    }
    fdtab_set(fd, tc);
    tc_track(tc);
    shim_log(LOG_DEBUG_, "%s: TLS client (server name %s)", tc_peer(tc), t->servername);
  }
  errno = saved;
  return r;
}

static int refused_port(const struct sockaddr *addr) {
  return cfg.fail_closed && is_inet(addr) && (cfg.all_ports || shim_port_is_tls(port_of(addr)));
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  ENSURE(bind);
  if (refused_port(addr)) {
    shim_log(LOG_ERR_, "refusing to bind port %u: the TLS configuration is invalid", port_of(addr));
    errno = EACCES;
    return -1;
  }
  return real.bind(fd, addr, len);
}

int listen(int fd, int backlog) {
  ENSURE(listen);
  if (cfg.fail_closed) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && refused_port((struct sockaddr *)&ss)) {
      errno = EACCES;
      return -1;
    }
  }
  return real.listen(fd, backlog);
}

int close(int fd) {
  ENSURE(close);
  if (fdtab && fd >= 0 && (size_t)fd < fdtab_cap) {
    fdtab[fd].listener = 0;
    if (fdtab[fd].tc) fdtab_forget(fd);
  }
  shim_epoll_forget(fd);
  return real.close(fd);
}

int close_range(unsigned int first, unsigned int last, int flags) {
  ENSURE(close_range);
  if (!(flags & CLOSE_RANGE_CLOEXEC) && fdtab)
    for (size_t fd = first; fd <= last && fd < fdtab_cap; fd++) {
      fdtab[fd].listener = 0;
      if (fdtab[fd].tc) fdtab_forget((int)fd);
    }
  if (!real.close_range) {
    errno = ENOSYS;
    return -1;
  }
  return real.close_range(first, last, flags);
}

int shutdown(int fd, int how) {
  ENSURE(shutdown);
  tconn *tc = shim_tc(fd);
  if (tc && (how == SHUT_WR || how == SHUT_RDWR)) tc_shutdown_write(tc); /* close_notify first */
  return real.shutdown(fd, how);
}

int dup(int fd) {
  ENSURE(dup);
  int r = real.dup(fd);
  if (r >= 0) {
    fdtab_drop_stale(r);
    if (shim_tc(fd)) fdtab_alias(fd, r);
  }
  return r;
}

static int dup_to(int oldfd, int newfd, int r) {
  if (r >= 0 && oldfd != newfd && shim_tc(oldfd)) fdtab_alias(oldfd, r);
  return r;
}

int dup2(int oldfd, int newfd) {
  ENSURE(dup2);
  if (oldfd != newfd && shim_tc(newfd)) fdtab_forget(newfd); /* end it while it is still that socket */
  return dup_to(oldfd, newfd, real.dup2(oldfd, newfd));
}

int dup3(int oldfd, int newfd, int flags) {
  ENSURE(dup3);
  if (oldfd != newfd && shim_tc(newfd)) fdtab_forget(newfd);
  return dup_to(oldfd, newfd, real.dup3(oldfd, newfd, flags));
}

static int do_fcntl(int (*fn)(int, int, ...), int fd, int cmd, va_list ap) {
  void *arg = va_arg(ap, void *);
  int r = fn(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) {
    fdtab_drop_stale(r);
    if (shim_tc(fd)) fdtab_alias(fd, r);
  }
  return r;
}

int fcntl(int fd, int cmd, ...) {
  ENSURE(fcntl);
  va_list ap;
  va_start(ap, cmd);
  int r = do_fcntl(real.fcntl, fd, cmd, ap);
  va_end(ap);
  return r;
}

int fcntl64(int fd, int cmd, ...) {
  ENSURE(fcntl64);
  va_list ap;
  va_start(ap, cmd);
  int r = do_fcntl(real.fcntl64, fd, cmd, ap);
  va_end(ap);
  return r;
}

int ioctl(int fd, unsigned long req, ...) {
  ENSURE(ioctl);
  va_list ap;
  va_start(ap, req);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  tconn *tc = shim_tc(fd);
  if (tc && req == FIONREAD && arg && tc->state != ST_PLAIN) { /* plaintext bytes, as nginx expects */
    *(int *)arg = (int)tc_readable_bytes(tc);
    return 0;
  }
  return real.ioctl(fd, req, arg);
}

static void child_after_fork(void) { fdtab_after_fork(); }

__attribute__((constructor(200))) static void lifecycle_init(void) {
  pthread_atfork(NULL, NULL, child_after_fork);
}
