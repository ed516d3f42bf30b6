/* io.c — the data family: read/write, recv/send (MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL,
 * MSG_NOSIGNAL), recvfrom/sendto (MSG_FASTOPEN to a target connects it as TLS), readv/writev,
 * recvmsg/sendmsg (a TLS fd passed with SCM_RIGHTS is refused: the receiving process would get the
 * raw socket), recvmmsg/sendmmsg, preadv2/pwritev2, sendfile and splice (nothing read from a file
 * or pipe is lost when the other side takes less; splice keeps the kernel's rule that one side is
 * a pipe), and glibc's fortify variants. A non-TLS fd costs one table load and goes straight
 * to libc. Every call on a TLS fd pins its connection for the call's duration. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define PINNED(expr)            \
  do {                          \
    ssize_t r_ = (expr);        \
    int e_ = errno;             \
    tc_put(tc);                 \
    errno = e_;                 \
    return r_;                  \
  } while (0)

/* A write the kernel answers with EPIPE also raises SIGPIPE in the calling thread, unless the call
 * said MSG_NOSIGNAL: the host's own disposition (ignored, handled, or the default that ends it)
 * decides, as on a plain socket. The shim's own sends never raise it. */
static ssize_t sigpipe(ssize_t r, int flags) {
  if (r < 0 && errno == EPIPE && !(flags & MSG_NOSIGNAL)) {
    int e = errno;
    pthread_kill(pthread_self(), SIGPIPE);
    errno = e;
  }
  return r;
}

/* MSG_FASTOPEN on a connection that exists: the kernel's answer to a second connect. */
static ssize_t fastopen_again(tconn *tc) {
  pthread_mutex_lock(&tc->lock);
  int connecting = tc->connecting;
  pthread_mutex_unlock(&tc->lock);
  errno = connecting ? EALREADY : EISCONN;
  return -1;
}

/* tls_recv: recv/recvfrom/recvmsg on a TLS fd, with the flags a socket gives meaning to:
 * MSG_ERRQUEUE reads the socket's own error queue (never data, never a wait), MSG_OOB finds no
 * urgent data (TLS carries none: EINVAL, as the kernel says when there is none), MSG_TRUNC drops
 * the bytes instead of copying them, and a 0-byte recv waits for data (or says EAGAIN) as the
 * kernel's does — a 0-byte read() returns 0 at once. */
static ssize_t tls_recv(tconn *tc, int fd, void *buf, size_t len, int flags) {
  if (flags & MSG_ERRQUEUE) return real.recv(fd, buf, len, flags);
  if (flags & MSG_OOB) {
    errno = EINVAL;
    return -1;
  }
  if (len == 0) {
    char c;
    ssize_t r = tc_read(tc, &c, 1, flags | MSG_PEEK);
    return r < 0 ? -1 : 0;
  }
  if (flags & MSG_TRUNC) {
    char scratch[16384];
    return tc_read(tc, scratch, len < sizeof(scratch) ? len : sizeof(scratch), flags & ~MSG_TRUNC);
  }
  return tc_read(tc, buf, len, flags);
}

ssize_t read(int fd, void *buf, size_t len) {
  ENSURE(read);
  tconn *tc = tc_get(fd);
  if (!tc) return real.read(fd, buf, len);
  PINNED(tc_read(tc, buf, len, 0));
}

ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen) { return read(fd, buf, len); }

