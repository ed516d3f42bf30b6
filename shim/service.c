/* service.c — the shim's one background thread, started the first time it is needed. It does what
 * the kernel does for a plain socket without the host's help:
 * - ciphertext the kernel could not take when the host wrote (the host got its bytes accepted) is
 *   pushed as soon as the socket has room, even if the host now only waits to read;
 * - plaintext the host wrote before its session was up is sent once it is: the handshake (or the
 *   optional-mode decision) is run here when the host does not come back to that connection;
 * - a connection the host closed while bytes were still queued (or before its handshake finished,
 *   or undecided in optional mode) is finished in the background — the rest of the data, then
 *   close_notify — on a private dup of the socket, so close() returns at once. A lingering close
 *   gives up after LINGER_MS.
 * The thread blocks every signal (the host's handlers never run on it) and does not exist in a
 * forked child until the child needs it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "shim.h"

#define LINGER_MS 30000
#define TICK_MS 100

static int svc_ep = -1, svc_wake = -1;
static int running;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* start-up and the linger list */
static tconn *lingering;
static tconn *timed; /* connections to look at again at their timer_ms (corked bytes, deadlines) */
static char wake_marker;

static void *loop(void *arg);

/* ---- the shim's threads (this one, and metrics.c's) ---- */

typedef struct start_info {
  void *(*fn)(void *);
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int running;
} start_info;

static void *trampoline(void *arg) {
  start_info *si = arg;
  void *(*fn)(void *) = si->fn;
  pthread_mutex_lock(&si->mu);
  si->running = 1;
  pthread_cond_signal(&si->cv);
  pthread_mutex_unlock(&si->mu); /* si (the starter's stack) is not touched after this */
  return fn(NULL);
}

int shim_thread_start(void *(*fn)(void *), size_t stack) {
  start_info si = {.fn = fn, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the host's handlers never run on our threads */
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&a, stack);
  int rc = pthread_create(&t, &a, trampoline, &si);
  pthread_attr_destroy(&a);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  /* Back to the host only once the thread runs our code: a fork in between would copy a thread
   * half-way through its start-up, holding whatever its runtime holds then (ASan's allocator lock,
   * for one: the child's next malloc waited forever). */
  pthread_mutex_lock(&si.mu);
  while (!rc && !si.running) pthread_cond_wait(&si.cv, &si.mu);
  pthread_mutex_unlock(&si.mu);
  return rc;
}

/* wake the thread (the number read under `mu`: svc_vacate may move it). */
static void wake(void) {
  uint64_t one = 1;
  pthread_mutex_lock(&mu);
  if (svc_wake >= 0 && real.write(svc_wake, &one, sizeof(one)) < 0) {}
  pthread_mutex_unlock(&mu);
}

/* svc_vacate: the host is taking number fd (dup2 onto it), one of the thread's own: it moves. */
void svc_vacate(int fd) {
  if (fd < 0 || !shim_private(fd)) return;
  pthread_mutex_lock(&mu);
  int *slot = fd == svc_ep ? &svc_ep : fd == svc_wake ? &svc_wake : NULL;
  if (slot) {
    int n = shim_private_move(fd);
    if (n >= 0) *slot = n; /* the thread's epoll_wait on the old number holds the file until it
                              returns */
  }
  pthread_mutex_unlock(&mu);
}

static int ensure_started(void) {
  if (__atomic_load_n(&running, __ATOMIC_ACQUIRE)) return 0;
  pthread_mutex_lock(&mu);
  if (!running) {
    svc_ep = real.epoll_create1(EPOLL_CLOEXEC);
    svc_wake = real.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    shim_private_set(svc_ep, 1); /* a host closing every descriptor must not close these */
    shim_private_set(svc_wake, 1);
    if (svc_ep >= 0 && svc_wake >= 0) {
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_marker};
      real.epoll_ctl(svc_ep, EPOLL_CTL_ADD, svc_wake, &ev);
      if (shim_thread_start(loop, 256 * 1024) == 0) __atomic_store_n(&running, 1, __ATOMIC_RELEASE);
    }
    if (!running) {
      shim_private_set(svc_ep, 0);
      shim_private_set(svc_wake, 0);
      if (svc_ep >= 0) real.close(svc_ep);
      if (svc_wake >= 0) real.close(svc_wake);
      svc_ep = svc_wake = -1;
      shim_log(LOG_WARN_, "cannot start the service thread: queued TLS output waits for the host's "
                          "next call");
    }
  }
  pthread_mutex_unlock(&mu);
  return running ? 0 : -1;
}

