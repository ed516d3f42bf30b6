/* readiness.c — poll, ppoll, select and pselect made truthful for TLS fds (epoll: epoll.c):
 * plaintext buffered inside TLS wakes the host, bytes that are not application data (a partial
 * record, a session ticket, a handshake message) do not, a pending connect shows the kernel's own
 * POLLOUT / POLLERR / POLLHUP, POLLRDHUP follows the peer's close_notify or FIN, and the handshake
 * and optional-mode deadlines bound the wait. Non-TLS fds pass through; a signal interrupts the
 * wait with EINTR as the kernel's poll does (poll is never restarted). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

/* Waits with real poll/ppoll; `timeout_ms` < 0 waits forever. */
static int wait_real(struct pollfd *p, nfds_t n, int timeout_ms, const sigset_t *mask) {
  if (!mask) return real.poll(p, n, timeout_ms);
  struct timespec ts, *tsp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
    tsp = &ts;
  }
  return real.ppoll(p, n, tsp, mask);
}

static int remaining(int64_t end, int timeout_ms) {
  if (timeout_ms < 0) return -1;
  int64_t left = end - shim_now_ms();
  return left < 0 ? 0 : (int)left;
}

/* The core of poll/ppoll/select/pselect. */
int shim_poll(struct pollfd *fds, nfds_t n, int timeout_ms, const sigset_t *mask) {
  int any = 0;
  for (nfds_t i = 0; i < n && !any; i++) any = shim_is_tls(fds[i].fd);
  if (!any) return wait_real(fds, n, timeout_ms, mask);

  struct pollfd stack[64];
  struct pollfd *k = n <= 64 ? stack : malloc(n * sizeof(*k));
  short *ready = calloc(n ? n : 1, sizeof(short));
  if (!k || !ready) {
    if (k != stack) free(k);
    free(ready);
    errno = ENOMEM;
    return -1;
  }
  int64_t end = shim_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  int result;
  for (;;) {
    int ready_now = 0;
    int64_t deadline = INT64_MAX;
    for (nfds_t i = 0; i < n; i++) {
      k[i] = fds[i];
      k[i].revents = 0;
      ready[i] = 0;
      tconn *tc = tc_get(fds[i].fd);
      if (tc) {
        k[i].events = tc_poll_prepare(tc, fds[i].events, &ready[i], &deadline);
        if (ready[i]) ready_now = 1;
        tc_put(tc);
      }
    }
    int t = ready_now ? 0 : remaining(end, timeout_ms);
    if (deadline != INT64_MAX) {
      int64_t d = deadline - shim_now_ms();
      if (d < 0) d = 0;
      if (t < 0 || d < t) t = (int)d;
    }
    int r = wait_real(k, n, t, mask);
    if (r < 0) {
      result = -1;
      break;
    }
    int count = 0;
    for (nfds_t i = 0; i < n; i++) {
      tconn *tc = tc_get(fds[i].fd);
      short rev = k[i].revents;
      if (tc) {
        rev = (short)(tc_poll_check(tc, fds[i].events, rev) | ready[i]);
        tc_put(tc);
      }
      fds[i].revents = rev;
      if (rev) count++;
    }
    if (count || (timeout_ms >= 0 && remaining(end, timeout_ms) == 0)) {
      result = count;
      break;
    }
    /* only non-data bytes arrived on TLS fds: wait again for the time left */
  }
  if (k != stack) free(k);
  free(ready);
  return result;
}

int poll(struct pollfd *fds, nfds_t n, int timeout) {
  if (!real.poll) shim_resolve();
  return shim_poll(fds, n, timeout, NULL);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen) {
  return poll(fds, n, timeout);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask) {
  if (!real.ppoll) shim_resolve();
  int ms = ts ? (int)(ts->tv_sec * 1000 + ts->tv_nsec / 1000000) : -1;
  if (!mask) return shim_poll(fds, n, ms, NULL);
  return shim_poll(fds, n, ms, mask);
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask,
                size_t fdslen) {
  return ppoll(fds, n, ts, mask);
}

static int select_core(int nfds, fd_set *r, fd_set *w, fd_set *e, int ms, const sigset_t *mask) {
  int any = 0;
  for (int fd = 0; fd < nfds && !any; fd++)
    if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w))) any = shim_is_tls(fd);
  if (!any) {
    struct timeval tv, *tvp = NULL;
    if (ms >= 0) {
      tv.tv_sec = ms / 1000;
      tv.tv_usec = (ms % 1000) * 1000;
      tvp = &tv;
    }
    if (!mask) return real.select(nfds, r, w, e, tvp);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    return real.pselect(nfds, r, w, e, ms >= 0 ? &ts : NULL, mask);
  }
  struct pollfd *p = calloc((size_t)nfds, sizeof(*p));
  if (!p) {
    errno = ENOMEM;
    return -1;
  }
  nfds_t n = 0;
  for (int fd = 0; fd < nfds; fd++) {
    short ev = 0;
    if (r && FD_ISSET(fd, r)) ev |= POLLIN;
    if (w && FD_ISSET(fd, w)) ev |= POLLOUT;
    if (e && FD_ISSET(fd, e)) ev |= POLLPRI;
    if (ev) p[n++] = (struct pollfd){.fd = fd, .events = ev};
  }
  int rc = shim_poll(p, n, ms, mask);
  if (rc >= 0) {
    if (r) FD_ZERO(r);
    if (w) FD_ZERO(w);
    if (e) FD_ZERO(e);
    rc = 0;
    for (nfds_t i = 0; i < n; i++) {
      short v = p[i].revents;
      if (r && (p[i].events & POLLIN) && (v & (POLLIN | POLLHUP | POLLERR))) { FD_SET(p[i].fd, r); rc++; }
      if (w && (p[i].events & POLLOUT) && (v & (POLLOUT | POLLERR))) { FD_SET(p[i].fd, w); rc++; }
      if (e && (p[i].events & POLLPRI) && (v & POLLPRI)) { FD_SET(p[i].fd, e); rc++; }
      if (v & POLLNVAL) {
        free(p);
        errno = EBADF;
        return -1;
      }
    }
  }
  free(p);
  return rc;
}

int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv) {
  if (!real.select) shim_resolve();
  int ms = tv ? (int)(tv->tv_sec * 1000 + tv->tv_usec / 1000) : -1;
  return select_core(nfds, r, w, e, ms, NULL);
}

int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
            const sigset_t *mask) {
  if (!real.pselect) shim_resolve();
  int ms = ts ? (int)(ts->tv_sec * 1000 + ts->tv_nsec / 1000000) : -1;
  return select_core(nfds, r, w, e, ms, mask);
}