ssize_t write(int fd, const void *buf, size_t len) {
  ENSURE(write);
  tconn *tc = tc_get(fd);
  if (!tc) return real.write(fd, buf, len);
  PINNED(sigpipe(tc_write(tc, buf, len, 0), 0));
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
  ENSURE(recv);
  tconn *tc = tc_get(fd);
  if (!tc) return real.recv(fd, buf, len, flags);
  PINNED(tls_recv(tc, fd, buf, len, flags));
}

ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags) {
  return recv(fd, buf, len, flags);
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
  ENSURE(send);
  tconn *tc = tc_get(fd);
  if (!tc) return real.send(fd, buf, len, flags);
  if (flags & MSG_FASTOPEN) PINNED(fastopen_again(tc));
  PINNED(sigpipe(tc_write(tc, buf, len, flags), flags));
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *alen) {
  ENSURE(recvfrom);
  tconn *tc = tc_get(fd);
  if (!tc) return real.recvfrom(fd, buf, len, flags, addr, alen);
  if (addr && alen) getpeername(fd, addr, alen);
  PINNED(tls_recv(tc, fd, buf, len, flags));
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                       struct sockaddr *addr, socklen_t *alen) {
  return recvfrom(fd, buf, len, flags, addr, alen);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
               socklen_t alen) {
  ENSURE(sendto);
  tconn *tc = tc_get(fd);
  if (!tc) {
    if ((flags & MSG_FASTOPEN) && addr) return shim_fastopen(fd, buf, len, flags, addr, alen);
    return real.sendto(fd, buf, len, flags, addr, alen);
  }
  if (flags & MSG_FASTOPEN) PINNED(fastopen_again(tc));
  PINNED(sigpipe(tc_write(tc, buf, len, flags), flags));
}

ssize_t readv(int fd, const struct iovec *iov, int n) {
  ENSURE(readv);
  tconn *tc = tc_get(fd);
  if (!tc) return real.readv(fd, iov, n);
  PINNED(tc_readv(tc, iov, n, 0));
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
  ENSURE(writev);
  tconn *tc = tc_get(fd);
  if (!tc) return real.writev(fd, iov, n);
  PINNED(sigpipe(tc_writev(tc, iov, n, 0), 0));
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  ENSURE(recvmsg);
  tconn *tc = tc_get(fd);
  if (!tc) return real.recvmsg(fd, msg, flags);
  if (flags & MSG_ERRQUEUE) PINNED(real.recvmsg(fd, msg, flags)); /* the socket's, not TLS's */
  size_t total = 0;
  for (size_t i = 0; i < msg->msg_iovlen; i++) total += msg->msg_iov[i].iov_len;
  msg->msg_controllen = 0; /* no ancillary data travels inside TLS */
  msg->msg_flags = 0;
  if (msg->msg_name && msg->msg_namelen) getpeername(fd, msg->msg_name, &msg->msg_namelen);
  if (total == 0 || (flags & (MSG_OOB | MSG_TRUNC))) PINNED(tls_recv(tc, fd, NULL, total, flags));
  PINNED(tc_readv(tc, msg->msg_iov, (int)msg->msg_iovlen, flags));
}

/* passes_tls_fd: a message carrying a TLS fd to another process (SCM_RIGHTS). */
static int passes_tls_fd(const struct msghdr *msg) {
  if (!msg->msg_control || msg->msg_controllen < sizeof(struct cmsghdr)) return 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *fds = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < n; i++) {
      int f;
      memcpy(&f, fds + i, sizeof(f));
      if (shim_is_tls(f)) return 1;
    }
  }
  return 0;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  ENSURE(sendmsg);
  tconn *tc = tc_get(fd);
  if (!tc) {
    if (msg && passes_tls_fd(msg)) { /* the receiver would write plaintext on it */
      shim_log(LOG_WARN_, "refusing to pass a TLS connection's fd to another process (SCM_RIGHTS): "
                          "its TLS session cannot go with it");
      errno = EPERM;
      return -1;
    }
    if (msg && (flags & MSG_FASTOPEN) && msg->msg_name && msg->msg_iovlen <= 1)
      return shim_fastopen(fd, msg->msg_iovlen ? msg->msg_iov[0].iov_base : "",
                           msg->msg_iovlen ? msg->msg_iov[0].iov_len : 0, flags,
                           msg->msg_name, msg->msg_namelen);
    if (msg && (flags & MSG_FASTOPEN) && msg->msg_name) { /* gather, then as above */
      size_t total = 0;
      for (size_t i = 0; i < msg->msg_iovlen; i++) total += msg->msg_iov[i].iov_len;
      char *tmp = malloc(total ? total : 1);
      if (!tmp) {
        errno = ENOMEM;
        return -1;
      }
      size_t off = 0;
      for (size_t i = 0; i < msg->msg_iovlen; i++) {
        memcpy(tmp + off, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
        off += msg->msg_iov[i].iov_len;
      }
      ssize_t r = shim_fastopen(fd, tmp, total, flags, msg->msg_name, msg->msg_namelen);
      int e = errno;
      free(tmp);
      errno = e;
      return r;
    }
    return real.sendmsg(fd, msg, flags);
  }
  if (flags & MSG_FASTOPEN) PINNED(fastopen_again(tc));
  PINNED(sigpipe(tc_writev(tc, msg->msg_iov, (int)msg->msg_iovlen, flags), flags));
}

