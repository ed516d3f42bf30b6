/* fdtable.c — the table fd -> TLS connection, and a connection's memory. A connection is shared by
 * the fds that name it (dup) and pinned by every call in progress on it; the session ends when the
 * host closes its last fd, and the memory goes when the last pin goes (a thread still waiting in a
 * read when another closes the fd keeps the socket through a private dup, as the kernel keeps the
 * file of a call in progress).
 *
 * Connection objects are type-stable: freed ones go to a free list and are reused only as
 * connections, so `tc_get` can take a reference without a lock (it re-checks the slot). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

fdent *fdtab;
size_t fdtab_cap;
pid_t shim_pid;
atomic_int shim_live;
uint32_t shim_fork_gen = 1;
int shim_helper_fork;

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER; /* live list and free list */
static tconn *live_head, *free_head;

void fdtab_init(void) {
  if (fdtab) return;
  shim_pid = getpid();
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

/* A vfork child (or a raw clone) runs on its parent's memory without our fork handlers: it must not
 * change the table or any connection. glibc does not cache getpid, so this asks the kernel. */
int shim_foreign(void) { return (pid_t)syscall(SYS_getpid) != shim_pid; }

void shim_private_set(int fd, int on) {
  if (fdtab && fd >= 0 && (size_t)fd < fdtab_cap) __atomic_store_n(&fdtab[fd].priv, on, __ATOMIC_RELAXED);
}

int shim_private(int fd) {
  return fdtab && fd >= 0 && (size_t)fd < fdtab_cap && __atomic_load_n(&fdtab[fd].priv, __ATOMIC_RELAXED);
}

/* shim_private_move moves private descriptor fd to another number (the host is taking fd): the
 * new number, or -1 (fd left as it was). */
int shim_private_move(int fd) {
  int n = real.fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (n < 0) return -1;
  shim_private_set(n, 1);
  shim_private_set(fd, 0);
  real.close(fd);
  return n;
}

/* shim_close_range_skipping: the kernel's close_range over [first, last] (last ~0U: closefrom),
 * in pieces around our private descriptors. */
int shim_close_range_skipping(unsigned first, unsigned last, int flags) {
  unsigned from = first;
  size_t top = last < fdtab_cap ? (size_t)last + 1 : fdtab_cap;
  for (size_t fd = first; fdtab && fd < top; fd++) {
    if (!__atomic_load_n(&fdtab[fd].priv, __ATOMIC_RELAXED)) continue;
    if (fd > from && real.close_range(from, (unsigned)fd - 1, flags)) return -1;
    from = (unsigned)fd + 1;
  }
  if (from < first || from > last) return 0; /* wrapped, or nothing left after ours */
  return real.close_range(from, last, flags);
}

/* shim_private_vacate_conn: the host is taking number fd (dup2 onto it), which is our private dup
 * of a connection it closed while bytes were still going out: ours moves to another number, the
 * service thread watching it there, so the rest still reaches the peer. */
void shim_private_vacate_conn(int fd) {
  if (!shim_private(fd)) return;
  int saved = errno;
  tconn *found = NULL;
  pthread_mutex_lock(&live_mu);
  for (tconn *t = live_head; t && !found; t = t->live_next)
    if (t->private_fd && t->io_fd == fd) {
      atomic_fetch_add(&t->refs, 1);
      found = t;
    }
  pthread_mutex_unlock(&live_mu);
  if (found) {
    pthread_mutex_lock(&found->lock);
    if (found->private_fd && found->io_fd == fd) {
      svc_forget_locked(found); /* its registration is under the old number */
      int n = shim_private_move(fd);
      if (n >= 0) found->io_fd = n;
      if (found->lingering) svc_arm_locked(found);
    }
    pthread_mutex_unlock(&found->lock);
    tc_put(found);
  }
  errno = saved;
}

void live_lock(void) { pthread_mutex_lock(&live_mu); }
void live_unlock(void) { pthread_mutex_unlock(&live_mu); }
tconn *live_first(void) { return live_head; }

/* Before fork: no call may be half-way through any connection (its sequence numbers would be
 * copied mid-record), so every connection's lock is taken, in list order. */
void live_lock_all(void) {
  pthread_mutex_lock(&live_mu);
  for (tconn *t = live_head; t; t = t->live_next) pthread_mutex_lock(&t->lock);
}

/* After fork (the forking thread holds every lock). In the child, what belonged to the parent's
 * threads goes: a send in progress there, the service thread's registrations, and our private dups
 * of sockets the parent closed (a copy left open here would keep the peer from ever seeing the
 * connection end). */
void live_unlock_all(int child) {
  for (tconn *t = live_head; t; t = t->live_next) {
    if (child) { /* the service thread's list and the waits are the parent's threads' */
      t->timer_listed = t->cork_armed = 0;
      t->waiting = 0;
    }
    if (child && shim_helper_fork) { /* a finisher or relay: it takes what it needs itself */
      t->sending = 0;
      t->svc_reg = t->svc_armed = 0;
      t->lingering = 0;
    } else if (child) {
      t->sending = 0;
      t->svc_reg = t->svc_armed = 0;
      if (t->private_fd && t->io_fd >= 0) {
        shim_private_set(t->io_fd, 0);
        real.close(t->io_fd);
        t->io_fd = -1;
        t->private_fd = 0;
        t->lingering = 0;
        tc_mark_failed(t);
      }
    }
    pthread_mutex_unlock(&t->lock);
  }
  pthread_mutex_unlock(&live_mu);
}

static tconn *tconn_alloc(void) {
  pthread_mutex_lock(&live_mu);
  tconn *tc = free_head;
  if (tc) free_head = tc->free_next;
  pthread_mutex_unlock(&live_mu);
  if (!tc) {
    tc = calloc(1, sizeof(*tc));
    if (!tc) return NULL;
    pthread_mutex_init(&tc->lock, NULL);
  } else { /* the mutex (first member) stays valid for a pin racing with the reuse */
    memset((char *)tc + sizeof(tc->lock), 0, sizeof(*tc) - sizeof(tc->lock));
  }
  return tc;
}

tconn *tconn_new(int fd, int is_server, const char *servername, int sniff) {
  if (!fdtab || fd < 0 || (size_t)fd >= fdtab_cap) return NULL;
  tconn *tc = tconn_alloc();
  if (!tc) return NULL;
  tc->claim = claim_alloc(&tc->claim_slab);
  if (!tc->claim) goto fail;
  tc->holders = tc->claim + 1;
  tc->io_fd = fd;
  tc->is_server = is_server;
  tc->state = sniff ? ST_SNIFF : ST_TLS;
  tc->sniff_deadline_ms = shim_now_ms() + cfg.sniff_timeout_ms;
  tc->hs_deadline_ms = cfg.handshake_timeout_ms > 0 ? shim_now_ms() + cfg.handshake_timeout_ms : INT64_MAX;
  tc->k_in = tc->k_out = 1; /* unknown: a call will ask the socket */
  shim_reload_maybe(); /* certificates rotated since the last connection? */
  shim_metrics_maybe(); /* the process serving the metrics gone? this one takes over */
  sli_ctx *ctx = shim_ctx(is_server);
  int rc = ctx ? sli_conn_new_cbs(&tc->conn, ctx, tc_transport_read, tc_transport_write, tc,
                                  servername, 0)
               : SLI_E_CONFIG;
  if (rc) {
    shim_log(LOG_ERR_, "%s: cannot create a TLS connection: %s", tc_peer(tc), sli_err_name(rc));
    claim_free(tc->claim_slab);
    goto fail;
  }
  atomic_store(&tc->fdrefs, 0);
  atomic_store(&tc->refs, 1); /* the caller's, given to fdtab_install */
  pthread_mutex_lock(&live_mu);
  tc->live_next = live_head;
  if (live_head) live_head->live_prev = tc;
  live_head = tc;
  pthread_mutex_unlock(&live_mu);
  atomic_fetch_add(&shim_live, 1);
  return tc;
fail:
  pthread_mutex_lock(&live_mu);
  tc->free_next = free_head;
  free_head = tc;
  pthread_mutex_unlock(&live_mu);
  return NULL;
}

tconn *tc_get_slow(int fd) {
  for (;;) {
    tconn *tc = atomic_load_explicit(&fdtab[fd].tc, memory_order_acquire);
    if (!tc) return NULL;
    int r = atomic_load(&tc->refs);
    do {
      if (r == 0) break; /* being freed: the slot is about to change */
    } while (!atomic_compare_exchange_weak(&tc->refs, &r, r + 1));
    if (r == 0) continue;
    if (atomic_load_explicit(&fdtab[fd].tc, memory_order_acquire) == tc) return tc;
    tc_put(tc); /* the slot changed under us: try again */
  }
}

/* The last reference: the session was ended (or handed to the service thread) before. */
static void tconn_destroy(tconn *tc) {
  if (tc->private_fd && tc->io_fd >= 0) {
    shim_private_set(tc->io_fd, 0);
    real.close(tc->io_fd);
  }
  tc->io_fd = -1;
  tconn_free_engine(tc);
  claim_free(tc->claim_slab);
  atomic_fetch_sub(&shim_live, 1);
  pthread_mutex_lock(&live_mu);
  if (tc->live_prev) tc->live_prev->live_next = tc->live_next;
  else if (live_head == tc) live_head = tc->live_next;
  if (tc->live_next) tc->live_next->live_prev = tc->live_prev;
  tc->live_prev = tc->live_next = NULL;
  tc->free_next = free_head;
  free_head = tc;
  pthread_mutex_unlock(&live_mu);
}

void tc_put(tconn *tc) {
  if (atomic_fetch_sub(&tc->refs, 1) != 1) return;
  /* Last reference. If the host closed while a call was in progress, the session still has to
   * end (close_notify, queued output): do it now, in the background if it cannot finish at once. */
  pthread_mutex_lock(&tc->lock);
  int keep = 0;
  if (tc->host_closed && !tc->lingering) {
    atomic_store(&tc->refs, 1); /* tc_end_locked / the service thread may take it over */
    tc->host_closed = 0;
    tc_end_locked(tc);
    keep = atomic_fetch_sub(&tc->refs, 1) != 1;
  }
  pthread_mutex_unlock(&tc->lock);
  if (!keep) tconn_destroy(tc);
}

void fdtab_install(int fd, tconn *tc, int cloexec) {
  if (!fdtab || fd < 0 || (size_t)fd >= fdtab_cap) {
    tc_put(tc);
    return;
  }
  atomic_fetch_add(&tc->fdrefs, 1);
  fdtab[fd].cloexec = (uint8_t)cloexec;
  tconn *old = atomic_exchange(&fdtab[fd].tc, tc);
  if (old) { /* should not happen: the number was free */
    atomic_fetch_sub(&old->fdrefs, 1);
    tc_put(old);
  }
  if (fd <= 2) stdio_fd_became_tls(fd);
}

/* other_fd finds another fd naming `tc` (dup'd fds are rare: a scan is fine). */
static int other_fd(tconn *tc, int not_fd) {
  for (size_t i = 0; i < fdtab_cap; i++)
    if ((int)i != not_fd && atomic_load_explicit(&fdtab[i].tc, memory_order_relaxed) == tc)
      return (int)i;
  return -1;
}

/* drop removes fd's slot; with `end`, the last fd ends the session (fd must still be open). */
static void drop(int fd, int end) {
  if (!fdtab || fd < 0 || (size_t)fd >= fdtab_cap) return;
  fdtab[fd].listener = 0;
  tconn *tc = atomic_exchange(&fdtab[fd].tc, NULL);
  if (!tc) return;
  if (fd <= 2) stdio_fd_left_tls(fd);
  pthread_mutex_lock(&tc->lock);
  if (atomic_fetch_sub(&tc->fdrefs, 1) != 1) {
    if (tc->io_fd == fd && !tc->private_fd) {
      epoll_tc_unregister_all(tc, fd);
      svc_forget_locked(tc);
      tc->io_fd = other_fd(tc, fd);
    }
  } else {
    int last = atomic_fetch_sub(tc->holders, 1) == 1; /* no other process holds the socket */
    if (end) {
      /* the kernel's FIN comes from this close: a session nobody has used since a fork is ours
       * to end (close_notify), not left open for a process that no longer has it */
      if (last) tc_owned(tc);
      tc_end_locked(tc);
    } else { /* the number was reused behind our back: the socket is not ours to touch */
      epoll_tc_unregister_all(tc, -1);
      svc_forget_locked(tc);
      tc->io_fd = -1;
      tc_mark_failed(tc);
    }
  }
  pthread_mutex_unlock(&tc->lock);
  tc_put(tc);
}

void fdtab_close(int fd) { drop(fd, 1); }

void fdtab_drop_stale(int fd) {
  if (shim_is_tls(fd)) drop(fd, 0);
  else if (fdtab && fd >= 0 && (size_t)fd < fdtab_cap) fdtab[fd].listener = 0;
}

void fdtab_alias(int oldfd, int newfd, int cloexec) {
  if (!fdtab || newfd < 0 || (size_t)newfd >= fdtab_cap) return;
  if (shim_is_tls(newfd)) drop(newfd, 0); /* the caller ended it while it was still that socket */
  tconn *tc = tc_get(oldfd);
  fdtab[newfd].listener = (size_t)oldfd < fdtab_cap ? fdtab[oldfd].listener : 0;
  if (tc) {
    fdtab_install(newfd, tc, cloexec); /* the pin becomes the slot's reference */
    fdtab[newfd].placed_gen = shim_fork_gen;
  }
}
