/* lifecycle.c — where TLS connections begin and end, and the fd calls around them:
 * accept/accept4 on a listener bound to a TLS port; connect to a target (installed *before* the
 * kernel connects, whatever connect returns — 0, EINPROGRESS, EINTR, EALREADY — so no byte can
 * leave in plaintext) and MSG_FASTOPEN sends; close, close_range, closefrom, shutdown (sends
 * close_notify; reads go on), dup/dup2/dup3, fcntl (F_DUPFD*, F_GETFD/F_SETFD), ioctl (FIONREAD
 * counts plaintext; FIOCLEX/FIONCLEX); bind/listen/connect fail closed (EACCES) when the
 * configuration is invalid. Handshakes are lazy: nothing here waits for TLS.
 *
 * The kernel always has FD_CLOEXEC on a TLS fd; the host sees (and sets) its own view of the flag.
 * An exec through our wrappers hands the fds the host meant to pass to a relay (exec.c); any other
 * exec (system(), posix_spawn's internals, a raw syscall) finds them closed: never a plaintext fd. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>

#include "shim.h"

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
  if (lfd < 0 || (size_t)lfd >= fdtab_cap) return 2;
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

/* ---- accept ---- */

static int tls_listener(int lfd) {
  return cfg.active && cfg.n_ports && fdtab && !shim_foreign() && listener_kind(lfd) == 1;
}

static int after_accept(int fd, int tls, int host_cloexec) {
  if (fd < 0) return fd;
  fdtab_drop_stale(fd);
  if (!tls) return fd;
  int saved = errno;
  tconn *tc = tconn_new(fd, 1, NULL, cfg.optional);
  if (!tc) { /* never hand the host a plaintext connection on a TLS port */
    real.close(fd);
    errno = ECONNABORTED;
    return -1;
  }
  fdtab_install(fd, tc, host_cloexec);
  shim_log(LOG_DEBUG_, "%s: accepted on a TLS port (fd %d)", tc_peer(tc), fd);
  errno = saved;
  return fd;
}

int accept(int lfd, struct sockaddr *addr, socklen_t *len) {
  ENSURE(accept);
  if (!tls_listener(lfd)) {
    int fd = real.accept(lfd, addr, len);
    if (fd >= 0 && fdtab && !shim_foreign()) fdtab_drop_stale(fd);
    return fd;
  }
  return after_accept(real.accept4(lfd, addr, len, SOCK_CLOEXEC), 1, 0);
}

int accept4(int lfd, struct sockaddr *addr, socklen_t *len, int flags) {
  ENSURE(accept4);
  if (!tls_listener(lfd)) {
    int fd = real.accept4(lfd, addr, len, flags);
    if (fd >= 0 && fdtab && !shim_foreign()) fdtab_drop_stale(fd);
    return fd;
  }
  int fd = after_accept(real.accept4(lfd, addr, len, flags | SOCK_CLOEXEC), 1,
                        (flags & SOCK_CLOEXEC) != 0);
  if (fd >= 0 && (flags & SOCK_NONBLOCK)) {
    tconn *tc = tc_get(fd);
    if (tc) {
      tc->nb_known = 2;
      tc_put(tc);
    }
  }
  return fd;
}

int socket(int domain, int type, int protocol) {
  ENSURE(socket);
  int fd = real.socket(domain, type, protocol);
  if (fd >= 0 && fdtab && !shim_foreign()) fdtab_drop_stale(fd);
  return fd;
}

/* ---- connect ---- */