/* ---- the message-vector calls: each message in turn, as the kernel does on a stream ---- */

/* sendmmsg: on a TLS fd (or one a message would connect to a target, or that would pass a TLS fd)
 * every message goes through sendmsg above; the count of messages sent is returned, an error only
 * when none was (the kernel's rule). */
int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags) {
  ENSURE(sendmmsg);
  if (!shim_is_tls(fd)) {
    int ours = (flags & MSG_FASTOPEN) != 0;
    for (unsigned int i = 0; !ours && vec && i < vlen; i++) ours = passes_tls_fd(&vec[i].msg_hdr);
    if (!ours) return real.sendmmsg(fd, vec, vlen, flags);
  }
  if (vlen > UIO_MAXIOV) vlen = UIO_MAXIOV;
  unsigned int i;
  for (i = 0; i < vlen; i++) {
    ssize_t r = sendmsg(fd, &vec[i].msg_hdr, flags);
    if (r < 0) {
      if (i) break;
      return -1;
    }
    vec[i].msg_len = (unsigned int)r;
  }
  return (int)i;
}

/* recvmmsg on a TLS fd: message after message through recvmsg; MSG_WAITFORONE makes every one after
 * the first non-blocking; the timeout is checked after each message (as the kernel does: it does not
 * bound a wait) and what is left of it written back. */
int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout) {
  ENSURE(recvmmsg);
  if (!shim_is_tls(fd)) return real.recvmmsg(fd, vec, vlen, flags, timeout);
  struct timespec end = {0, 0};
  if (timeout) {
    if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L) {
      errno = EINVAL;
      return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout->tv_sec;
    end.tv_nsec += timeout->tv_nsec;
    if (end.tv_nsec >= 1000000000L) {
      end.tv_sec++;
      end.tv_nsec -= 1000000000L;
    }
  }
  if (vlen > UIO_MAXIOV) vlen = UIO_MAXIOV;
  unsigned int i;
  int expired = 0;
  for (i = 0; i < vlen && !expired; i++) {
    ssize_t r = recvmsg(fd, &vec[i].msg_hdr, flags & ~MSG_WAITFORONE);
    if (r < 0) {
      if (i) break;
      return -1;
    }
    vec[i].msg_len = (unsigned int)r;
    if (flags & MSG_WAITFORONE) flags |= MSG_DONTWAIT;
    if (timeout) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long long left = (long long)(end.tv_sec - now.tv_sec) * 1000000000LL + (end.tv_nsec - now.tv_nsec);
      if (left <= 0) left = 0, expired = 1;
      timeout->tv_sec = (time_t)(left / 1000000000LL);
      timeout->tv_nsec = (long)(left % 1000000000LL);
    }
  }
  return (int)i;
}

/* preadv2/pwritev2 (and their 64 names): a socket has no offset — with offset -1 they are
 * readv/writev (RWF_NOWAIT: this call does not wait; RWF_NOSIGNAL: no SIGPIPE), with any other
 * ESPIPE, as the kernel says. Which flags the kernel accepts on a socket depends on its version:
 * it is asked once, on a private socket pair, and a flag it refuses is EOPNOTSUPP here too. */
#define SHIM_RWF_NOSIGNAL 0x100
static unsigned int rw_ok[2]; /* [0] read, [1] write: the flags the kernel takes on a socket */
static pthread_once_t rw_once = PTHREAD_ONCE_INIT;

