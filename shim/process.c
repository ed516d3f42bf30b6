/* process.c — fork and exit. Fork: no connection may be half-way through a call when memory is
 * copied, and the sessions this process owned are opened (claim.c): the first process to use one
 * afterwards owns it, a close by any other only lets go of its fd. vfork: when TLS connections
 * exist, vfork is fork (a vfork child would run our wrappers on its parent's memory; POSIX allows
 * vfork to be fork). Exit: every session this process owns ends as the kernel ends a socket whose
 * process exits — the queued bytes, then close_notify (and the FIN) — without holding the exit: what
 * cannot go at once is finished by a detached process. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"


static void prepare(void) {
  if (!fdtab) return;
  live_lock_all();
  claim_lock();
  for (tconn *t = live_first(); t; t = t->live_next) {
    if (atomic_load(t->claim) == shim_pid) atomic_store(t->claim, CLAIM_OPEN);
    if (!shim_helper_fork && atomic_load(&t->fdrefs) > 0) atomic_fetch_add(t->holders, 1);
  }
}

static int exit_fork; /* the fork in progress makes the exit finisher */

static void parent(void) {
  if (!fdtab) return;
  if (exit_fork) shim_exiting = 1; /* set while every connection is still locked: from the snapshot
                                      on, only the finisher moves their bytes */
  claim_after_fork();
  claim_unlock();
  live_unlock_all(0);
}

static void child(void) {
  shim_buf_atfork_child();
  shim_reload_atfork_child();
  shim_metrics_atfork_child();
  if (!fdtab) return;
  exit_fork = 0;
  shim_pid = getpid();
  shim_fork_gen++; /* fds placed before the fork were not placed by this process */
  claim_after_fork();
  claim_unlock();
  live_unlock_all(1);
  epoll_after_fork_child();
  svc_after_fork_child();
}

int shim_exiting;

/* vfork: a jump (no stack frame of ours: a vfork child returns into its caller's frame). */
HIDDEN pid_t (*shim_real_vfork)(void);
__asm__(".text\n"
        ".globl vfork\n"
        ".type vfork,@function\n"
        "vfork:\n"
        "  movl shim_live(%rip), %eax\n"
        "  testl %eax, %eax\n"
        "  jnz 1f\n"
        "  movq shim_real_vfork(%rip), %rax\n"
        "  testq %rax, %rax\n"
        "  jz 1f\n"
        "  jmp *%rax\n"
        "1:\n"
        "  jmp fork@PLT\n"
        ".size vfork, .-vfork\n");

/* close_all_except closes every fd but those in keep[0..n) (and 2, for log lines, unless it is a
 * TLS connection); the table keeps only the kept ones. For the helper processes (relay, finisher)
 * a fork leaves behind. */
void close_all_except(const int *keep, int n) {
  int k[66], m = 0;
  for (int i = 0; i < n && m < 64; i++) k[m++] = keep[i];
  if (!shim_is_tls(2)) k[m++] = 2;
  for (int i = 1; i < m; i++) /* sort */
    for (int j = i; j > 0 && k[j - 1] > k[j]; j--) {
      int t = k[j];
      k[j] = k[j - 1];
      k[j - 1] = t;
    }
  unsigned lo = 0;
  for (int i = 0; i <= m; i++) {
    unsigned hi = i < m ? (unsigned)k[i] : ~0U;
    if (hi > lo) real.close_range(lo, hi == ~0U ? ~0U : hi - 1, 0);
    if (i < m) lo = (unsigned)k[i] + 1;
  }
  for (size_t fd = 0; fd < fdtab_cap; fd++) {
    int kept = 0;
    for (int i = 0; i < m; i++) kept |= k[i] == (int)fd;
    if (!kept && atomic_load_explicit(&fdtab[fd].tc, memory_order_relaxed))
      atomic_store(&fdtab[fd].tc, NULL);
  }
}

/* finisher: the host is exiting with sessions not yet finished (bytes the kernel has not taken, a
 * handshake in flight, close_notify not sent). The kernel would go on sending after the process is
 * gone, so a detached process (double fork, like the exec relay) finishes them — bounded by
 * FINISH_MS — and the host exits at once. */
