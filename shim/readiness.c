/* readiness.c — poll, ppoll, select, pselect and epoll made truthful for TLS fds: plaintext
 * buffered inside TLS wakes the host, bytes that are not application data (a partial record, a
 * session ticket, a handshake message) do not, and a read that needs the socket writable (or the
 * reverse) waits on the right direction. Non-TLS fds pass through. */
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
static int poll_core(struct pollfd *fds, nfds_t n, int timeout_ms, const sigset_t *mask) {
  int any = 0;
  for (nfds_t i = 0; i < n && !any; i++) any = shim_tc(fds[i].fd) != NULL;
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
      tconn *tc = shim_tc(fds[i].fd);
      if (tc) {
        k[i].events = tc_poll_prepare(tc, fds[i].events, &ready[i], &deadline);
        if (ready[i]) ready_now = 1;
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
      tconn *tc = shim_tc(fds[i].fd);
      short rev = k[i].revents;
      if (tc) rev = (short)(tc_poll_check(tc, fds[i].events, rev) | ready[i]);
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
  return poll_core(fds, n, timeout, NULL);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen) {
  return poll(fds, n, timeout);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask) {
  if (!real.ppoll) shim_resolve();
  int ms = ts ? (int)(ts->tv_sec * 1000 + ts->tv_nsec / 1000000) : -1;
  if (!mask) return poll_core(fds, n, ms, NULL);
  return poll_core(fds, n, ms, mask);
}

static int select_core(int nfds, fd_set *r, fd_set *w, fd_set *e, int ms, const sigset_t *mask) {
  int any = 0;
  for (int fd = 0; fd < nfds && !any; fd++)
    if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w))) any = shim_tc(fd) != NULL;
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
  int rc = poll_core(p, n, ms, mask);
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

/* ---- epoll: the kernel's events carry the fd (we substitute data.u64 = fd at epoll_ctl and
 * keep the host's data here), so each event can be checked and given back the host's data. ---- */
typedef struct epent {
  uint32_t events;
  uint8_t used;
  epoll_data_t data;
} epent;
typedef struct epreg {
  pthread_mutex_t lock;
  epent *ents;
  size_t cap;
} epreg;

static epreg **regs; /* by epoll fd */
static size_t regs_cap;
static pthread_mutex_t regs_lock = PTHREAD_MUTEX_INITIALIZER;

static epreg *reg_get(int epfd, int create) {
  if (epfd < 0) return NULL;
  pthread_mutex_lock(&regs_lock);
  if ((size_t)epfd >= regs_cap) {
    if (!create) {
      pthread_mutex_unlock(&regs_lock);
      return NULL;
    }
    size_t cap = regs_cap ? regs_cap : 64;
    while (cap <= (size_t)epfd) cap *= 2;
    epreg **p = realloc(regs, cap * sizeof(*p));
    if (!p) {
      pthread_mutex_unlock(&regs_lock);
      return NULL;
    }
    memset(p + regs_cap, 0, (cap - regs_cap) * sizeof(*p));
    regs = p;
    regs_cap = cap;
  }
  epreg *r = regs[epfd];
  if (!r && create && (r = calloc(1, sizeof(*r)))) {
    pthread_mutex_init(&r->lock, NULL);
    regs[epfd] = r;
  }
  pthread_mutex_unlock(&regs_lock);
  return r;
}

/* fd was closed: the kernel dropped it from every epoll set (if it was the last reference), so
 * drop our records of it; if fd was itself an epoll fd, forget its registrations. */
void shim_epoll_forget(int epfd) {
  if (!regs || epfd < 0) return;
  int member = fdtab && (size_t)epfd < fdtab_cap && fdtab[epfd].epolled;
  int is_ep = (size_t)epfd < regs_cap && regs[epfd];
  if (!member && !is_ep) return; /* the common case: no lock */
  if (member) fdtab[epfd].epolled = 0;
  pthread_mutex_lock(&regs_lock);
  for (size_t i = 0; i < regs_cap; i++) {
    epreg *r = regs[i];
    if (r && (size_t)epfd < r->cap) {
      pthread_mutex_lock(&r->lock);
      r->ents[epfd].used = 0;
      pthread_mutex_unlock(&r->lock);
    }
  }
  pthread_mutex_unlock(&regs_lock);
  if ((size_t)epfd >= regs_cap || !regs[epfd]) return;
  pthread_mutex_lock(&regs_lock);
  epreg *r = regs[epfd];
  regs[epfd] = NULL;
  pthread_mutex_unlock(&regs_lock);
  if (r) {
    free(r->ents);
    free(r);
  }
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
  if (!real.epoll_ctl) shim_resolve();
  if (!cfg.active) return real.epoll_ctl(epfd, op, fd, ev);
  epreg *r = reg_get(epfd, 1);
  if (!r || fd < 0) return real.epoll_ctl(epfd, op, fd, ev);
  struct epoll_event mine;
  if (ev) {
    mine = *ev;
    mine.data.u64 = (uint64_t)(unsigned)fd;
  }
  int rc = real.epoll_ctl(epfd, op, fd, ev ? &mine : NULL);
  if (rc != 0) return rc;
  pthread_mutex_lock(&r->lock);
  if ((size_t)fd >= r->cap) {
    size_t cap = r->cap ? r->cap : 256;
    while (cap <= (size_t)fd) cap *= 2;
    epent *p = realloc(r->ents, cap * sizeof(*p));
    if (!p) {
      pthread_mutex_unlock(&r->lock);
      return rc;
    }
    memset(p + r->cap, 0, (cap - r->cap) * sizeof(*p));
    r->ents = p;
    r->cap = cap;
  }
  if (op == EPOLL_CTL_DEL) {
    r->ents[fd].used = 0;
  } else if (ev) {
    r->ents[fd].used = 1;
    if (fdtab && (size_t)fd < fdtab_cap) fdtab[fd].epolled = 1;
    r->ents[fd].events = ev->events;
    r->ents[fd].data = ev->data;
  }
  pthread_mutex_unlock(&r->lock);
  return rc;
}

