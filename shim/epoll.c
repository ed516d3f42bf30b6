/* epoll.c — epoll made truthful for TLS fds, with the host's semantics kept exactly.
 *
 * A TLS fd is registered with the kernel edge-triggered for everything (IN, OUT, RDHUP) whatever the
 * host asked, and the host's registration — events, level or edge, EPOLLONESHOT — is emulated here:
 * kernel edges and the shim's own changes (plaintext left buffered, a handshake finished, queued
 * output pushed out) put the registration on its set's ready list; epoll_wait evaluates only what is
 * on that list (cost proportional to what is ready, no cap), reports what the host asked for,
 * disarms a one-shot registration until EPOLL_CTL_MOD, and keeps a level-triggered one listed while
 * it stays ready. Handshake and optional-mode deadlines bound the wait. Other fds keep the host's own
 * registration; every kernel event carries a tag + the fd, and the host's data is kept here.
 *
 * Lock order: a connection's lock, then a set's lock (never the reverse). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "shim.h"

#define TAG_MASK 0xffff000000000000ULL
#define TAG_TLS 0x51c0000000000000ULL
#define TAG_ANY 0x51c1000000000000ULL
#define TAG_WAKE 0x51c2000000000000ULL
#define KERNEL_TLS_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/* kernel_tls_events: what a TLS fd is registered for in the kernel, whatever the host asked:
 * every edge (an exclusive registration cannot carry RDHUP: the kernel refuses it). */
static uint32_t kernel_tls_events(uint32_t host) {
  if (host & EPOLLEXCLUSIVE)
    return EPOLLIN | EPOLLOUT | EPOLLET | (host & (EPOLLEXCLUSIVE | EPOLLWAKEUP));
  return KERNEL_TLS_EVENTS | (host & EPOLLWAKEUP);
}

typedef struct ep_set ep_set;
struct ep_reg {
  ep_set *set;
  int fd;
  tconn *tc; /* a reference */
  uint32_t events;
  epoll_data_t data;
  uint64_t gen;
  uint8_t disarmed, queued, timed;
  int64_t deadline;
  uint64_t call_id; /* the epoll_wait call that last reported it, and where */
  int call_index;
  ep_reg *rnext;              /* the set's ready list */
  ep_reg *tprev, *tnext;      /* the set's timed list (handshake / sniff deadlines) */
  ep_reg *cnext;              /* the connection's registrations (under its lock) */
};

typedef struct ep_ent {
  uint8_t kind; /* 0 none, 1 another fd (host registration kept), 2 TLS */
  uint32_t events;
  epoll_data_t data;
  ep_reg *reg;
} ep_ent;

struct ep_set {
  pthread_mutex_t lock;
  atomic_int refs; /* the table's, and each call using it */
  int epfd;
  ep_ent *ents;
  size_t cap;
  ep_reg *rhead, *rtail;
  ep_reg *timed;
  int64_t next_deadline;
  int wake_fd;
  int sleepers;
};

static ep_set **sets; /* by epoll fd */
static size_t sets_cap;
static pthread_mutex_t sets_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_ullong gen_counter, call_counter;

