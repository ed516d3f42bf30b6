/* exec.c — a TLS connection across exec. A TLS session cannot follow its fd into a new program (the
 * keys are in this process's memory), and the new program must never get the raw socket (it would
 * write plaintext). So, in every exec call, each TLS fd the host lets the program inherit (no
 * FD_CLOEXEC in the host's view) is handed to a relay: a small process, forked here, that owns the
 * session and gives the program a Unix stream socket at the same fd number — what inetd-style
 * servers and CGI need (a CGI script's stdout is the socket). The relay copies both ways, passes on
 * each half-close (the program's EOF becomes close_notify; the peer's, the program's EOF), and
 * exits when both directions are done. It is the grandchild of the exec'ing process (double fork),
 * so the new program never sees it as a child.
 *
 * Limits: the program sees a Unix socket (getpeername names no TCP peer; CGI gets REMOTE_ADDR from
 * its environment); if the session is owned by another process (see claim.c), the program gets a
 * socket whose other end is closed. Other ways to run a program cannot carry a session and fail
 * closed: posix_spawn with a TLS fd in a dup2 file action is refused (EPERM), and system(),
 * popen() or a raw exec find TLS fds closed (the kernel has FD_CLOEXEC on them). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

extern char **environ;

/* ---- the relay ---- */

static void close_all_but(int a, int b) {
  int lo = a < b ? a : b, hi = a < b ? b : a;
  for (int fd = 0; fd < 3; fd++) /* 2 stays for log lines unless it is a TLS socket */
    if (fd != a && fd != b && (fd != 2 || shim_is_tls(2))) real.close(fd);
  if (lo > 3) real.close_range(3, (unsigned)lo - 1, 0);
  if (hi > lo + 1 && hi - 1 >= 3) real.close_range((unsigned)(lo + 1 > 3 ? lo + 1 : 3), (unsigned)hi - 1, 0);
  real.close_range((unsigned)hi + 1, ~0U, 0);
  for (size_t fd = 0; fd < fdtab_cap; fd++) /* the table names only what is left */
    if ((int)fd != a && (int)fd != b && atomic_load_explicit(&fdtab[fd].tc, memory_order_relaxed))
      atomic_store(&fdtab[fd].tc, NULL);
}

static void relay_run(tconn *tc, int sp) {
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  int io = tc->io_fd;
  close_all_but(io, sp);
  if (!tc_owned(tc)) {
    shim_log(LOG_WARN_, "exec relay: the TLS session of fd %d belongs to process %d: the program "
                        "gets a closed connection",
             io, (int)atomic_load(tc->claim));
    real._exit(1);
  }
  real.fcntl(sp, F_SETFL, real.fcntl(sp, F_GETFL) | O_NONBLOCK);
  static char up[65536], down[65536];
  size_t ulen = 0, uoff = 0, dlen = 0, doff = 0;
  int up_eof = 0, shut_sent = 0, down_eof = 0, sp_gone = 0;
  for (;;) {
    /* program -> TLS */
    if (!up_eof && ulen == 0) {
      ssize_t r = real.read(sp, up, sizeof(up));
      if (r > 0) {
        ulen = (size_t)r;
        uoff = 0;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        up_eof = 1;
      }
    }
    if (ulen) {
      ssize_t w = tc_write(tc, up + uoff, ulen, MSG_DONTWAIT);
      if (w > 0) {
        uoff += (size_t)w;
        ulen -= (size_t)w;
      } else if (errno != EAGAIN && errno != EINTR) {
        break;
      }
    }
    if (up_eof && !ulen && !shut_sent) { /* the program's EOF: close_notify, then the FIN */
      tc_shutdown(tc, SHUT_WR);
      shut_sent = 1;
    }
    /* TLS -> program */
    if (!down_eof && !dlen && !sp_gone) {
      ssize_t r = tc_read(tc, down, sizeof(down), MSG_DONTWAIT);
      if (r > 0) {
        dlen = (size_t)r;
        doff = 0;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        down_eof = 1;
        shutdown(sp, SHUT_WR);
      }
    }
    if (dlen) {
      ssize_t w = real.write(sp, down + doff, dlen);
      if (w > 0) {
        doff += (size_t)w;
        dlen -= (size_t)w;
      } else if (errno != EAGAIN && errno != EINTR) {
        sp_gone = 1;
        dlen = 0;
      }
    }
    if (shut_sent && (down_eof || sp_gone) && !dlen) break;
    struct pollfd p[2] = {{.fd = sp, .events = 0}, {.fd = io, .events = 0}};
    if (!up_eof && !ulen) p[0].events |= POLLIN;
    if (dlen) p[0].events |= POLLOUT;
    if (!down_eof && !dlen && !sp_gone) p[1].events |= POLLIN;
    if (ulen) p[1].events |= POLLOUT;
    if (!p[0].events && !p[1].events) break;
    if (shim_poll(p, 2, -1, NULL) < 0 && errno != EINTR) break;
  }
  pthread_mutex_lock(&tc->lock);
  tc_flush_blocking(tc, shim_now_ms() + 30000);
  pthread_mutex_unlock(&tc->lock);
  real._exit(0);
}