static void rw_probe(void) {
  int sv[2];
  if (real.socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) {
    rw_ok[0] = rw_ok[1] = RWF_NOWAIT;
    return;
  }
  for (int b = 0; b < 32; b++) {
    unsigned int f = 1u << b;
    char c = 0, sink[16];
    struct iovec v = {&c, 1};
    if (real.preadv2(sv[0], &v, 1, -1, (int)(f | RWF_NOWAIT)) < 0 && errno == EAGAIN) rw_ok[0] |= f;
    if (real.pwritev2(sv[0], &v, 1, -1, (int)f) == 1) rw_ok[1] |= f;
    while (real.recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
  }
  real.close(sv[0]);
  real.close(sv[1]);
}

static ssize_t rw_v2(int fd, const struct iovec *iov, int n, off_t off, int flags, int write) {
  tconn *tc = tc_get(fd);
  if (!tc) return write ? real.pwritev2(fd, iov, n, off, flags) : real.preadv2(fd, iov, n, off, flags);
  int saved = errno;
  pthread_once(&rw_once, rw_probe);
  errno = saved;
  ssize_t r = -1;
  if (off != -1) {
    errno = ESPIPE;
  } else if ((unsigned int)flags & ~rw_ok[write]) {
    errno = EOPNOTSUPP;
  } else {
    int mflags = (flags & RWF_NOWAIT) ? MSG_DONTWAIT : 0;
    if (write && (flags & SHIM_RWF_NOSIGNAL)) mflags |= MSG_NOSIGNAL;
    r = write ? sigpipe(tc_writev(tc, iov, n, mflags), mflags) : tc_readv(tc, iov, n, mflags);
  }
  int e = errno;
  tc_put(tc);
  errno = e;
  return r;
}

ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags) {
  ENSURE(preadv2);
  return rw_v2(fd, iov, n, off, flags, 0);
}

ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off_t off, int flags) {
  ENSURE(preadv2);
  return rw_v2(fd, iov, n, off, flags, 0);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags) {
  ENSURE(pwritev2);
  return rw_v2(fd, iov, n, off, flags, 1);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off_t off, int flags) {
  ENSURE(pwritev2);
  return rw_v2(fd, iov, n, off, flags, 1);
}

/* ---- sendfile and splice ---- */

/* file_to_tls reads from a file at `pos` (pread: nothing is consumed that TLS does not take). */
static ssize_t file_to_tls(tconn *tc, int in_fd, off_t pos, size_t count, int flags) {
  char buf[65536];
  size_t want = count < sizeof(buf) ? count : sizeof(buf);
  ssize_t r = pread(in_fd, buf, want, pos);
  if (r <= 0) return r;
  return tc_write(tc, buf, (size_t)r, flags);
}

static ssize_t tls_sendfile(tconn *tc, int in_fd, off_t *offset, size_t count) {
  off_t pos = offset ? *offset : lseek(in_fd, 0, SEEK_CUR);
  if (pos < 0) return -1;
  ssize_t w = file_to_tls(tc, in_fd, pos, count, 0);
  if (w <= 0) return w;
  if (offset) *offset = pos + w;
  else lseek(in_fd, pos + w, SEEK_SET);
  return w;
}

ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count) {
  ENSURE(sendfile);
  tconn *tc = tc_get(out_fd);
  if (!tc) return real.sendfile(out_fd, in_fd, offset, count);
  PINNED(sigpipe(tls_sendfile(tc, in_fd, offset, count), 0));
}

ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count) {
  ENSURE(sendfile64);
  tconn *tc = tc_get(out_fd);
  if (!tc) return real.sendfile64(out_fd, in_fd, offset, count);
  PINNED(sigpipe(tls_sendfile(tc, in_fd, offset, count), 0));
}

