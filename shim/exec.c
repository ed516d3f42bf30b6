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
 * Only fds this process placed for the program are handed over (dup2 onto a number, or FD_CLOEXEC
 * cleared, since its fork); a TLS fd merely inherited is closed by the exec (the kernel has
 * FD_CLOEXEC on it), so a server's other connections stay its own.
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

static void relay_run(tconn *tc, int sp) {
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  int io = tc->io_fd;
  int keep[2] = {io, sp};
  close_all_except(keep, 2);
  int32_t want = CLAIM_RELAY;
  if (!atomic_compare_exchange_strong(tc->claim, &want, shim_pid)) {
    shim_log(LOG_WARN_, "exec relay: the TLS session of fd %d was taken meanwhile: the program "
                        "gets a closed connection", io);
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
  tc_end_claim(tc); /* a process still holding the fd now reads its end */
  real._exit(0);
}

/* hand_over gives the session of `tc` (named by fds[0..n)) to a relay; the fds become the
 * program's end of a socketpair. */
static void hand_over(tconn *tc, const int *fds, int n) {
  int sp[2];
  /* The session is reserved for the relay before it exists: no other process (the server that
   * forked us, polling its copy while it waits) can take it in between. */
  int32_t v = atomic_load(tc->claim);
  int reserved = (v == CLAIM_OPEN || v == shim_pid) &&
                 atomic_compare_exchange_strong(tc->claim, &v, CLAIM_RELAY);
  if (!reserved) {
    shim_log(LOG_WARN_, "exec: the TLS session of fd %d belongs to process %d: the program gets a "
                        "closed connection", fds[0], (int)v);
    sp[0] = sp[1] = -1;
  } else if (real.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
    sp[0] = sp[1] = -1;
  } else {
    shim_helper_fork = 1;
    pid_t pid = fork();
    if (pid == 0) {
      real.close(sp[0]);
      pid_t p2 = fork();
      if (p2 != 0) real._exit(0);
      shim_helper_fork = 0;
      relay_run(tc, sp[1]);
    }
    shim_helper_fork = 0;
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
    if (reserved) {
      atomic_store(tc->claim, CLAIM_ENDED); /* our reservation: nobody else may use it */
      shim_log(LOG_ERR_, "exec: cannot start a relay for the TLS connection on fd %d: the program "
                         "gets a closed connection", fds[0]);
    }
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

static int exec_released;

static void exec_holders(int delta) {
  live_lock();
  for (tconn *t = live_first(); t; t = t->live_next)
    if (atomic_load(&t->fdrefs) > 0) atomic_fetch_add(t->holders, delta);
  live_unlock();
}

/* exec_prepare hands the inherited TLS fds to relays; returns 1 if fd 2 was one of them (the new
 * program's stderr is then a connection: its shim must not log there). */
int exec_prepare(void) {
  if (!cfg.active || !fdtab || atomic_load(&shim_live) == 0 || shim_foreign()) return 0;
  int saved = errno;
  int stderr_relayed = shim_is_tls(2) && !fdtab[2].cloexec && fdtab[2].placed_gen == shim_fork_gen;
  /* A connection goes to a relay when this process placed it for the program: dup2()'d it onto a
   * number (stdin/stdout for inetd and CGI, fd 3 for systemd's socket activation) or cleared its
   * FD_CLOEXEC since it was forked. A TLS fd merely inherited is left to FD_CLOEXEC, which the
   * kernel has on it: a C server that accepts without SOCK_CLOEXEC and runs a handler must keep
   * serving its other connections, not lose their sessions to a program that never meant to use
   * them. */
  for (size_t fd = 0; fd < fdtab_cap; fd++) {
    tconn *tc = atomic_load_explicit(&fdtab[fd].tc, memory_order_acquire);
    if (!tc || fdtab[fd].cloexec || fdtab[fd].placed_gen != shim_fork_gen) continue;
    int fds[64], n = 0; /* every inherited fd of this connection (CGI: 0 and 1) */
    for (size_t j = fd; j < fdtab_cap && n < 64; j++)
      if (atomic_load_explicit(&fdtab[j].tc, memory_order_relaxed) == tc && !fdtab[j].cloexec &&
          fdtab[j].placed_gen == shim_fork_gen)
        fds[n++] = (int)j;
    atomic_fetch_add(&tc->refs, 1);
    hand_over(tc, fds, n);
    tc_put(tc);
  }
  /* every other TLS fd is closed by the exec (FD_CLOEXEC): this process holds them no more */
  exec_released = 1;
  exec_holders(-1);
  errno = saved;
  return stderr_relayed;
}

void exec_failed(void) {
  if (!exec_released) return;
  exec_released = 0;
  int saved = errno;
  exec_holders(1);
  errno = saved;
}

/* quiet_env: `envp` with SLI_LOG=off (in `out`, which has room for n + 2 pointers). */
static char *const *quiet_env(char *const *envp, char **out) {
  size_t n = 0;
  for (; envp && envp[n]; n++)
    out[n] = strncmp(envp[n], "SLI_LOG=", 8) ? envp[n] : (char *)"SLI_LOG=off";
  size_t i = 0;
  while (i < n && strcmp(out[i], "SLI_LOG=off")) i++;
  if (i == n) out[n++] = (char *)"SLI_LOG=off";
  out[n] = NULL;
  return out;
}

static size_t env_len(char *const *envp) {
  size_t n = 0;
  while (envp && envp[n]) n++;
  return n;
}

/* EXEC_ENV(envp): prepares, and gives the environment the new program gets. */
#define EXEC_ENV(envp)                                                       \
  char *const *env_ = (envp);                                                \
  char *quiet_[exec_prepare() ? env_len(env_) + 2 : 1];                      \
  if (sizeof(quiet_) > sizeof(char *)) env_ = quiet_env(env_, quiet_)

/* ---- the exec family (glibc's own execl*, execvp* call its internal execve: each is wrapped) ---- */

int execve(const char *path, char *const argv[], char *const envp[]) {
  ENSURE(execve);
  EXEC_ENV(envp);
  int r_ = real.execve(path, argv, env_);
  exec_failed();
  return r_;
}

int execv(const char *path, char *const argv[]) {
  ENSURE(execve);
  EXEC_ENV(environ);
  int r_ = real.execve(path, argv, env_);
  exec_failed();
  return r_;
}

int execvp(const char *file, char *const argv[]) {
  ENSURE(execvpe);
  EXEC_ENV(environ);
  int r_ = real.execvpe(file, argv, env_);
  exec_failed();
  return r_;
}

int execvpe(const char *file, char *const argv[], char *const envp[]) {
  ENSURE(execvpe);
  EXEC_ENV(envp);
  int r_ = real.execvpe(file, argv, env_);
  exec_failed();
  return r_;
}

int fexecve(int fd, char *const argv[], char *const envp[]) {
  ENSURE(fexecve);
  EXEC_ENV(envp);
  int r_ = real.fexecve(fd, argv, env_);
  exec_failed();
  return r_;
}

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
  ENSURE(execveat);
  if (!real.execveat) {
    errno = ENOSYS;
    return -1;
  }
  EXEC_ENV(envp);
  int r_ = real.execveat(dirfd, path, argv, env_, flags);
  exec_failed();
  return r_;
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
  ENSURE(execve);
  COLLECT(arg, (void)0);
  EXEC_ENV(environ);
  int r_ = real.execve(path, argv_, env_);
  exec_failed();
  return r_;
}

int execlp(const char *file, const char *arg, ...) {
  ENSURE(execvpe);
  COLLECT(arg, (void)0);
  EXEC_ENV(environ);
  int r_ = real.execvpe(file, argv_, env_);
  exec_failed();
  return r_;
}

int execle(const char *path, const char *arg, ...) {
  ENSURE(execve);
  char **envp_;
  COLLECT(arg, envp_ = va_arg(ap, char **));
  EXEC_ENV(envp_);
  int r_ = real.execve(path, argv_, env_);
  exec_failed();
  return r_;
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
