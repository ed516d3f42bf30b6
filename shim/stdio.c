/* stdio.c — stdio streams on TLS fds. glibc's stdio calls its internal read/write/close, which an
 * interposer never sees: a FILE made by fdopen() on a TLS fd would write plaintext and read
 * ciphertext. So fdopen() on a TLS fd returns a stream whose reads, writes and close go through the
 * shim (fopencookie; fileno() still answers the fd), and when fd 0, 1 or 2 becomes a TLS connection
 * (dup2 onto it, or an accept that returns it), stdin / stdout / stderr are replaced the same way
 * (the old FILE is pointed at no fd, so a saved pointer to it fails instead of leaking). When the fd
 * stops being TLS, the original stream comes back. At exit, our streams are flushed before the
 * sessions end. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"


typedef struct cookie {
  int fd;
  FILE *f;
  struct cookie *next;
} cookie;

static cookie *ours;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *saved_std[3];
static cookie *std_cookie[3];

static ssize_t c_read(void *p, char *buf, size_t len) {
  cookie *c = p;
  if (c->fd < 0) {
    errno = EBADF;
    return -1;
  }
  return read(c->fd, buf, len); /* our read: TLS */
}

static ssize_t c_write(void *p, const char *buf, size_t len) {
  cookie *c = p;
  if (c->fd < 0) {
    errno = EBADF;
    return 0;
  }
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(c->fd, buf + off, len - off);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) { /* a non-blocking fd: wait, as glibc's stdio would spin */
      struct pollfd p2 = {.fd = c->fd, .events = POLLOUT};
      shim_poll(&p2, 1, -1, NULL);
      continue;
    }
    break;
  }
  return (ssize_t)off; /* 0 reports the error */
}

static int c_seek(void *p, off64_t *off, int whence) {
  errno = ESPIPE; /* a socket: ftell, fseek and the sync of a read-ahead buffer fail as glibc's do */
  return -1;
}

static int c_close(void *p) {
  cookie *c = p;
  pthread_mutex_lock(&mu);
  for (cookie **q = &ours; *q; q = &(*q)->next)
    if (*q == c) {
      *q = c->next;
      break;
    }
  pthread_mutex_unlock(&mu);
  int r = 0;
  if (c->fd >= 0) r = close(c->fd); /* our close: the session ends as with close() */
  free(c);
  return r;
}

static FILE *cookie_stream(int fd, const char *mode) {
  cookie *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->fd = fd;
  cookie_io_functions_t io = {.read = c_read, .write = c_write, .seek = c_seek, .close = c_close};
  FILE *f = fopencookie(c, mode, io);
  if (!f) {
    free(c);
    return NULL;
  }
  f->_fileno = fd; /* fileno() answers the fd; cookie streams do no I/O through it */
  c->f = f;
  pthread_mutex_lock(&mu);
  c->next = ours;
  ours = c;
  pthread_mutex_unlock(&mu);
  return f;
}

FILE *fdopen(int fd, const char *mode) {
  ENSURE(fdopen);
  if (!shim_is_tls(fd) || shim_foreign()) return real.fdopen(fd, mode);
  return cookie_stream(fd, mode);
}

static FILE **std_var(int fd) { return fd == 0 ? &stdin : fd == 1 ? &stdout : &stderr; }

void stdio_fd_became_tls(int fd) {
  if (fd < 0 || fd > 2 || std_cookie[fd] || shim_foreign()) return;
  FILE **v = std_var(fd);
  FILE *old = *v;
  FILE *f = cookie_stream(fd, fd == 0 ? "r" : "w");
  if (!f) return;
  /* the buffering the host chose (setvbuf) carries over; glibc's flag values (libio.h) */
  enum { IO_UNBUFFERED = 0x0002, IO_LINE_BUF = 0x0200 };
  if (fd == 2 || (old && (old->_flags & IO_UNBUFFERED))) setvbuf(f, NULL, _IONBF, 0);
  else if (old && (old->_flags & IO_LINE_BUF)) setvbuf(f, NULL, _IOLBF, BUFSIZ);
  pthread_mutex_lock(&mu);
  for (cookie *c = ours; c; c = c->next)
    if (c->f == f) std_cookie[fd] = c;
  pthread_mutex_unlock(&mu);
  saved_std[fd] = old;
  if (old) {
    flockfile(old);
    if (fd > 0 && old->_IO_write_ptr > old->_IO_write_base) {
      /* output still buffered goes to the connection, as it would go to the new fd 1 or 2 */
      fwrite(old->_IO_write_base, 1, (size_t)(old->_IO_write_ptr - old->_IO_write_base), f);
      old->_IO_write_ptr = old->_IO_write_base;
    }
    old->_fileno = -1; /* a pointer kept to the old stream fails (EBADF) instead of leaking */
    funlockfile(old);
  }
  *v = f;
}

void stdio_fd_left_tls(int fd) {
  if (fd < 0 || fd > 2 || !std_cookie[fd]) return;
  FILE **v = std_var(fd);
  cookie *c = std_cookie[fd];
  std_cookie[fd] = NULL;
  c->fd = -1; /* the stream we made no longer names the fd (it may be closed by the host later) */
  if (saved_std[fd]) {
    saved_std[fd]->_fileno = fd;
    *v = saved_std[fd];
  }
  saved_std[fd] = NULL;
}

void stdio_flush_ours(void) {
  pthread_mutex_lock(&mu);
  FILE *list[64];
  int n = 0;
  for (cookie *c = ours; c && n < 64; c = c->next)
    if (c->fd >= 0) list[n++] = c->f;
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < n; i++) fflush(list[i]);
}
