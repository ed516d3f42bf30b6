/* process.c — fork and exit. Fork: no connection may be half-way through a call when memory is
 * copied, and the sessions this process owned are opened (claim.c): the first process to use one
 * afterwards owns it, a close by any other only lets go of its fd. vfork: when TLS connections
 * exist, vfork is fork (a vfork child would run our wrappers on its parent's memory; POSIX allows
 * vfork to be fork). Exit: every session this process owns gets its queued bytes and close_notify
 * out (bounded), as the kernel would send a FIN for the fds it closes. */
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#define EXIT_DRAIN_MS 3000

static void prepare(void) {
  if (!fdtab) return;
  live_lock_all();
  claim_lock();
  for (tconn *t = live_first(); t; t = t->live_next)
    if (atomic_load(t->claim) == shim_pid) atomic_store(t->claim, CLAIM_OPEN);
}

static void parent(void) {
  if (!fdtab) return;
  claim_after_fork();
  claim_unlock();
  live_unlock_all(0);
}

static void child(void) {
  if (!fdtab) return;
  shim_pid = getpid();
  claim_after_fork();
  claim_unlock();
  live_unlock_all(1);
  epoll_after_fork_child();
  svc_after_fork_child();
}

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

void process_drain_at_exit(int flush_stdio) {
  if (!cfg.active || !fdtab || shim_foreign()) return;
  if (flush_stdio) stdio_flush_ours();
  if (atomic_load(&shim_live) == 0) return;
  /* pin the sessions this process owns, then finish them without the list lock */
  tconn *stack[256], **list = stack;
  size_t n = 0, cap = 256;
  live_lock();
  for (tconn *t = live_first(); t; t = t->live_next) {
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
  live_unlock();
  int64_t end = shim_now_ms() + EXIT_DRAIN_MS;
  for (size_t i = 0; i < n; i++) {
    tconn *t = list[i];
    pthread_mutex_lock(&t->lock);
    if (t->io_fd >= 0 && t->state != ST_FAILED) {
      tc_finish_step_locked(t);
      tc_flush_blocking(t, end);
    }
    atomic_store(t->claim, CLAIM_ENDED);
    pthread_mutex_unlock(&t->lock);
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