/* hand_over gives the session of `tc` (named by fds[0..n)) to a relay; the fds become the
 * program's end of a socketpair. */
static void hand_over(tconn *tc, const int *fds, int n) {
  int sp[2];
  if (real.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
    sp[0] = sp[1] = -1;
  } else {
    pid_t pid = fork();
    if (pid == 0) {
      real.close(sp[0]);
      pid_t p2 = fork();
      if (p2 != 0) real._exit(0);
      relay_run(tc, sp[1]);
    }
    real.close(sp[1]);
    sp[1] = -1;
    if (pid < 0) {
      real.close(sp[0]);
      sp[0] = -1;
    } else {
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    }
  }
  if (sp[0] < 0) { /* no relay: fail closed, the program finds the connection closed */
    shim_log(LOG_ERR_, "exec: cannot start a relay for the TLS connection on fd %d: the program "
                       "gets a closed connection", fds[0]);
    int dead[2];
    if (real.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, dead) == 0) {
      real.close(dead[1]);
      sp[0] = dead[0];
    }
  }
  for (int i = 0; i < n; i++) {
    epoll_fd_closed(fds[i]);
    fdtab_drop_stale(fds[i]); /* the session is the relay's now: nothing is sent from here */
    if (sp[0] >= 0) real.dup2(sp[0], fds[i]);
    else real.close(fds[i]);
  }
  if (sp[0] >= 0) real.close(sp[0]);
}

int exec_prepare(void) {
  if (!cfg.active || !fdtab || atomic_load(&shim_live) == 0 || shim_foreign()) return 0;
  int saved = errno;
  for (size_t fd = 0; fd < fdtab_cap; fd++) {
    tconn *tc = atomic_load_explicit(&fdtab[fd].tc, memory_order_acquire);
    if (!tc || fdtab[fd].cloexec) continue;
    int fds[64], n = 0; /* every inherited fd of this connection (CGI: 0 and 1) */
    for (size_t j = fd; j < fdtab_cap && n < 64; j++)
      if (atomic_load_explicit(&fdtab[j].tc, memory_order_relaxed) == tc && !fdtab[j].cloexec)
        fds[n++] = (int)j;
    atomic_fetch_add(&tc->refs, 1);
    hand_over(tc, fds, n);
    tc_put(tc);
  }
  errno = saved;
  return 0;
}

/* ---- the exec family (glibc's own execl*, execvp* call its internal execve: each is wrapped) ---- */

int execve(const char *path, char *const argv[], char *const envp[]) {
  ENSURE(execve);
  exec_prepare();
  return real.execve(path, argv, envp);
}

int execv(const char *path, char *const argv[]) {
  ENSURE(execv);
  exec_prepare();
  return real.execv(path, argv);
}

int execvp(const char *file, char *const argv[]) {
  ENSURE(execvp);
  exec_prepare();
  return real.execvp(file, argv);
}

int execvpe(const char *file, char *const argv[], char *const envp[]) {
  ENSURE(execvpe);
  exec_prepare();
  return real.execvpe(file, argv, envp);
}

int fexecve(int fd, char *const argv[], char *const envp[]) {
  ENSURE(fexecve);
  exec_prepare();
  return real.fexecve(fd, argv, envp);
}

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
  ENSURE(execveat);
  if (!real.execveat) {
    errno = ENOSYS;
    return -1;
  }
  exec_prepare();
  return real.execveat(dirfd, path, argv, envp, flags);
}

/* execl-style: the arguments up to NULL (and, for execle, the environment after it). */
#define COLLECT(arg, extra_env)                                  \
  size_t n_ = 1;                                                 \
  va_list ap;                                                    \
  va_start(ap, arg);                                             \
  while (va_arg(ap, const char *)) n_++;                         \
  va_end(ap);                                                    \
  char *argv_[n_ + 1];                                           \
  argv_[0] = (char *)(arg);                                      \
  va_start(ap, arg);                                             \
  for (size_t i_ = 1; i_ <= n_; i_++) argv_[i_] = va_arg(ap, char *); \
  extra_env;                                                     \
  va_end(ap)

int execl(const char *path, const char *arg, ...) {
  ENSURE(execv);
  COLLECT(arg, (void)0);
  exec_prepare();
  return real.execv(path, argv_);
}

int execlp(const char *file, const char *arg, ...) {
  ENSURE(execvp);
  COLLECT(arg, (void)0);
  exec_prepare();
  return real.execvp(file, argv_);
}

int execle(const char *path, const char *arg, ...) {
  ENSURE(execve);
  char **envp_;
  COLLECT(arg, envp_ = va_arg(ap, char **));
  exec_prepare();
  return real.execve(path, argv_, envp_);
}

/* ---- posix_spawn: the child runs no code of ours; a TLS fd in a dup2 action would arrive raw ---- */

int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int newfd) {
  ENSURE(posix_spawn_file_actions_adddup2);
  if (shim_is_tls(fd) && !shim_foreign()) {
    shim_log(LOG_WARN_, "posix_spawn: refusing to give fd %d (a TLS connection) to a spawned "
                        "program: its TLS session cannot follow; use fork and exec", fd);
    return EPERM;
  }
  return real.posix_spawn_file_actions_adddup2(fa, fd, newfd);
}