static int epoll_core(int epfd, struct epoll_event *events, int max, int timeout,
                      const sigset_t *mask) {
  epreg *r = cfg.active ? reg_get(epfd, 0) : NULL;
  if (!r || max <= 0)
    return mask ? real.epoll_pwait(epfd, events, max, timeout, mask)
                : real.epoll_wait(epfd, events, max, timeout);
  int64_t end = shim_now_ms() + (timeout > 0 ? timeout : 0);
  for (;;) {
    /* 1. connections with plaintext the kernel cannot see */
    int n = 0;
    int flush_pending = 0;
    int64_t deadline = INT64_MAX; /* the nearest handshake or sniff deadline */
    tconn *hot[256];
    int nh = shim_hot_snapshot(hot, 256);
    for (int i = 0; i < nh; i++) {
      tconn *tc = hot[i];
      int fd = tc->io_fd;
      pthread_mutex_lock(&r->lock);
      int used = fd >= 0 && (size_t)fd < r->cap && r->ents[fd].used;
      epent e = used ? r->ents[fd] : (epent){0};
      pthread_mutex_unlock(&r->lock);
      if (used && n < max) {
        if (tc_has_output(tc)) {
          tc_flush(tc);
          if (tc_has_output(tc)) flush_pending = 1;
        }
        short rd = 0;
        tc_poll_prepare(tc, (short)(e.events & (EPOLLIN | EPOLLOUT)), &rd, &deadline);
        if (rd & (POLLIN | POLLOUT)) {
          events[n].events = (uint32_t)(rd & (POLLIN | POLLOUT));
          events[n].data = e.data;
          n++;
        }
      }
      tconn_release(tc);
    }
    /* 2. the kernel's events (without sleeping if we already have some) */
    int t = n ? 0 : remaining(end, timeout);
    if (flush_pending && (t < 0 || t > 10)) t = 10; /* retry unsent ciphertext soon */
    if (deadline != INT64_MAX) {
      int64_t dl = deadline - shim_now_ms() + 1;
      if (dl < 0) dl = 0;
      if (t < 0 || dl < t) t = (int)dl;
    }
    struct epoll_event kev[256];
    int kmax = max - n < 256 ? max - n : 256;
    int got = 0;
    if (kmax > 0) {
      got = mask ? real.epoll_pwait(epfd, kev, kmax, t, mask) : real.epoll_wait(epfd, kev, kmax, t);
      if (got < 0) return n ? n : -1;
    }
    int synth = n;
    for (int i = 0; i < got; i++) {
      int fd = (int)kev[i].data.u64;
      pthread_mutex_lock(&r->lock);
      int used = fd >= 0 && (size_t)fd < r->cap && r->ents[fd].used;
      epent e = used ? r->ents[fd] : (epent){0};
      pthread_mutex_unlock(&r->lock);
      if (!used) continue;
      uint32_t out = kev[i].events;
      tconn *tc = shim_tc(fd);
      if (tc) {
        short want = (short)(e.events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP));
        out = (uint32_t)(unsigned short)tc_poll_check(tc, want, (short)kev[i].events);
        if (!out) {
          if (e.events & EPOLLONESHOT) { /* the kernel disarmed it for nothing: re-arm */
            struct epoll_event re = {.events = e.events, .data.u64 = (uint64_t)(unsigned)fd};
            real.epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &re);
          }
          continue;
        }
      }
      int dup = 0;
      for (int j = 0; j < synth && !dup; j++)
        if (events[j].data.u64 == e.data.u64 && tc) {
          events[j].events |= out;
          dup = 1;
        }
      if (dup) continue;
      events[n].events = out;
      events[n].data = e.data;
      n++;
    }
    if (n || (timeout >= 0 && remaining(end, timeout) == 0)) return n;
  }
}

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout) {
  if (!real.epoll_wait) shim_resolve();
  return epoll_core(epfd, events, max, timeout, NULL);
}

int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout, const sigset_t *mask) {
  if (!real.epoll_pwait) shim_resolve();
  return epoll_core(epfd, events, max, timeout, mask);
}
