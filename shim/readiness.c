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

  /* per fd: what was ready before the wait, and the connection held across it (the same object
   * is checked after the wait, and ends the wait it began, even if the fd is closed meanwhile) */
  struct slot {
    tconn *tc;
    short ready;
    uint8_t waits;
  };
  struct pollfd stack[64];
  struct pollfd *k = n <= 64 ? stack : malloc(n * sizeof(*k));
  struct slot *sl = calloc(n ? n : 1, sizeof(*sl));
  if (!k || !sl) {
    if (k != stack) free(k);
    free(sl);
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
      sl[i].ready = 0;
      sl[i].tc = tc_get(fds[i].fd);
      if (sl[i].tc) {
        k[i].events =
            tc_poll_prepare(sl[i].tc, fds[i].events, &sl[i].ready, &deadline, &sl[i].waits);
        if (sl[i].ready) ready_now = 1;
      }
    }
    int t = ready_now ? 0 : remaining(end, timeout_ms);
    if (deadline != INT64_MAX) {
      int64_t d = deadline - shim_now_ms();
      if (d < 0) d = 0;
      if (t < 0 || d < t) t = (int)d;
    }
    int r = wait_real(k, n, t, mask);
    int e = errno;
    int count = 0;
    for (nfds_t i = 0; i < n; i++) {
      tconn *tc = sl[i].tc;
      short rev = r < 0 ? 0 : k[i].revents;
      if (tc) {
        rev = (short)(tc_poll_check(tc, fds[i].events, rev, sl[i].waits) | sl[i].ready);
        tc_put(tc);
      }
      if (r >= 0) fds[i].revents = rev;
      if (rev) count++;
    }
    if (r < 0) {
      errno = e;
      result = -1;
      break;
    }
    if (count || (timeout_ms >= 0 && remaining(end, timeout_ms) == 0)) {
      result = count;
      break;
    }
    /* only non-data bytes arrived on TLS fds: wait again for the time left */
  }
  if (k != stack) free(k);
  free(sl);
  return result;
}

int poll(struct pollfd *fds, nfds_t n, int timeout) {
  if (!real.poll) shim_resolve();
  return shim_poll(fds, n, timeout, NULL);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen) {
  return poll(fds, n, timeout);
}

/* timeout_ms: a timespec (or timeval, as ns) as the milliseconds the wait uses — rounded up, so a
 * wait shorter than a millisecond still waits, capped at INT_MAX; -1 with EINVAL for a value the
 * kernel refuses (negative; for ppoll/pselect a fraction of a second out of range — select
 * carries microseconds over into seconds, as the kernel does). */
static int timeout_ms(long long sec, long long ns, int *ms, int normalize) {
  if (sec < 0 || ns < 0 || (!normalize && ns >= 1000000000LL)) {
    errno = EINVAL;
    return -1;
  }
  long long t = sec > 2147483LL || ns > 2147483647000000LL ? 2147483647LL
                                                            : sec * 1000 + (ns + 999999) / 1000000;
  *ms = t > 2147483647LL ? 2147483647 : (int)t;
  return 0;
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask) {
  if (!real.ppoll) shim_resolve();
  int ms = -1;
  if (ts && timeout_ms(ts->tv_sec, ts->tv_nsec, &ms, 0)) return -1;
  return shim_poll(fds, n, ms, mask);
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask,
                size_t fdslen) {
  return ppoll(fds, n, ts, mask);
}

/* any_tls: whether a set names a TLS fd (select on plain fds only is libc's own). */
static int any_tls(int nfds, fd_set *r, fd_set *w) {
  for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
    if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w))) && shim_is_tls(fd)) return 1;
  return 0;
}

static int select_core(int nfds, fd_set *r, fd_set *w, fd_set *e, int ms, const sigset_t *mask) {
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

/* select: as Linux's, the timeval is left holding the time not slept. */
int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv) {
  if (!real.select) shim_resolve();
  if (!any_tls(nfds, r, w)) return real.select(nfds, r, w, e, tv);
  int ms = -1;
  if (tv && timeout_ms(tv->tv_sec, (long long)tv->tv_usec * 1000, &ms, 1)) return -1;
  int64_t start = shim_now_ms();
  int rc = select_core(nfds, r, w, e, ms, NULL);
  if (tv) {
    int e_ = errno;
    int64_t left = (int64_t)ms - (shim_now_ms() - start);
    if (left < 0 || rc == 0) left = 0;
    tv->tv_sec = (time_t)(left / 1000);
    tv->tv_usec = (suseconds_t)((left % 1000) * 1000);
    errno = e_;
  }
  return rc;
}

int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
            const sigset_t *mask) {
  if (!real.pselect) shim_resolve();
  if (!any_tls(nfds, r, w)) return real.pselect(nfds, r, w, e, ts, mask);
  int ms = -1;
  if (ts && timeout_ms(ts->tv_sec, ts->tv_nsec, &ms, 0)) return -1;
  return select_core(nfds, r, w, e, ms, mask);
}