static void set_free(ep_set *s) {
  if (s->wake_fd >= 0) real.close(s->wake_fd);
  free(s->ents);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* set_put drops a reference taken by get_set (or the table's). */
static void set_put(ep_set *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1) set_free(s);
}

/* get_set returns the set of `epfd` with a reference (set_put), making it if asked. */
static ep_set *get_set(int epfd, int create) {
  if (epfd < 0) return NULL;
  pthread_mutex_lock(&sets_mu);
  ep_set *s = (size_t)epfd < sets_cap ? sets[epfd] : NULL;
  if (!s && create) {
    if ((size_t)epfd >= sets_cap) {
      size_t cap = sets_cap ? sets_cap : 64;
      while (cap <= (size_t)epfd) cap *= 2;
      ep_set **p = realloc(sets, cap * sizeof(*p));
      if (!p) goto out;
      memset(p + sets_cap, 0, (cap - sets_cap) * sizeof(*p));
      sets = p;
      sets_cap = cap;
    }
    s = calloc(1, sizeof(*s));
    if (s) {
      pthread_mutex_init(&s->lock, NULL);
      s->epfd = epfd;
      s->wake_fd = -1;
      s->next_deadline = INT64_MAX;
      atomic_init(&s->refs, 1); /* the table's */
      sets[epfd] = s;
      if (fdtab && (size_t)epfd < fdtab_cap) fdtab[epfd].epset = 1;
    }
  }
out:
  if (s) atomic_fetch_add(&s->refs, 1);
  pthread_mutex_unlock(&sets_mu);
  return s;
}

/* sets_copy: every set, each with a reference (sets_release). */
static ep_set **sets_copy(size_t *n) {
  pthread_mutex_lock(&sets_mu);
  *n = sets_cap;
  ep_set **copy = sets_cap ? malloc(sets_cap * sizeof(*copy)) : NULL;
  for (size_t i = 0; copy && i < sets_cap; i++) {
    copy[i] = sets[i];
    if (copy[i]) atomic_fetch_add(&copy[i]->refs, 1);
  }
  if (!copy) *n = 0;
  pthread_mutex_unlock(&sets_mu);
  return copy;
}

static void sets_release(ep_set **copy, size_t n) {
  for (size_t i = 0; i < n; i++) set_put(copy[i]);
  free(copy);
}

static int ensure_cap(ep_set *s, int fd) {
  if ((size_t)fd < s->cap) return 0;
  size_t cap = s->cap ? s->cap : 256;
  while (cap <= (size_t)fd) cap *= 2;
  ep_ent *p = realloc(s->ents, cap * sizeof(*p));
  if (!p) return -1;
  memset(p + s->cap, 0, (cap - s->cap) * sizeof(*p));
  s->ents = p;
  s->cap = cap;
  return 0;
}

/* ---- lists (set lock held) ---- */

static void enqueue(ep_set *s, ep_reg *r) {
  if (r->queued) return;
  r->queued = 1;
  r->rnext = NULL;
  if (s->rtail) s->rtail->rnext = r;
  else s->rhead = r;
  s->rtail = r;
}

static void unqueue(ep_set *s, ep_reg *r) {
  if (!r->queued) return;
  ep_reg *prev = NULL;
  for (ep_reg *q = s->rhead; q; prev = q, q = q->rnext)
    if (q == r) {
      if (prev) prev->rnext = r->rnext;
      else s->rhead = r->rnext;
      if (s->rtail == r) s->rtail = prev;
      break;
    }
  r->queued = 0;
}

static void set_timed(ep_set *s, ep_reg *r, int64_t deadline) {
  r->deadline = deadline;
  if (deadline == INT64_MAX) {
    if (!r->timed) return;
    if (r->tprev) r->tprev->tnext = r->tnext;
    else s->timed = r->tnext;
    if (r->tnext) r->tnext->tprev = r->tprev;
    r->timed = 0;
    return;
  }
  if (!r->timed) {
    r->tprev = NULL;
    r->tnext = s->timed;
    if (s->timed) s->timed->tprev = r;
    s->timed = r;
    r->timed = 1;
  }
  if (deadline < s->next_deadline) s->next_deadline = deadline;
}

/* ---- registrations ---- */

static void wake(ep_set *s) { /* set lock held */
  if (s->wake_fd < 0) {
    s->wake_fd = real.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) return;
    struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u64 = TAG_WAKE};
    if (real.epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &e) != 0) {
      real.close(s->wake_fd);
      s->wake_fd = -1;
      return;
    }
  }
  uint64_t one = 1;
  if (real.write(s->wake_fd, &one, sizeof(one)) < 0) {}
}

static void notify(tconn *tc, int level_only) {
  for (ep_reg *r = tc->regs; r; r = r->cnext) {
    if (__atomic_load_n(&r->queued, __ATOMIC_RELAXED) || r->disarmed) continue;
    if (level_only && (r->events & EPOLLET)) continue;
    ep_set *s = r->set;
    pthread_mutex_lock(&s->lock);
    if (!r->disarmed && !r->queued) {
      enqueue(s, r);
      if (s->sleepers) wake(s);
    }
    pthread_mutex_unlock(&s->lock);
  }
}