static int refuse_target(void) {
  shim_log(LOG_ERR_, "refusing connect to a TLS target: %s",
           cfg.fail_closed ? "the configuration is invalid" : "a vfork child cannot start TLS");
  errno = EACCES;
  return -1;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  ENSURE(connect);
  const shim_target *t = shim_n_targets && is_inet(addr) ? shim_target_match(addr, len) : NULL;
  if (!t) return real.connect(fd, addr, len);
  if (cfg.fail_closed || shim_foreign()) return refuse_target();
  if (!cfg.active) return real.connect(fd, addr, len);
  if (!shim_ctx(0)) return refuse_target();
  tconn *tc = tc_get(fd);
  if (tc) {
    pthread_mutex_lock(&tc->lock);
    int failed = 0;
    if (tc->connecting) { /* did the first attempt fail? (the kernel keeps SO_ERROR for the host) */
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      failed = real.poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
    }
    pthread_mutex_unlock(&tc->lock);
    if (!failed) { /* connect() again: hiredis and others learn this way that it completed */
      int r = real.connect(fd, addr, len);
      int e = errno;
      pthread_mutex_lock(&tc->lock);
      if (r == 0 || e == EISCONN) tc->connecting = 0;
      pthread_mutex_unlock(&tc->lock);
      tc_put(tc);
      errno = e;
      return r;
    }
    /* the first attempt failed: this is a new connect (perhaps elsewhere), as for the kernel */
    epoll_fd_left_tls(fd, tc);
    tc_put(tc);
    int shadow = fdtab[fd].cloexec;
    fdtab_drop_stale(fd);
    real.fcntl(fd, F_SETFD, shadow ? FD_CLOEXEC : 0);
    t = shim_target_match(addr, len);
    if (!t) return real.connect(fd, addr, len);
  }
  int type = 0;
  socklen_t tl = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0) return real.connect(fd, addr, len);
  if (type != SOCK_STREAM) return real.connect(fd, addr, len); /* UDP to a target stays UDP */
  int fdfl = real.fcntl(fd, F_GETFD);
  if (fdfl < 0) return -1; /* EBADF */
  tc = tconn_new(fd, 0, t->servername, 0);
  if (!tc) {
    errno = ENOMEM;
    return -1;
  }
  tc->connecting = 1;
  real.fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
  fdtab_install(fd, tc, (fdfl & FD_CLOEXEC) != 0);
  epoll_fd_became_tls(fd); /* registered before connect: its readiness is TLS readiness now */
  int r = real.connect(fd, addr, len);
  int e = errno;
  if (r == 0 || e == EINPROGRESS || e == EINTR || e == EALREADY || e == EAGAIN) {
    /* EINTR: the kernel goes on connecting; the connection is TLS whenever it completes */
    tconn *p = tc_get(fd);
    if (p) {
      pthread_mutex_lock(&p->lock);
      if (r == 0) p->connecting = 0;
      pthread_mutex_unlock(&p->lock);
      tc_put(p);
    }
    shim_log(LOG_DEBUG_, "fd %d: TLS client of %s:%u (server name %s)", fd, t->host, t->port,
             t->servername);
  } else { /* refused, unreachable...: the socket is the host's to retry elsewhere */
    tconn *p = tc_get(fd);
    if (p) {
      epoll_fd_left_tls(fd, p);
      tc_put(p);
    }
    fdtab_drop_stale(fd);
    real.fcntl(fd, F_SETFD, fdfl);
  }
  errno = e;
  return r;
}

/* A TCP Fast Open send to a target connects it: as TLS, with the data inside the session. */
ssize_t shim_fastopen(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                      socklen_t alen) {
  const shim_target *t = shim_n_targets && is_inet(addr) ? shim_target_match(addr, alen) : NULL;
  int type = 0;
  socklen_t tl = sizeof(type);
  if (!t || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM)
    return real.sendto(fd, buf, len, flags, addr, alen);
  if (connect(fd, addr, alen) != 0) return -1; /* EINPROGRESS when non-blocking, as the kernel */
  tconn *tc = tc_get(fd);
  if (!tc) return refuse_target();
  ssize_t r = tc_write(tc, buf, len, flags & ~MSG_FASTOPEN);
  int e = errno;
  tc_put(tc);
  errno = e;
  return r;
}

/* refused_port: binding or listening on `addr` must fail: the configuration is invalid, or the
 * server context for a TLS port cannot be made (it is made here, on first need, while the host
 * still has the privileges it binds with). */
static int refused_port(const struct sockaddr *addr) {
  if (!is_inet(addr)) return 0;
  if (cfg.active && cfg.n_ports && shim_port_is_tls(port_of(addr)) && !shim_foreign())
    shim_ctx(1);
  return cfg.fail_closed && (cfg.all_ports || shim_port_is_tls(port_of(addr)));
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
  if (cfg.fail_closed || (cfg.active && cfg.n_ports && !cfg.server_ctx)) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && refused_port((struct sockaddr *)&ss)) {
      errno = EACCES;
      return -1;
    }
  }
  return real.listen(fd, backlog);
}

/* ---- close ---- */

/* tracked: anything of ours hangs on this fd number (cheap loads, no syscall). */
static int tracked(int fd) {
  if (!fdtab || fd < 0 || (size_t)fd >= fdtab_cap) return 0;
  fdent *e = &fdtab[fd];
  return e->listener || e->epolled || e->epset || atomic_load_explicit(&e->tc, memory_order_relaxed);
}

/* shim_closing: the host is closing fd (it is still open). */
void shim_closing(int fd) {
  if (!tracked(fd) || shim_foreign()) return;
  int saved = errno; /* a close that succeeds leaves errno alone (fclose reports a flush error) */
  fdtab[fd].listener = 0;
  epoll_fd_closed(fd);
  if (shim_is_tls(fd)) fdtab_close(fd);
  errno = saved;
}

