/* fdcreate.c — calls that create fds, and closes the table would not otherwise see.
 *
 * A number the kernel hands out is free by definition: if the table still names a connection for
 * it, that connection's fd was closed behind our back, so the entry is dropped (without touching
 * the new file). Every creating call is watched: open* (and glibc's fortify variants), creat,
 * pipe/pipe2, socketpair, eventfd, timerfd_create, signalfd, memfd_create, inotify_init*
 * (socket, accept, dup*, fcntl and epoll_create* in their own files).
 *
 * syscall(SYS_close, fd) — how libuv (node) closes — is a real close: the session ends as with
 * close(). syscall() is otherwise passed through untouched with all six arguments. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"


static inline int fresh(int fd) {
  if (fd >= 0 && fdtab && (size_t)fd < fdtab_cap &&
      (atomic_load_explicit(&fdtab[fd].tc, memory_order_relaxed) || fdtab[fd].listener ||
       fdtab[fd].epset) &&
      !shim_foreign()) {
    fdtab_drop_stale(fd);
    epoll_fd_closed(fd);
  }
  return fd;
}

static inline void fresh2(int r, const int *fds) {
  if (r == 0) {
    fresh(fds[0]);
    fresh(fds[1]);
  }
}

/* open's mode is only read when O_CREAT or O_TMPFILE asks for it */
#define MODE_ARG(flags)                                          \
  mode_t mode = 0;                                               \
  if ((flags) & (O_CREAT | __O_TMPFILE)) {                       \
    va_list ap;                                                  \
    va_start(ap, flags);                                         \
    mode = (mode_t)va_arg(ap, int);                              \
    va_end(ap);                                                  \
  }

int open(const char *path, int flags, ...) {
  ENSURE(open);
  MODE_ARG(flags);
  return fresh(real.open(path, flags, mode));
}

int open64(const char *path, int flags, ...) {
  ENSURE(open64);
  MODE_ARG(flags);
  return fresh(real.open64 ? real.open64(path, flags, mode) : real.open(path, flags, mode));
}

int openat(int dirfd, const char *path, int flags, ...) {
  ENSURE(openat);
  MODE_ARG(flags);
  return fresh(real.openat(dirfd, path, flags, mode));
}

int openat64(int dirfd, const char *path, int flags, ...) {
  ENSURE(openat64);
  MODE_ARG(flags);
  return fresh(real.openat64 ? real.openat64(dirfd, path, flags, mode)
                             : real.openat(dirfd, path, flags, mode));
}

int __open_2(const char *path, int flags) {
  ENSURE(__open_2);
  return fresh(real.__open_2(path, flags));
}

int __open64_2(const char *path, int flags) {
  ENSURE(__open64_2);
  return fresh(real.__open64_2 ? real.__open64_2(path, flags) : real.__open_2(path, flags));
}

int __openat_2(int dirfd, const char *path, int flags) {
  ENSURE(__openat_2);
  return fresh(real.__openat_2(dirfd, path, flags));
}

int __openat64_2(int dirfd, const char *path, int flags) {
  ENSURE(__openat64_2);
  return fresh(real.__openat64_2 ? real.__openat64_2(dirfd, path, flags)
                                 : real.__openat_2(dirfd, path, flags));
}

int creat(const char *path, mode_t mode) {
  ENSURE(creat);
  return fresh(real.creat(path, mode));
}

int creat64(const char *path, mode_t mode) {
  ENSURE(creat64);
  return fresh(real.creat64 ? real.creat64(path, mode) : real.creat(path, mode));
}

int pipe(int fds[2]) {
  ENSURE(pipe);
  int r = real.pipe(fds);
  fresh2(r, fds);
  return r;
}

int pipe2(int fds[2], int flags) {
  ENSURE(pipe2);
  int r = real.pipe2(fds, flags);
  fresh2(r, fds);
  return r;
}

int socketpair(int domain, int type, int protocol, int fds[2]) {
  ENSURE(socketpair);
  int r = real.socketpair(domain, type, protocol, fds);
  fresh2(r, fds);
  return r;
}

int eventfd(unsigned int initval, int flags) {
  ENSURE(eventfd);
  return fresh(real.eventfd(initval, flags));
}

int timerfd_create(int clockid, int flags) {
  ENSURE(timerfd_create);
  return fresh(real.timerfd_create(clockid, flags));
}

int signalfd(int fd, const sigset_t *mask, int flags) {
  ENSURE(signalfd);
  return fresh(real.signalfd(fd, mask, flags));
}

int memfd_create(const char *name, unsigned int flags) {
  ENSURE(memfd_create);
  return fresh(real.memfd_create(name, flags));
}

int inotify_init(void) {
  ENSURE(inotify_init);
  return fresh(real.inotify_init());
}

int inotify_init1(int flags) {
  ENSURE(inotify_init1);
  return fresh(real.inotify_init1(flags));
}

long syscall(long number, ...) {
  ENSURE(syscall);
  va_list ap;
  va_start(ap, number);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
  long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  if (number == SYS_close) {
    if (shim_private((int)a1)) {
      errno = EBADF;
      return -1;
    }
    shim_closing((int)a1);
  } else if (number == SYS_close_range) {
    extern int close_range(unsigned int, unsigned int, int);
    return close_range((unsigned)a1, (unsigned)a2, (int)a3);
  }
  return real.syscall(number, a1, a2, a3, a4, a5, a6);
}