/* epoll_tc_changed: tc's readiness may have changed outside epoll_wait, in a way the kernel will
 * not signal (a handshake finished, queued output went out, a decision was made); tc->lock held. */
void epoll_tc_changed(tconn *tc) { notify(tc, 0); }

/* epoll_tc_level: plaintext is still buffered after a read: level-triggered registrations report
 * it again (an edge-triggered one waits for new input, as the kernel's would). */
void epoll_tc_level(tconn *tc) { notify(tc, 1); }

/* unlink_reg removes r from its set (set lock held) and from its connection's list (tc lock
 * held); the caller drops the reference. */
static void unlink_reg(ep_reg *r) {
  ep_set *s = r->set;
  unqueue(s, r);
  set_timed(s, r, INT64_MAX);
  if ((size_t)r->fd < s->cap && s->ents[r->fd].reg == r) memset(&s->ents[r->fd], 0, sizeof(ep_ent));
  for (ep_reg **p = &r->tc->regs; *p; p = &(*p)->cnext)
    if (*p == r) {
      *p = r->cnext;
      break;
    }
}

void epoll_tc_unregister_all(tconn *tc, int fd) {
  while (tc->regs) {
    ep_reg *r = tc->regs;
    ep_set *s = r->set;
    pthread_mutex_lock(&s->lock);
    if (fd >= 0 && r->fd == fd) real.epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    unlink_reg(r);
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_sub(&tc->refs, 1); /* the caller holds another */
    free(r);
  }
}

/* make_tls_reg registers a TLS fd in s (the kernel registration is done by the caller). */
static int make_tls_reg(ep_set *s, int fd, tconn *tc, uint32_t events, epoll_data_t data) {
  ep_reg *r = calloc(1, sizeof(*r));
  if (!r) return -1;
  r->set = s;
  r->fd = fd;
  r->tc = tc; /* takes the caller's pin */
  r->events = events;
  r->data = data;
  r->gen = atomic_fetch_add(&gen_counter, 1) + 1;
  r->deadline = INT64_MAX;
  pthread_mutex_lock(&tc->lock);
  pthread_mutex_lock(&s->lock);
  if (ensure_cap(s, fd)) {
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&tc->lock);
    free(r);
    return -1;
  }
  s->ents[fd] = (ep_ent){.kind = 2, .events = events, .data = data, .reg = r};
  r->cnext = tc->regs;
  tc->regs = r;
  enqueue(s, r); /* the kernel reports a ready fd at once when it is added */
  if (s->sleepers) wake(s);
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_unlock(&tc->lock);
  return 0;
}

static int ctl(ep_set *s, int epfd, int op, int fd, struct epoll_event *ev);

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
  ENSURE(epoll_ctl);
  if (!cfg.active || fd < 0) return real.epoll_ctl(epfd, op, fd, ev);
  ep_set *s = get_set(epfd, 1);
  if (!s) return real.epoll_ctl(epfd, op, fd, ev);
  int rc = ctl(s, epfd, op, fd, ev);
  int e = errno;
  set_put(s);
  errno = e;
  return rc;
}