#define FINISH_MS 30000
static void finisher(tconn **list, size_t n) {
  shim_helper_fork = 1;
  exit_fork = 1;
  pid_t pid = fork();
  exit_fork = 0;
  shim_helper_fork = 0;
  if (pid != 0) {
    if (pid > 0) while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    return;
  }
  shim_helper_fork = 1;
  if (fork() != 0) real._exit(0);
  shim_helper_fork = 0;
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  int keep[64], m = 0;
  for (size_t i = 0; i < n && m < 64; i++)
    if (list[i]->io_fd >= 0) keep[m++] = list[i]->io_fd;
  close_all_except(keep, m);
  /* all of them at once: a peer may read one connection only after it got another's bytes */
  int64_t end = shim_now_ms() + FINISH_MS;
  struct pollfd p[64];
  size_t ok = 0;
  for (;;) {
    int m = 0;
    ok = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
      tconn *t = list[i];
      pthread_mutex_lock(&t->lock);
      if (!tc_owned(t) || t->io_fd < 0) {
        pthread_mutex_unlock(&t->lock);
        continue;
      }
      if (tc_finish_step_locked(t) && !t->olen) {
        ok++;
        pthread_mutex_unlock(&t->lock);
        continue;
      }
      short ev = t->olen ? POLLOUT : 0;
      if (t->state == ST_SNIFF || (t->state == ST_TLS && !sli_conn_is_secured(t->conn))) ev |= POLLIN;
      p[m++] = (struct pollfd){.fd = t->io_fd, .events = ev ? ev : POLLOUT};
      pthread_mutex_unlock(&t->lock);
    }
    int64_t left = end - shim_now_ms();
    if (!m || left <= 0) break;
    real.poll(p, (nfds_t)m, left > 100 ? 100 : (int)left);
  }
  shim_log(ok == n ? LOG_DEBUG_ : LOG_INFO_, "exit finisher: %zu of %zu sessions finished", ok, n);
  real._exit(0);
}

void process_drain_at_exit(int flush_stdio) {
  if (!cfg.active || !fdtab || shim_foreign()) return;
  if (flush_stdio) stdio_flush_ours();
  if (atomic_load(&shim_live) == 0) return;
  /* pin the sessions this process owns, then finish them without the list lock */
  tconn *stack[256], **list = stack;
  size_t n = 0, cap = 256;
  static int released; /* exit(), then _exit() from a destructor: let go once */
  live_lock();
  for (tconn *t = live_first(); t; t = t->live_next) {
    /* the kernel closes our fds: if no other process holds one, a session nobody has used since
     * a fork is ours to end */
    if (!released && atomic_load(&t->fdrefs) > 0 && atomic_load(t->claim) != shim_pid &&
        atomic_fetch_sub(t->holders, 1) == 1)
      tc_owned(t);
    if (atomic_load(t->claim) != shim_pid || atomic_load(&t->refs) == 0) continue;
    if (n == cap) {
      tconn **p = malloc(cap * 2 * sizeof(*p));
      if (!p) break;
      for (size_t i = 0; i < n; i++) p[i] = list[i];
      if (list != stack) free(list);
      list = p;
      cap *= 2;
    }
    atomic_fetch_add(&t->refs, 1);
    list[n++] = t;
  }
  released = 1;
  live_unlock();
  /* what can end now ends now (close_notify into the kernel's buffer); the rest is finished by a
   * detached process (or, if one cannot be made, here, bounded) */
  size_t left = 0; /* the unfinished ones first, the finished after them */
  for (size_t i = 0; i < n; i++) {
    tconn *t = list[i];
    pthread_mutex_lock(&t->lock);
    int done = t->io_fd < 0 || t->state == ST_FAILED || (tc_finish_step_locked(t) && !t->olen);
    pthread_mutex_unlock(&t->lock);
    if (!done) {
      list[i] = list[left];
      list[left++] = t;
    }
  }
  for (size_t i = left; i < n; i++) tc_end_claim(list[i]);
  if (left) {
    shim_log(LOG_DEBUG_, "exit: %zu unfinished TLS session(s) go to a finisher process", left);
    finisher(list, left); /* from its fork on, this process's copies move no byte */
    if (!shim_exiting) { /* no finisher could be made: finish here, bounded */
      int64_t end = shim_now_ms() + 2000;
      for (size_t i = 0; i < left; i++) {
        pthread_mutex_lock(&list[i]->lock);
        tc_finish_blocking(list[i], end);
        pthread_mutex_unlock(&list[i]->lock);
      }
    }
  }
  for (size_t i = 0; i < n; i++) atomic_fetch_sub(&list[i]->refs, 1); /* no frees at exit */
  if (list != stack) free(list);
}

__attribute__((destructor)) static void at_exit(void) { process_drain_at_exit(1); }

void _exit(int status) {
  process_drain_at_exit(0);
  if (real._exit) real._exit(status);
  syscall(SYS_exit_group, status);
  __builtin_unreachable();
}

void _Exit(int status) { _exit(status); }

__attribute__((constructor(200))) static void process_init(void) {
  shim_resolve();
  shim_real_vfork = real.vfork;
  pthread_atfork(prepare, parent, child);
}