/* watch registers (or re-arms) tc: one shot, for the directions the session needs now. */
static void watch(tconn *tc) {
  if (tc->io_fd < 0 || ensure_started()) return;
  uint32_t ev = EPOLLONESHOT;
  if (tc->olen) ev |= EPOLLOUT;
  int drive = tc_needs_drive_locked(tc);
  if ((tc->lingering || (tc->shut_wr && !tc->notify_sent) || drive) &&
      (tc->state == ST_SNIFF || (tc->state == ST_TLS && !sli_conn_is_secured(tc->conn))))
    ev |= EPOLLIN | EPOLLRDHUP; /* a handshake or a decision needs input */
  if (drive && tc->connecting) ev |= EPOLLOUT; /* a client's connect completes */
  if (drive) svc_timer_locked(tc, tc_drive_deadline_locked(tc));
  if (!(ev & (EPOLLIN | EPOLLOUT))) ev |= EPOLLOUT;
  struct epoll_event e = {.events = ev, .data.ptr = tc};
  if (!tc->svc_reg) {
    if (real.epoll_ctl(svc_ep, EPOLL_CTL_ADD, tc->io_fd, &e) == 0) {
      tc->svc_reg = 1;
      atomic_fetch_add(&tc->refs, 1); /* the registration keeps the connection */
    }
  } else {
    real.epoll_ctl(svc_ep, EPOLL_CTL_MOD, tc->io_fd, &e);
  }
  tc->svc_armed = tc->svc_reg;
}

void svc_arm_locked(tconn *tc) {
  if (!tc->svc_armed) watch(tc);
}

void svc_linger_locked(tconn *tc) {
  tc->lingering = 1;
  tc->linger_deadline_ms = shim_now_ms() + LINGER_MS;
  pthread_mutex_lock(&mu);
  tc->linger_next = lingering;
  lingering = tc;
  pthread_mutex_unlock(&mu);
  watch(tc);
  if (!tc->svc_reg) { /* no thread: nothing more can be done */
    pthread_mutex_lock(&mu);
    for (tconn **p = &lingering; *p; p = &(*p)->linger_next)
      if (*p == tc) {
        *p = tc->linger_next;
        break;
      }
    pthread_mutex_unlock(&mu);
    tc->lingering = 0;
    return;
  }
  wake(); /* recompute the timeout */
}

/* svc_timer_locked: the service thread looks at tc again at `when` (tc->lock held): corked bytes
 * due, the deadline of a session it drives. An earlier time replaces a later one. */
void svc_timer_locked(tconn *tc, int64_t when) {
  if (when == INT64_MAX || ensure_started()) return; /* no deadline */
  pthread_mutex_lock(&mu);
  if (!tc->timer_listed) {
    atomic_fetch_add(&tc->refs, 1); /* the list keeps the connection */
    tc->timer_listed = 1;
    tc->timer_ms = when;
    tc->timer_next = timed;
    timed = tc;
  } else if (when < tc->timer_ms) {
    tc->timer_ms = when;
  } else {
    pthread_mutex_unlock(&mu);
    return;
  }
  pthread_mutex_unlock(&mu);
  wake(); /* recompute the timeout */
}

/* svc_untimer_locked: tc leaves the timer list (the host closed it: a reference held by the list
 * must not read as another thread's call in progress). tc->lock held. */
void svc_untimer_locked(tconn *tc) {
  int had = 0;
  pthread_mutex_lock(&mu);
  if (tc->timer_listed) {
    for (tconn **p = &timed; *p; p = &(*p)->timer_next)
      if (*p == tc) {
        *p = tc->timer_next;
        break;
      }
    tc->timer_listed = 0;
    had = 1;
  }
  pthread_mutex_unlock(&mu);
  if (had) atomic_fetch_sub(&tc->refs, 1); /* the caller holds another */
}

/* svc_forget_locked drops tc's registration (its fd is about to change or close). */
void svc_forget_locked(tconn *tc) {
  if (!tc->svc_reg) return;
  if (tc->io_fd >= 0 && svc_ep >= 0) real.epoll_ctl(svc_ep, EPOLL_CTL_DEL, tc->io_fd, NULL);
  tc->svc_reg = tc->svc_armed = 0;
  atomic_fetch_sub(&tc->refs, 1); /* the caller holds another reference */
}