static int ctl(ep_set *s, int epfd, int op, int fd, struct epoll_event *ev) {
  tconn *tc = tc_get(fd);
  int rc;
  if (op == EPOLL_CTL_DEL) {
    rc = real.epoll_ctl(epfd, op, fd, ev);
    if (rc == 0) {
      pthread_mutex_lock(&s->lock);
      ep_reg *r = (size_t)fd < s->cap ? s->ents[fd].reg : NULL;
      tconn *rt = r ? r->tc : NULL;
      if (!r && (size_t)fd < s->cap) memset(&s->ents[fd], 0, sizeof(ep_ent));
      if (rt) atomic_fetch_add(&rt->refs, 1);
      pthread_mutex_unlock(&s->lock);
      if (rt) {
        pthread_mutex_lock(&rt->lock);
        pthread_mutex_lock(&s->lock);
        int still = (size_t)fd < s->cap && s->ents[fd].reg == r;
        if (still) unlink_reg(r);
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_unlock(&rt->lock);
        if (still) {
          free(r);
          tc_put(rt);
        }
        tc_put(rt);
      }
    }
    if (tc) tc_put(tc);
    return rc;
  }
  if (!ev) {
    if (tc) tc_put(tc);
    errno = EFAULT;
    return -1;
  }
  if (!tc) { /* another fd: the host's registration, our tag */
    struct epoll_event mine = {.events = ev->events, .data.u64 = TAG_ANY | (uint32_t)fd};
    rc = real.epoll_ctl(epfd, op, fd, &mine);
    if (rc == 0) {
      pthread_mutex_lock(&s->lock);
      if (ensure_cap(s, fd) == 0)
        s->ents[fd] = (ep_ent){.kind = 1, .events = ev->events, .data = ev->data};
      pthread_mutex_unlock(&s->lock);
      if ((size_t)fd < fdtab_cap) fdtab[fd].epolled = 1;
    }
    return rc;
  }
  if (op == EPOLL_CTL_ADD) {
    /* the kernel's rule for EPOLLEXCLUSIVE (checked here: it no longer sees the host's mask) */
    if ((ev->events & EPOLLEXCLUSIVE) &&
        (ev->events & ~(uint32_t)(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET |
                                  EPOLLEXCLUSIVE))) {
      tc_put(tc);
      errno = EINVAL;
      return -1;
    }
    struct epoll_event mine = {.events = kernel_tls_events(ev->events),
                               .data.u64 = TAG_TLS | (uint32_t)fd};
    rc = real.epoll_ctl(epfd, op, fd, &mine);
    if (rc == 0) {
      if ((size_t)fd < fdtab_cap) fdtab[fd].epolled = 1;
      if (make_tls_reg(s, fd, tc, ev->events, ev->data) == 0) return 0; /* the pin is the reg's */
      real.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
      errno = ENOMEM;
      rc = -1;
    }
    tc_put(tc);
    return rc;
  }
  if (op != EPOLL_CTL_MOD) {
    tc_put(tc);
    errno = EINVAL;
    return -1;
  }
  /* MOD of a TLS fd: the kernel registration stays; the host's is emulated */
  if (ev->events & EPOLLEXCLUSIVE) {
    tc_put(tc);
    errno = EINVAL;
    return -1;
  }
  pthread_mutex_lock(&tc->lock);
  pthread_mutex_lock(&s->lock);
  ep_ent *e = (size_t)fd < s->cap ? &s->ents[fd] : NULL;
  rc = 0;
  if (!e || !e->kind) {
    errno = ENOENT;
    rc = -1;
  } else if (e->kind == 2 && e->reg->tc == tc) {
    if (e->reg->events & EPOLLEXCLUSIVE) { /* the kernel refuses MOD of an exclusive one */
      errno = EINVAL;
      rc = -1;
    } else {
      e->reg->events = ev->events;
      e->reg->data = ev->data;
      e->events = ev->events;
      e->data = ev->data;
      e->reg->disarmed = 0;
      enqueue(s, e->reg); /* a MOD re-evaluates readiness, as the kernel's does */
      if (s->sleepers) wake(s);
    }
  } else {
    rc = 1; /* registered before it became TLS: converted below */
  }
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_unlock(&tc->lock);
  if (rc == 1) {
    struct epoll_event mine = {.events = KERNEL_TLS_EVENTS, .data.u64 = TAG_TLS | (uint32_t)fd};
    rc = real.epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &mine);
    if (rc == 0 && make_tls_reg(s, fd, tc, ev->events, ev->data) == 0) return 0;
  }
  tc_put(tc);
  return rc;
}

/* epoll_fd_became_tls: fd was registered before it became a TLS connection (connect after
 * EPOLL_CTL_ADD): its registrations switch to the emulated kind. */