/* is_pipe: whether fd is a pipe or FIFO (splice needs one on either side). */
static int is_pipe(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* pipe_room: how many bytes a write to `fd` can take without blocking, if it is a pipe whose
 * buffer is partly full (-1: not a pipe, or unknown). */
static ssize_t pipe_room(int fd) {
  int size = real.fcntl(fd, F_GETPIPE_SZ);
  int used = 0;
  if (size <= 0 || real.ioctl(fd, FIONREAD, &used) != 0) return -1;
  return size > used ? size - used : 0;
}

/* TLS -> pipe: peek what TLS has, write what the pipe takes, then consume exactly that much (a
 * non-blocking pipe that takes 4 KiB of 40 KB leaves the rest in TLS). As the kernel's, the wait
 * for data follows the socket's O_NONBLOCK, SPLICE_F_NONBLOCK the pipe's side. */
static ssize_t splice_from_tls(tconn *tc, int out_fd, size_t len, unsigned flags) {
  char buf[65536];
  size_t want = len < sizeof(buf) ? len : sizeof(buf);
  ssize_t r = tc_read(tc, buf, want, MSG_PEEK);
  if (r <= 0) return r;
  size_t n = (size_t)r;
  if (flags & SPLICE_F_NONBLOCK) {
    ssize_t room = pipe_room(out_fd);
    if (room == 0) {
      errno = EAGAIN;
      return -1;
    }
    if (room > 0 && (size_t)room < n) n = (size_t)room;
  }
  ssize_t w;
  do w = real.write(out_fd, buf, n);
  while (w < 0 && errno == EINTR);
  if (w <= 0) return w;
  return tc_read(tc, buf, (size_t)w, MSG_DONTWAIT); /* already decrypted: cannot block */
}

/* pipe -> TLS: wait (or EAGAIN, by the socket's O_NONBLOCK) until TLS can take bytes, then read and
 * give it all of them (bytes read from a pipe cannot be put back). */
static ssize_t splice_to_tls(tconn *tc, int in_fd, size_t len, unsigned flags) {
  char buf[65536];
  size_t want = len < sizeof(buf) ? len : sizeof(buf);
  int nb = shim_fd_nonblocking(tc->io_fd);
  struct pollfd p = {.fd = -1, .events = POLLOUT};
  for (;;) { /* is TLS writable now? (the same answer poll would give the host) */
    pthread_mutex_lock(&tc->lock);
    short ok = tc_ready_locked(tc, POLLOUT);
    pthread_mutex_unlock(&tc->lock);
    if (ok) break;
    if (nb) {
      errno = EAGAIN;
      return -1;
    }
    p.fd = tc->io_fd;
    if (shim_poll(&p, 1, -1, NULL) < 0) return -1;
  }
  if (flags & SPLICE_F_NONBLOCK) { /* the pipe's side must not block */
    struct pollfd q = {.fd = in_fd, .events = POLLIN};
    if (real.poll(&q, 1, 0) == 0) {
      errno = EAGAIN;
      return -1;
    }
  }
  ssize_t r;
  do r = real.read(in_fd, buf, want);
  while (r < 0 && errno == EINTR);
  if (r <= 0) return r;
  return tc_write(tc, buf, (size_t)r, SHIM_MSG_ALL | (nb ? MSG_DONTWAIT : 0));
}

ssize_t splice(int in_fd, loff_t *in_off, int out_fd, loff_t *out_off, size_t len,
               unsigned int flags) {
  ENSURE(splice);
  if (!shim_is_tls(in_fd) && !shim_is_tls(out_fd))
    return real.splice(in_fd, in_off, out_fd, out_off, len, flags);
  /* the kernel's rules first: one side must be a pipe, and a pipe has no offset — a TLS socket is
   * never spliced to another socket or a file (the bytes would leave decrypted) */
  int pin = is_pipe(in_fd), pout = is_pipe(out_fd);
  if ((!pin && !pout) || (pin && pout)) {
    errno = EINVAL;
    return -1;
  }
  if ((pin && in_off) || (pout && out_off)) {
    errno = ESPIPE;
    return -1;
  }
  tconn *tc = tc_get(pin ? out_fd : in_fd);
  if (!tc) return real.splice(in_fd, in_off, out_fd, out_off, len, flags); /* closed meanwhile */
  PINNED(pout ? splice_from_tls(tc, out_fd, len, flags)
              : sigpipe(splice_to_tls(tc, in_fd, len, flags), 0));
}