int close(int fd) {
  ENSURE(close);
  if (shim_private(fd)) { /* ours, never the host's: as if the number were not open */
    errno = EBADF;
    return -1;
  }
  shim_closing(fd);
  return real.close(fd);
}

static void closing_range(unsigned int first, unsigned int last, int flags) {
  if (!fdtab || shim_foreign()) return;
  for (size_t fd = first; fd <= last && fd < fdtab_cap; fd++) {
    if (flags & CLOSE_RANGE_CLOEXEC) {
      if (shim_is_tls((int)fd)) fdtab[fd].cloexec = 1;
      continue;
    }
    if (tracked((int)fd)) shim_closing((int)fd);
  }
}

int close_range(unsigned int first, unsigned int last, int flags) {
  ENSURE(close_range);
  closing_range(first, last, flags);
  if (!real.close_range) {
    errno = ENOSYS;
    return -1;
  }
  return shim_close_range_skipping(first, last, flags); /* the kernel's, skipping our numbers */
}

void closefrom(int lowfd) {
  ENSURE(closefrom);
  if (lowfd < 0) lowfd = 0;
  closing_range((unsigned)lowfd, ~0U, 0);
  if (real.close_range && shim_close_range_skipping((unsigned)lowfd, ~0U, 0) == 0) return;
  if (real.closefrom) real.closefrom(lowfd);
  else if (real.close_range) real.close_range((unsigned)lowfd, ~0U, 0);
}

int shutdown(int fd, int how) {
  ENSURE(shutdown);
  tconn *tc = tc_get(fd);
  if (!tc) return real.shutdown(fd, how);
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
    tc_put(tc);
    errno = EINVAL;
    return -1;
  }
  tc_shutdown(tc, how); /* close_notify first, then the kernel's FIN */
  tc_put(tc);
  return 0;
}

/* ---- dup ---- */

int dup(int fd) {
  ENSURE(dup);
  if (!shim_is_tls(fd) || shim_foreign()) {
    int r = real.dup(fd);
    if (r >= 0 && fdtab && !shim_foreign()) fdtab_drop_stale(r);
    return r;
  }
  int r = real.fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r >= 0) {
    fdtab_drop_stale(r);
    fdtab_alias(fd, r, 0);
  }
  return r;
}

/* dup_onto: dup2/dup3 (cloexec: the host's flag for the new fd). */
static int dup_onto(int oldfd, int newfd, int host_cloexec, int dup3_call) {
  if (shim_foreign()) return dup3_call ? real.dup3(oldfd, newfd, host_cloexec ? O_CLOEXEC : 0)
                                       : real.dup2(oldfd, newfd);
  if (oldfd == newfd) return dup3_call ? real.dup3(oldfd, newfd, 0) : real.dup2(oldfd, newfd);
  if (real.fcntl(oldfd, F_GETFD) < 0) return -1; /* EBADF: the kernel would not touch newfd */
  shim_private_vacate_conn(newfd); /* a closed connection still sending there */
  svc_vacate(newfd);               /* the service thread's epoll and eventfd */
  shim_private_set(newfd, 0);
  int tls = shim_is_tls(oldfd);
  shim_closing(newfd); /* the kernel closes newfd: end it while it is still that socket */
  int r = tls || host_cloexec ? real.dup3(oldfd, newfd, O_CLOEXEC) : real.dup2(oldfd, newfd);
  if (r < 0) return r;
  if (tls) fdtab_alias(oldfd, r, host_cloexec);
  else fdtab_drop_stale(r);
  return r;
}

int dup2(int oldfd, int newfd) {
  ENSURE(dup2);
  return dup_onto(oldfd, newfd, 0, 0);
}

int dup3(int oldfd, int newfd, int flags) {
  ENSURE(dup3);
  if (flags & ~O_CLOEXEC) return real.dup3(oldfd, newfd, flags); /* EINVAL */
  return dup_onto(oldfd, newfd, (flags & O_CLOEXEC) != 0, 1);
}