void epoll_fd_became_tls(int fd) {
  if (!sets || !fdtab || fd < 0 || (size_t)fd >= fdtab_cap || !fdtab[fd].epolled) return;
  size_t n;
  ep_set **copy = sets_copy(&n);
  for (size_t i = 0; copy && i < n; i++) {
    ep_set *s = copy[i];
    if (!s) continue;
    pthread_mutex_lock(&s->lock);
    ep_ent e = (size_t)fd < s->cap ? s->ents[fd] : (ep_ent){0};
    pthread_mutex_unlock(&s->lock);
    if (e.kind != 1) continue;
    tconn *tc = tc_get(fd);
    if (!tc) break;
    struct epoll_event mine = {.events = kernel_tls_events(e.events),
                               .data.u64 = TAG_TLS | (uint32_t)fd};
    if (real.epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &mine) != 0 ||
        make_tls_reg(s, fd, tc, e.events, e.data) != 0)
      tc_put(tc);
  }
  sets_release(copy, n);
}

/* epoll_fd_left_tls: a connect to a target failed, the fd is a plain socket again: its
 * registrations go back to the host's own (kernel registration included). tc->lock not held. */
void epoll_fd_left_tls(int fd, tconn *tc) {
  pthread_mutex_lock(&tc->lock);
  for (ep_reg **pp = &tc->regs; *pp;) {
    ep_reg *r = *pp;
    if (r->fd != fd) {
      pp = &r->cnext;
      continue;
    }
    ep_set *s = r->set;
    pthread_mutex_lock(&s->lock);
    struct epoll_event host = {.events = r->events & ~(uint32_t)(EPOLLEXCLUSIVE),
                               .data.u64 = TAG_ANY | (uint32_t)fd};
    if (!r->disarmed) real.epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &host);
    uint32_t ev = r->events;
    epoll_data_t data = r->data;
    unlink_reg(r); /* also takes it off tc->regs */
    if ((size_t)fd < s->cap) s->ents[fd] = (ep_ent){.kind = 1, .events = ev, .data = data};
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_sub(&tc->refs, 1);
    free(r);
  }
  pthread_mutex_unlock(&tc->lock);
}

/* epoll_fd_closed: fd is being closed by the host. If it is an epoll fd, its set goes; if it is a
 * member, its registrations go (a TLS fd is deleted from the kernel set explicitly: a private dup
 * of the socket may outlive the host's fd, and the kernel keeps a registration until the last). */
void epoll_fd_closed(int fd) {
  if (!sets || fd < 0) return;
  int member = fdtab && (size_t)fd < fdtab_cap && fdtab[fd].epolled;
  int is_set = (size_t)fd < sets_cap && sets[fd];
  if (!member && !is_set) return; /* the common case: no lock */
  if (member) {
    fdtab[fd].epolled = 0;
    size_t n;
    ep_set **copy = sets_copy(&n);
    for (size_t i = 0; copy && i < n; i++) {
      ep_set *s = copy[i];
      if (!s) continue;
      pthread_mutex_lock(&s->lock);
      ep_ent *e = (size_t)fd < s->cap ? &s->ents[fd] : NULL;
      ep_reg *r = e && e->kind == 2 ? e->reg : NULL;
      tconn *rt = r ? r->tc : NULL;
      if (e && e->kind == 1) memset(e, 0, sizeof(*e));
      if (rt) atomic_fetch_add(&rt->refs, 1);
      pthread_mutex_unlock(&s->lock);
      if (!rt) continue;
      pthread_mutex_lock(&rt->lock);
      pthread_mutex_lock(&s->lock);
      int still = (size_t)fd < s->cap && s->ents[fd].reg == r;
      if (still) {
        real.epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
        unlink_reg(r);
      }
      pthread_mutex_unlock(&s->lock);
      pthread_mutex_unlock(&rt->lock);
      if (still) {
        free(r);
        tc_put(rt);
      }
      tc_put(rt);
    }
    sets_release(copy, n);
  }
  if (is_set) {
    pthread_mutex_lock(&sets_mu);
    ep_set *s = (size_t)fd < sets_cap ? sets[fd] : NULL;
    if (s) sets[fd] = NULL;
    if (fdtab && (size_t)fd < fdtab_cap) fdtab[fd].epset = 0;
    pthread_mutex_unlock(&sets_mu);
    if (!s) return;
    for (size_t i = 0;;) { /* drop every TLS registration (connection lock first) */
      pthread_mutex_lock(&s->lock);
      ep_reg *r = NULL;
      size_t at = 0;
      for (; i < s->cap && !r; i++)
        if (s->ents[i].kind == 2) {
          r = s->ents[i].reg;
          at = i;
        }
      tconn *rt = r ? r->tc : NULL;
      if (rt) atomic_fetch_add(&rt->refs, 1);
      pthread_mutex_unlock(&s->lock);
      if (!r) break;
      pthread_mutex_lock(&rt->lock);
      pthread_mutex_lock(&s->lock);
      int still = at < s->cap && s->ents[at].reg == r;
      if (still) unlink_reg(r);
      pthread_mutex_unlock(&s->lock);
      pthread_mutex_unlock(&rt->lock);
      if (still) {
        free(r);
        tc_put(rt);
      }
      tc_put(rt);
    }
    set_put(s); /* the table's reference: freed once no call uses it */
  }
}

