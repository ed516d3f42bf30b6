/* real.c — the libc functions the shim wraps, resolved once with dlsym(RTLD_NEXT, ...). The shim's
 * own I/O (and the engine's, through the transport callbacks) always goes through these. */
#include <dlfcn.h>
#include <pthread.h>

#include "shim.h"

real_fns real;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define R(name) real.name = (__typeof__(real.name))dlsym(RTLD_NEXT, #name)

static void resolve(void) {
  R(read); R(write); R(readv); R(writev); R(recv); R(send); R(recvfrom); R(sendto);
  R(recvmsg); R(sendmsg); R(recvmmsg); R(sendmmsg); R(preadv2); R(pwritev2); R(sendfile); R(sendfile64); R(splice); R(socket); R(socketpair);
  R(accept); R(accept4); R(connect); R(bind); R(listen); R(close); R(close_range); R(closefrom);
  R(shutdown); R(setsockopt); R(getsockopt); R(dup); R(dup2); R(dup3); R(fcntl); R(fcntl64); R(ioctl); R(poll); R(ppoll);
  R(select); R(pselect); R(epoll_create); R(epoll_create1); R(epoll_ctl); R(epoll_wait);
  R(epoll_pwait); R(epoll_pwait2);
  R(open); R(open64); R(openat); R(openat64); R(__open_2); R(__open64_2); R(__openat_2);
  R(__openat64_2); R(creat); R(creat64); R(pipe); R(pipe2); R(eventfd); R(timerfd_create);
  R(signalfd); R(memfd_create); R(inotify_init); R(inotify_init1); R(syscall);
  R(fork); R(vfork); R(_exit); R(execve); R(execv); R(execvp); R(execvpe); R(fexecve);
  R(execveat); R(posix_spawn); R(posix_spawnp); R(posix_spawn_file_actions_adddup2);
  R(fdopen); R(getaddrinfo);
  if (!real.fcntl64) real.fcntl64 = real.fcntl;
  if (!real.sendfile64) real.sendfile64 = real.sendfile;
}

void shim_resolve(void) { pthread_once(&once, resolve); }