/* finish ends a lingering connection: the socket's private dup is closed, the memory let go. */
static void finish(tconn *tc) {
  int had = tc->svc_reg;
  if (tc->svc_reg && tc->io_fd >= 0) real.epoll_ctl(svc_ep, EPOLL_CTL_DEL, tc->io_fd, NULL);
  tc->svc_reg = tc->svc_armed = 0;
  pthread_mutex_lock(&mu);
  for (tconn **p = &lingering; *p; p = &(*p)->linger_next)
    if (*p == tc) {
      *p = tc->linger_next;
      break;
    }
  pthread_mutex_unlock(&mu);
  tc->lingering = 0;
  if (tc->private_fd && tc->io_fd >= 0) {
    shim_private_set(tc->io_fd, 0);
    real.close(tc->io_fd);
  }
  tc->private_fd = 0;
  tc->io_fd = -1;
  tc_end_claim(tc);
  tc_mark_failed(tc);
  pthread_mutex_unlock(&tc->lock);
  if (had) tc_put(tc);
}

/* work runs one connection's due work; tc->lock held, released by it. */
static void work(tconn *tc) {
  if (!tc->svc_reg) {
    pthread_mutex_unlock(&tc->lock);
    return;
  }
  tc->svc_armed = 0;
  if (tc->lingering) {
    if (tc_finish_step_locked(tc) || shim_now_ms() >= tc->linger_deadline_ms) {
      finish(tc);
      return;
    }
    watch(tc);
  } else {
    if (tc->shut_wr && !tc->notify_sent) tc_finish_step_locked(tc); /* a shutdown before the
                                                                      handshake finished */
    if (tc_needs_drive_locked(tc)) tc_drive_locked(tc); /* bytes written before the handshake */
    flush_locked(tc);
    if ((tc->olen || (tc->shut_wr && !tc->notify_sent && tc->state != ST_FAILED) ||
         tc_needs_drive_locked(tc)) && !tc->werr)
      watch(tc);
    else
      epoll_tc_changed(tc); /* the host may be waiting to write again */
  }
  pthread_mutex_unlock(&tc->lock);
}

static void *loop(void *arg) {
  struct epoll_event evs[64];
  for (;;) {
    pthread_mutex_lock(&mu);
    int timeout = lingering ? TICK_MS : -1;
    int64_t now = shim_now_ms();
    for (tconn *t = timed; t; t = t->timer_next) {
      int64_t d = t->timer_ms - now;
      if (d < 0) d = 0;
      if (d > 3600000) d = 3600000;
      if (timeout < 0 || d < timeout) timeout = (int)d;
    }
    pthread_mutex_unlock(&mu);
    int n = real.epoll_wait(svc_ep, evs, 64, timeout);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == &wake_marker) {
        uint64_t v;
        if (real.read(svc_wake, &v, sizeof(v)) < 0) {}
        continue;
      }
      tconn *tc = evs[i].data.ptr; /* alive: the registration holds a reference */
      pthread_mutex_lock(&tc->lock);
      work(tc);
    }
    /* timers due: corked bytes held 200 ms go out, as the kernel sends them (the host's cork
     * stays on); a session driven here meets its decision or handshake deadline */
    tconn *due_t[64];
    int nt = 0;
    pthread_mutex_lock(&mu);
    int64_t now2 = shim_now_ms();
    for (tconn **pp = &timed; *pp && nt < 64;) {
      tconn *t = *pp;
      if (t->timer_ms <= now2) {
        *pp = t->timer_next;
        t->timer_listed = 0;
        due_t[nt++] = t; /* its list reference comes with it */
      } else {
        pp = &t->timer_next;
      }
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nt; i++) {
      pthread_mutex_lock(&due_t[i]->lock);
      tc_timer_due_locked(due_t[i]);
      pthread_mutex_unlock(&due_t[i]->lock);
      tc_put(due_t[i]);
    }
    /* deadlines of lingering connections (handshake, optional-mode decision, the linger limit) */
    tconn *due[64];
    int nd = 0;
    pthread_mutex_lock(&mu);
    for (tconn *t = lingering; t && nd < 64; t = t->linger_next) {
      atomic_fetch_add(&t->refs, 1);
      due[nd++] = t;
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nd; i++) {
      pthread_mutex_lock(&due[i]->lock);
      if (due[i]->lingering) work(due[i]);
      else pthread_mutex_unlock(&due[i]->lock);
      tc_put(due[i]);
    }
  }
  return arg;
}

void svc_after_fork_child(void) {
  pthread_mutex_init(&mu, NULL);
  if (running) {
    shim_private_set(svc_ep, 0);
    shim_private_set(svc_wake, 0);
    if (svc_ep >= 0) real.close(svc_ep);
    if (svc_wake >= 0) real.close(svc_wake);
  }
  svc_ep = svc_wake = -1;
  running = 0;
  lingering = NULL; /* the parent's: their private fds were closed here (fdtable.c) */
  timed = NULL;
}