/* ---- waiting ---- */

typedef struct out_list {
  struct epoll_event *ev;
  int n, max;
  uint64_t call;
} out_list;

/* still_reg: r is still the registration of fd in s (set lock held). r may have been freed: it is
 * only compared until the set says it is alive; then its generation rules out a reuse. */
static int still_reg(ep_set *s, ep_reg *r, int fd, uint64_t gen) {
  return fd >= 0 && (size_t)fd < s->cap && s->ents[fd].reg == r && r->gen == gen;
}

/* evaluate runs one TLS registration: tc pinned, no lock held. Reports into `o`. */
static void evaluate(ep_set *s, ep_reg *r, int fd, uint64_t gen, tconn *tc, uint32_t kev,
                     out_list *o) {
  pthread_mutex_lock(&tc->lock);
  if (kev & EPOLLIN) tc->k_in = 1;
  if (kev & EPOLLOUT) tc->k_out = 1;
  if (kev & EPOLLRDHUP) tc->k_rdhup = 1;
  if (kev & EPOLLHUP) tc->k_hup = tc->k_in = 1;
  if (kev & EPOLLERR) tc->k_err = tc->k_in = 1;
  pthread_mutex_lock(&s->lock);
  int valid = still_reg(s, r, fd, gen);
  uint32_t events = valid ? r->events : 0;
  int disarmed = valid ? r->disarmed : 1;
  pthread_mutex_unlock(&s->lock);
  if (!valid || disarmed) {
    pthread_mutex_unlock(&tc->lock);
    return;
  }
  short want = (short)(events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI));
  if (tc->olen && tc->k_out) flush_locked(tc);
  uint32_t got = (uint16_t)tc_ready_locked(tc, want) & (events | EPOLLERR | EPOLLHUP);
  int64_t deadline = tc_deadline_locked(tc);
  pthread_mutex_lock(&s->lock);
  if (still_reg(s, r, fd, gen) && !r->disarmed) {
    set_timed(s, r, deadline);
    if (got) {
      if (r->call_id == o->call) { /* already reported by this call: merge */
        o->ev[r->call_index].events |= got;
        if (!(events & (EPOLLONESHOT | EPOLLET))) enqueue(s, r); /* level: stays listed */
      } else if (o->n < o->max) {
        r->call_id = o->call;
        r->call_index = o->n;
        o->ev[o->n].events = got;
        o->ev[o->n].data = r->data;
        o->n++;
        if (events & EPOLLONESHOT) r->disarmed = 1;
        else if (!(events & EPOLLET)) enqueue(s, r); /* level: listed while it stays ready */
      } else {
        enqueue(s, r); /* no room this time */
      }
    }
  }
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_unlock(&tc->lock);
}

/* kernel_events collects what the kernel has (waiting up to `t` ms): another fd's events are
 * reported as they are, a TLS fd's are turned into readiness by `evaluate` (what finds no room in
 * `o` stays listed, nothing is lost). Returns the kernel's count, or -1 with errno. */
