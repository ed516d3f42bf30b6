/* io.c — the data family: read/write, recv/send (MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL,
 * MSG_NOSIGNAL), recvfrom/sendto, readv/writev, recvmsg/sendmsg, sendfile and splice, and glibc's
 * fortify variants. A non-TLS fd costs one table lookup and goes straight to libc. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

#define ENSURE(fn) \
  if (!real.fn) shim_resolve()

ssize_t read(int fd, void *buf, size_t len) {
  ENSURE(read);
  tconn *tc = shim_tc(fd);
  return tc ? tc_read(tc, buf, len, 0) : real.read(fd, buf, len);
}

ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen) { return read(fd, buf, len); }

ssize_t write(int fd, const void *buf, size_t len) {
  ENSURE(write);
  tconn *tc = shim_tc(fd);
  return tc ? tc_write(tc, buf, len, 0) : real.write(fd, buf, len);
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
  ENSURE(recv);
  tconn *tc = shim_tc(fd);
  return tc ? tc_read(tc, buf, len, flags) : real.recv(fd, buf, len, flags);
}

ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags) {
  return recv(fd, buf, len, flags);
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
  ENSURE(send);
  tconn *tc = shim_tc(fd);
  return tc ? tc_write(tc, buf, len, flags) : real.send(fd, buf, len, flags);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *alen) {
  ENSURE(recvfrom);
  tconn *tc = shim_tc(fd);
  if (!tc) return real.recvfrom(fd, buf, len, flags, addr, alen);
  if (addr && alen) getpeername(fd, addr, alen);
  return tc_read(tc, buf, len, flags);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                       struct sockaddr *addr, socklen_t *alen) {
  return recvfrom(fd, buf, len, flags, addr, alen);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
               socklen_t alen) {
  ENSURE(sendto);
  tconn *tc = shim_tc(fd);
  return tc ? tc_write(tc, buf, len, flags) : real.sendto(fd, buf, len, flags, addr, alen);
}

ssize_t readv(int fd, const struct iovec *iov, int n) {
  ENSURE(readv);
  tconn *tc = shim_tc(fd);
  return tc ? tc_readv(tc, iov, n, 0) : real.readv(fd, iov, n);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
  ENSURE(writev);
  tconn *tc = shim_tc(fd);
  return tc ? tc_writev(tc, iov, n, 0) : real.writev(fd, iov, n);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  ENSURE(recvmsg);
  tconn *tc = shim_tc(fd);
  if (!tc) return real.recvmsg(fd, msg, flags);
  msg->msg_controllen = 0; /* no ancillary data travels inside TLS */
  msg->msg_flags = 0;
  if (msg->msg_name && msg->msg_namelen) getpeername(fd, msg->msg_name, &msg->msg_namelen);
  return tc_readv(tc, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  ENSURE(sendmsg);
  tconn *tc = shim_tc(fd);
  return tc ? tc_writev(tc, msg->msg_iov, (int)msg->msg_iovlen, flags)
            : real.sendmsg(fd, msg, flags);
}

/* sendfile to a TLS socket: read the file, write through TLS; the file offset (or *offset) moves
 * only by what TLS accepted. */
static ssize_t tls_sendfile(tconn *tc, int in_fd, off_t *offset, size_t count) {
  char buf[65536];
  off_t pos = offset ? *offset : lseek(in_fd, 0, SEEK_CUR);
  if (pos < 0) return -1;
  size_t want = count < sizeof(buf) ? count : sizeof(buf);
  ssize_t r = pread(in_fd, buf, want, pos);
  if (r <= 0) return r;
  ssize_t w = tc_write(tc, buf, (size_t)r, 0);
  if (w <= 0) return w;
  if (offset)
    *offset = pos + w;
  else
    lseek(in_fd, pos + w, SEEK_SET);
  return w;
}

ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count) {
  ENSURE(sendfile);
  tconn *tc = shim_tc(out_fd);
  return tc ? tls_sendfile(tc, in_fd, offset, count) : real.sendfile(out_fd, in_fd, offset, count);
}

ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count) {
  ENSURE(sendfile64);
  tconn *tc = shim_tc(out_fd);
  return tc ? tls_sendfile(tc, in_fd, offset, count) : real.sendfile64(out_fd, in_fd, offset, count);
}

ssize_t splice(int in_fd, loff_t *in_off, int out_fd, loff_t *out_off, size_t len,
               unsigned int flags) {
  ENSURE(splice);
  tconn *tin = shim_tc(in_fd), *tout = shim_tc(out_fd);
  if (!tin && !tout) return real.splice(in_fd, in_off, out_fd, out_off, len, flags);
  char buf[65536];
  size_t want = len < sizeof(buf) ? len : sizeof(buf);
  int nb = (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0;
  ssize_t r;
  if (tin) {
    r = tc_read(tin, buf, want, nb);
    if (r <= 0) return r;
    for (ssize_t off = 0; off < r;) { /* the pipe side takes all of it */
      ssize_t w = out_off ? pwrite(out_fd, buf + off, (size_t)(r - off), *out_off + off)
                          : real.write(out_fd, buf + off, (size_t)(r - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return off ? off : -1;
      off += w;
    }
    if (out_off) *out_off += r;
    return r;
  }
  /* into TLS: bytes read from a pipe cannot be put back, so the TLS write waits if it must */
  r = in_off ? pread(in_fd, buf, want, *in_off) : real.read(in_fd, buf, want);
  if (r <= 0) return r;
  ssize_t total = 0;
  while (total < r) {
    ssize_t w = tc_write(tout, buf + total, (size_t)(r - total), 0);
    if (w < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = out_fd, .events = POLLOUT};
      poll(&p, 1, 100);
      continue;
    }
    if (w <= 0) return total ? total : -1;
    total += w;
  }
  if (in_off) *in_off += total;
  return total;
}