static int do_fcntl(int (*fn)(int, int, ...), int fd, int cmd, va_list ap) {
  void *arg = va_arg(ap, void *);
  if (!shim_is_tls(fd) || shim_foreign()) {
    int r = fn(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && fdtab && !shim_foreign())
      fdtab_drop_stale(r);
    return r;
  }
  switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      int r = fn(fd, F_DUPFD_CLOEXEC, arg);
      if (r >= 0) {
        fdtab_drop_stale(r);
        fdtab_alias(fd, r, cmd == F_DUPFD_CLOEXEC);
      }
      return r;
    }
    case F_GETFD: {
      int r = fn(fd, F_GETFD);
      return r < 0 ? r : ((r & ~FD_CLOEXEC) | (fdtab[fd].cloexec ? FD_CLOEXEC : 0));
    }
    case F_SETFD: {
      int v = (int)(intptr_t)arg;
      int r = fn(fd, F_SETFD, v | FD_CLOEXEC);
      if (r == 0) fdtab[fd].cloexec = (v & FD_CLOEXEC) != 0;
      if (r == 0 && !(v & FD_CLOEXEC)) fdtab[fd].placed_gen = shim_fork_gen;
      return r;
    }
    case F_SETFL: {
      int r = fn(fd, cmd, arg);
      tconn *tc = tc_get(fd);
      if (tc) { /* the cached O_NONBLOCK follows the host's change */
        tc->nb_known = r == 0 && ((int)(intptr_t)arg & O_NONBLOCK) ? 2 : 0;
        tc_put(tc);
      }
      return r;
    }
    default:
      return fn(fd, cmd, arg);
  }
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
  tconn *tc = tc_get(fd);
  if (!tc) return real.ioctl(fd, req, arg);
  int r;
  if (req == FIONREAD && arg && tc->state != ST_PLAIN) { /* plaintext bytes, as nginx expects */
    *(int *)arg = (int)tc_readable_bytes(tc);
    r = 0;
  } else if (req == FIONBIO) {
    r = real.ioctl(fd, req, arg);
    tc->nb_known = r == 0 && arg && *(int *)arg ? 2 : 0;
  } else if (req == FIOCLEX || req == FIONCLEX) {
    fdtab[fd].cloexec = req == FIOCLEX;
    if (req == FIONCLEX) fdtab[fd].placed_gen = shim_fork_gen;
    r = 0;
  } else {
    r = real.ioctl(fd, req, arg);
  }
  int e = errno;
  tc_put(tc);
  errno = e;
  return r;
}

/* setsockopt(TCP_CORK) on a TLS fd is emulated: the shim holds the plaintext and seals it as one
 * record at the uncork (tls_io.c); the kernel's socket is corked only while a corked transfer
 * runs longer than a record. SO_RCVLOWAT counts plaintext (readiness and blocking reads wait for
 * that many bytes, as the kernel's do). SO_ZEROCOPY is refused (EOPNOTSUPP, as the kernel says
 * for sockets without it): the shim sends ciphertext it made, so the kernel's completions for the
 * host's buffers would never come; the host then sends as usual. */
int setsockopt(int fd, int level, int name, const void *val, socklen_t len) {
  ENSURE(setsockopt);
  if (level == SOL_SOCKET && (name == SO_ZEROCOPY || name == SO_RCVLOWAT)) {
    tconn *tc = tc_get(fd);
    if (tc) {
      int r = -1;
      if (name == SO_ZEROCOPY) {
        errno = EOPNOTSUPP;
      } else if ((r = real.setsockopt(fd, level, name, val, len)) == 0 && val &&
                 len >= (socklen_t)sizeof(int)) {
        int v = *(const int *)val;
        tc->lowat = v < 0 ? 0x7fffffff : v;
      }
      int e = errno;
      tc_put(tc);
      errno = e;
      return r;
    }
  }
  if (level == IPPROTO_TCP && name == TCP_CORK && val && len >= (socklen_t)sizeof(int)) {
    tconn *tc = tc_get(fd);
    if (tc) {
      tc_set_cork(tc, *(const int *)val != 0);
      tc_put(tc);
      return 0;
    }
  }
  return real.setsockopt(fd, level, name, val, len);
}

/* getsockopt(SO_ERROR) on a TLS fd: an error the shim's own call took from the kernel (a reset seen
 * while reading for the host) is still the host's to read, once. TCP_CORK: the host's own value. */
int getsockopt(int fd, int level, int name, void *val, socklen_t *len) {
  ENSURE(getsockopt);
  if (level == IPPROTO_TCP && name == TCP_CORK && val && len && *len >= sizeof(int)) {
    tconn *tc = tc_get(fd);
    if (tc) {
      *(int *)val = tc->corked;
      *len = sizeof(int);
      tc_put(tc);
      return 0;
    }
  }
  if (level == SOL_SOCKET && name == SO_ERROR && val && len && *len >= sizeof(int)) {
    tconn *tc = tc_get(fd);
    if (tc) {
      int e = tc_take_soerr(tc);
      tc_put(tc);
      if (e) {
        *(int *)val = e;
        *len = sizeof(int);
        return 0;
      }
    }
  }
  return real.getsockopt(fd, level, name, val, len);
}