static int kernel_events(ep_set *s, int epfd, int t, const sigset_t *mask, out_list *o) {
  struct epoll_event kev[256];
  int kmax = o->max - o->n < 256 ? o->max - o->n : 256;
  if (kmax <= 0) return 0;
  if (t) {
    pthread_mutex_lock(&s->lock);
    s->sleepers++;
    pthread_mutex_unlock(&s->lock);
  }
  int got = mask ? real.epoll_pwait(epfd, kev, kmax, t, mask) : real.epoll_wait(epfd, kev, kmax, t);
  int err = errno;
  if (t) {
    pthread_mutex_lock(&s->lock);
    s->sleepers--;
    pthread_mutex_unlock(&s->lock);
  }
  if (got < 0) {
    errno = err;
    return -1;
  }
  for (int i = 0; i < got; i++) {
    uint64_t tag = kev[i].data.u64 & TAG_MASK;
    int fd = (int)(uint32_t)kev[i].data.u64;
    if (kev[i].data.u64 == TAG_WAKE) {
      uint64_t v;
      if (s->wake_fd >= 0 && real.read(s->wake_fd, &v, sizeof(v)) < 0) {}
      continue;
    }
    pthread_mutex_lock(&s->lock);
    ep_ent *e = fd >= 0 && (size_t)fd < s->cap ? &s->ents[fd] : NULL;
    if (tag == TAG_ANY) {
      if (e && e->kind == 1 && o->n < o->max) {
        o->ev[o->n].events = kev[i].events;
        o->ev[o->n].data = e->data;
        o->n++;
      }
      pthread_mutex_unlock(&s->lock);
      continue;
    }
    ep_reg *r = tag == TAG_TLS && e && e->kind == 2 ? e->reg : NULL;
    if (!r) {
      pthread_mutex_unlock(&s->lock);
      continue; /* a registration that went away */
    }
    uint64_t gen = r->gen;
    tconn *tc = r->tc;
    atomic_fetch_add(&tc->refs, 1);
    pthread_mutex_unlock(&s->lock);
    evaluate(s, r, fd, gen, tc, kev[i].events, o);
    tc_put(tc);
  }
  return got;
}

/* listed_events evaluates what is on the set's ready list, first come first served; a
 * level-triggered registration reported now goes back to the end of the list. */
static void listed_events(ep_set *s, out_list *o) {
  int64_t now = shim_now_ms();
  pthread_mutex_lock(&s->lock);
  if (now >= s->next_deadline) {
    s->next_deadline = INT64_MAX;
    for (ep_reg *r = s->timed; r; r = r->tnext) {
      if (r->deadline <= now) enqueue(s, r);
      else if (r->deadline < s->next_deadline) s->next_deadline = r->deadline;
    }
  }
  ep_reg *batch = s->rhead;
  s->rhead = s->rtail = NULL;
  int nb = 0;
  for (ep_reg *r = batch; r; r = r->rnext) nb++;
  struct pend { ep_reg *r; int fd; uint64_t gen; tconn *tc; } stackp[64], *pend = stackp;
  if (nb > 64 && !(pend = malloc((size_t)nb * sizeof(*pend)))) {
    pend = stackp;
    nb = 64;
  }
  int k = 0;
  for (ep_reg *r = batch, *next; r; r = next) {
    next = r->rnext;
    r->queued = 0;
    if (k < nb) {
      pend[k].r = r;
      pend[k].fd = r->fd;
      pend[k].gen = r->gen;
      pend[k].tc = r->tc;
      atomic_fetch_add(&r->tc->refs, 1);
      k++;
    } else {
      enqueue(s, r);
    }
  }
  pthread_mutex_unlock(&s->lock);
  for (int i = 0; i < k; i++) {
    evaluate(s, pend[i].r, pend[i].fd, pend[i].gen, pend[i].tc, 0, o);
    tc_put(pend[i].tc);
  }
  if (pend != stackp) free(pend);
}

static int wait_set(ep_set *s, int epfd, struct epoll_event *events, int max, int timeout,
                    const sigset_t *mask);

static int epoll_core(int epfd, struct epoll_event *events, int max, int timeout,
                      const sigset_t *mask) {
  ep_set *s = cfg.active && max > 0 ? get_set(epfd, 1) : NULL;
  if (!s)
    return mask ? real.epoll_pwait(epfd, events, max, timeout, mask)
                : real.epoll_wait(epfd, events, max, timeout);
  int n = wait_set(s, epfd, events, max, timeout, mask);
  int e = errno;
  set_put(s);
  errno = e;
  return n;
}

static int wait_set(ep_set *s, int epfd, struct epoll_event *events, int max, int timeout,
                    const sigset_t *mask) {
  int64_t end = shim_now_ms() + (timeout > 0 ? timeout : 0);
  out_list o = {.ev = events, .n = 0, .max = max};
  for (;;) {
    o.call = atomic_fetch_add(&call_counter, 1) + 1;
    o.n = 0;
    /* 1. the kernel first (so a listed connection never starves the rest), without waiting if
     * anything is listed; then 2. the list (what the kernel said is on it now, with the shim's
     * own changes, level-triggered registrations still ready, deadlines due). */
    pthread_mutex_lock(&s->lock);
    int listed = s->rhead != NULL || shim_now_ms() >= s->next_deadline;
    int t = listed ? 0 : (timeout < 0 ? -1 : (int)(end - shim_now_ms() < 0 ? 0 : end - shim_now_ms()));
    if (s->next_deadline != INT64_MAX) {
      int64_t dl = s->next_deadline - shim_now_ms() + 1;
      if (dl < 0) dl = 0;
      if (t < 0 || dl < t) t = (int)dl;
    }
    pthread_mutex_unlock(&s->lock);
    if (kernel_events(s, epfd, t, mask, &o) < 0) {
      if (o.n) return o.n;
      return -1;
    }
    if (o.n < max) listed_events(s, &o);
    if (o.n) {
      pthread_mutex_lock(&s->lock);
      int more = s->rhead != NULL && s->sleepers; /* level-triggered ones others may take */
      if (more) wake(s);
      pthread_mutex_unlock(&s->lock);
      return o.n;
    }
    if (timeout >= 0 && shim_now_ms() >= end) return 0;
  }
}

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout) {
  ENSURE(epoll_wait);
  return epoll_core(epfd, events, max, timeout, NULL);
}

int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout, const sigset_t *mask) {
  ENSURE(epoll_pwait);
  return epoll_core(epfd, events, max, timeout, mask);
}

/* epoll_pwait2: a timespec timeout. While the shim is active the wait is the others' (its timeout
 * rounded up to the next millisecond: never shorter than asked); otherwise libc's own. */
int epoll_pwait2(int epfd, struct epoll_event *events, int max, const struct timespec *timeout,
                 const sigset_t *mask) {
  ENSURE(epoll_pwait2);
  if (!cfg.active || max <= 0 || !real.epoll_pwait) return real.epoll_pwait2(epfd, events, max, timeout, mask);
  int ms = -1;
  if (timeout) {
    if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L) {
      errno = EINVAL;
      return -1;
    }
    long long t = (long long)timeout->tv_sec * 1000 + (timeout->tv_nsec + 999999) / 1000000;
    ms = t > 0x7fffffff ? 0x7fffffff : (int)t;
  }
  return epoll_core(epfd, events, max, ms, mask);
}

int epoll_create(int size) {
  ENSURE(epoll_create);
  int fd = real.epoll_create(size);
  if (fd >= 0 && !shim_foreign()) {
    fdtab_drop_stale(fd);
    epoll_fd_closed(fd); /* a set left under that number by a close we did not see */
    if (cfg.active) set_put(get_set(fd, 1)); /* a thread may wait on it before anything is added */
  }
  return fd;
}

int epoll_create1(int flags) {
  ENSURE(epoll_create1);
  int fd = real.epoll_create1(flags);
  if (fd >= 0 && !shim_foreign()) {
    fdtab_drop_stale(fd);
    epoll_fd_closed(fd);
    if (cfg.active) set_put(get_set(fd, 1));
  }
  return fd;
}

/* In a forked child: the sets are the parent's kernel objects, shared; only our locks and the
 * count of sleeping threads are reset. */
void epoll_after_fork_child(void) {
  pthread_mutex_init(&sets_mu, NULL);
  for (size_t i = 0; i < sets_cap; i++)
    if (sets[i]) {
      pthread_mutex_init(&sets[i]->lock, NULL);
      sets[i]->sleepers = 0;
    }
}
