/* tls_io.c — reading and writing the host's plaintext through one TLS connection, with the host's
 * blocking or non-blocking semantics, and the readiness checks poll/select/epoll use:
 * - reads fill the host's buffer until the engine wants more input (so a drained socket means a
 *   drained connection, which edge-triggered loops rely on);
 * - a readiness check decrypts before saying POLLIN (a partial record or a session ticket is not
 *   data), keeping what it decrypted in `rbuf` for the next read;
 * - ciphertext goes through `obuf`, so a write is all-or-EAGAIN for the host and the engine never
 *   has to be retried with the same bytes;
 * - a read that needs the socket writable (or the reverse) waits on the right direction. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define OUT_HIGH (64 * 1024) /* above this much unsent ciphertext, writes wait (EAGAIN) */
#define WRITE_CHUNK (256 * 1024)
#define RBUF_SIZE 16384

int64_t shim_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int shim_fd_blocking(int fd) {
  int fl = real.fcntl(fd, F_GETFL);
  return fl >= 0 && !(fl & O_NONBLOCK);
}

/* ---- the hot list: connections whose readiness the kernel cannot see (buffered plaintext, a
 * pending result, unsent ciphertext). epoll_wait consults it before sleeping. ---- */
#define HOT_MAX 4096
static tconn *hot[HOT_MAX];
static int n_hot;
static pthread_mutex_t hot_lock = PTHREAD_MUTEX_INITIALIZER;

static int is_hot(tconn *tc) {
  if (tc->state == ST_SNIFF) return 1; /* a decision is due at the sniff deadline */
  if (!sli_conn_is_secured(tc->conn)) return 1; /* the handshake deadline */
  return tc->rlen > 0 || tc->reof || tc->olen > 0 || tc->write_blocked ||
         sli_conn_pending(tc->conn) > 0;
}

/* hot_remove_locked takes `tc` off the hot list; hot_lock is held. */
static void hot_remove_locked(tconn *tc) {
  for (int i = 0; i < n_hot; i++)
    if (hot[i] == tc) {
      hot[i] = hot[--n_hot];
      break;
    }
  tc->hot = 0;
}

/* Called with tc->lock held at the end of every operation. */
static void update_hot(tconn *tc) {
  int want = (tc->state == ST_TLS || tc->state == ST_SNIFF) && is_hot(tc);
  if (want == tc->hot) return;
  pthread_mutex_lock(&hot_lock);
  if (want && n_hot < HOT_MAX) {
    hot[n_hot++] = tc;
    tc->hot = 1;
  } else if (!want) {
    hot_remove_locked(tc);
  }
  pthread_mutex_unlock(&hot_lock);
}

/* tc_track puts a new connection on the hot list (its handshake or sniff deadline runs). */
void tc_track(tconn *tc) {
  pthread_mutex_lock(&tc->lock);
  update_hot(tc);
  pthread_mutex_unlock(&tc->lock);
}

int shim_hot_snapshot(tconn **out, int max) {
  pthread_mutex_lock(&hot_lock);
  int n = n_hot < max ? n_hot : max;
  memcpy(out, hot, (size_t)n * sizeof(*out));
  for (int i = 0; i < n; i++) atomic_fetch_add(&out[i]->refs, 1);
  pthread_mutex_unlock(&hot_lock);
  return n;
}

void shim_hot_reset_after_fork(void) { pthread_mutex_init(&hot_lock, NULL); }

void shim_hot_remove(tconn *tc) {
  pthread_mutex_lock(&hot_lock);
  hot_remove_locked(tc);
  pthread_mutex_unlock(&hot_lock);
}

/* ---- errors ---- */

/* fail records the engine's failure as the errno the host expects, logs it once. */
static int fail(tconn *tc, int code) {
  int e;
  switch (sli_error_category(code)) {
    case SLI_ECAT_VERIFY: e = ECONNREFUSED; break;
    case SLI_ECAT_IO: e = code == SLI_E_TIMEOUT ? ETIMEDOUT : (tc->rerr ? tc->rerr : ECONNRESET); break;
    default: e = ECONNRESET; break;
  }
  if (tc->state != ST_FAILED) {
    const char *m = sli_conn_error(tc->conn);
    if (sli_error_category(code) == SLI_ECAT_IO && code != SLI_E_TIMEOUT) /* resets: routine */
      shim_log(LOG_INFO_, "%s: %s: %s", tc_peer(tc), sli_err_name(code), m ? m : sli_strerror(code));
    else
      shim_log(LOG_WARN_, "%s: %s: %s", tc_peer(tc), sli_err_name(code), m ? m : sli_strerror(code));
    tc->state = ST_FAILED;
    tc->ferr = e;
  }
  return e;
}

/* ---- output ---- */

/* flush hands buffered ciphertext to the kernel without blocking. */
static void flush_locked(tconn *tc) {
  size_t off = 0;
  while (off < tc->olen) {
    ssize_t r = real.send(tc->io_fd, tc->obuf + off, tc->olen - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0) {
      off += (size_t)r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    tc->werr = r < 0 ? errno : EPIPE;
    off = tc->olen;
  }
  if (off) {
    memmove(tc->obuf, tc->obuf + off, tc->olen - off);
    tc->olen -= off;
  }
  if (tc->olen == 0 && tc->obuf) { /* idle connections keep no buffer */
    free(tc->obuf);
    tc->obuf = NULL;
    tc->ocap = 0;
  }
}

void tc_flush(tconn *tc) {
  pthread_mutex_lock(&tc->lock);
  flush_locked(tc);
  update_hot(tc);
  pthread_mutex_unlock(&tc->lock);
}

int tc_has_output(tconn *tc) { return __atomic_load_n(&tc->olen, __ATOMIC_RELAXED) > 0; }

/* wait_fd waits (without the lock) for `events` on the socket, at most `ms` (-1: no limit, but
 * never past the handshake deadline while the handshake runs). */
static void wait_fd(tconn *tc, short events, int ms) {
  struct pollfd p = {.fd = tc->io_fd, .events = events};
  if (tc->state == ST_TLS && !sli_conn_is_secured(tc->conn) && tc->hs_deadline_ms != INT64_MAX) {
    int64_t left = tc->hs_deadline_ms - shim_now_ms();
    if (left < 0) left = 0;
    if (ms < 0 || left < ms) ms = (int)left;
  }
  pthread_mutex_unlock(&tc->lock);
  real.poll(&p, 1, ms);
  pthread_mutex_lock(&tc->lock);
}

/* ---- SLI_MODE=optional: TLS or plaintext, by the first byte ---- */

/* sniff decides the protocol of a server connection from the client's first byte: 0x16 (a TLS
 * handshake record) means TLS; anything else, EOF, or silence until the sniff deadline means
 * plaintext. Returns 1 when decided, 0 when undecided and the host must not block. */
static int sniff(tconn *tc, int may_block) {
  for (;;) {
    unsigned char b;
    ssize_t r = real.recv(tc->io_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    int64_t left = tc->sniff_deadline_ms - shim_now_ms();
    if (r == 1 || r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR) || left <= 0) {
      tc->state = (r == 1 && b == 0x16) ? ST_TLS : ST_PLAIN;
      shim_log(LOG_INFO_, "%s: %s", tc_peer(tc),
               tc->state == ST_TLS ? "TLS client" : "plaintext client (SLI_MODE=optional)");
      return 1;
    }
    if (!may_block) return 0;
    wait_fd(tc, POLLIN, (int)left);
  }
}

/* ---- reads ---- */

static int nonblocking(tconn *tc, int flags) {
  return (flags & MSG_DONTWAIT) || !shim_fd_blocking(tc->io_fd);
}

/* take_result turns a stored read result (EOF or error) into the host's return. */
static ssize_t take_result(tconn *tc) {
  if (tc->rerr_pending) {
    errno = tc->rerr_pending;
    return -1;
  }
  return 0;
}

/* decrypt reads from the engine; returns >0 bytes, 0 clean EOF or truncation (EOF), -1 with
 * errno, or -2 for "the engine wants `*want`". */
static ssize_t decrypt(tconn *tc, void *buf, size_t len, int *want) {
  ssize_t n = sli_conn_read(tc->conn, buf, len);
  flush_locked(tc); /* the handshake, key updates and alerts produce output */
  if (n >= 0) return n;
  if (n == SLI_WANT_READ || n == SLI_WANT_WRITE) {
    *want = (int)n;
    return -2;
  }
  if (n == SLI_E_TRUNCATED) {
    shim_log(LOG_INFO_, "%s: closed without close_notify", tc_peer(tc));
    return 0;
  }
  errno = fail(tc, (int)n);
  return -1;
}

/* fill_rbuf decrypts into rbuf without blocking (a readiness check); records EOF / errors. */
static void fill_rbuf(tconn *tc) {
  if (tc->state != ST_TLS || tc->rlen > 0 || tc->reof) return;
  if (!tc->rbuf && !(tc->rbuf = malloc(RBUF_SIZE))) return;
  int want;
  tc->roff = 0;
  ssize_t n = decrypt(tc, tc->rbuf, RBUF_SIZE, &want);
  if (n > 0) {
    tc->rlen = (size_t)n;
  } else if (n == 0 || n == -1) {
    tc->reof = 1;
    tc->rerr_pending = n == -1 ? errno : 0;
  }
  if (tc->rlen == 0) {
    free(tc->rbuf);
    tc->rbuf = NULL;
  }
}

ssize_t tc_read(tconn *tc, void *buf, size_t len, int flags) {
  int saved = errno;
  pthread_mutex_lock(&tc->lock);
  ssize_t ret;
  if (tc->state == ST_SNIFF && !sniff(tc, !nonblocking(tc, flags))) {
    ret = -1;
    errno = EAGAIN;
    goto out;
  }
  if (tc->state == ST_PLAIN) {
    update_hot(tc);
    pthread_mutex_unlock(&tc->lock);
    return real.recv(tc->io_fd, buf, len, flags);
  }
  if (tc->state == ST_FAILED && !tc->rlen) {
    errno = tc->ferr;
    ret = -1;
    goto out;
  }
  size_t got = 0;
  for (;;) {
    if (tc->rlen > 0) { /* what a readiness check decrypted comes first */
      size_t n = len - got < tc->rlen ? len - got : tc->rlen;
      memcpy((char *)buf + got, tc->rbuf + tc->roff, n);
      if (!(flags & MSG_PEEK)) {
        tc->roff += n;
        tc->rlen -= n;
        if (tc->rlen == 0) {
          free(tc->rbuf);
          tc->rbuf = NULL;
        }
      }
      got += n;
      if (flags & MSG_PEEK) break;
    }
    if (got == len || (got > 0 && (flags & MSG_PEEK))) break;
    if (tc->reof) {
      if (got) break;
      ret = take_result(tc);
      goto out;
    }
    if (flags & MSG_PEEK) { /* peek: decrypt into rbuf, then copy from it */
      fill_rbuf(tc);
      if (tc->rlen || tc->reof) continue;
      if (nonblocking(tc, flags)) {
        errno = EAGAIN;
        ret = -1;
        goto out;
      }
      wait_fd(tc, POLLIN | (tc->olen ? POLLOUT : 0), -1);
      continue;
    }
    int want = 0;
    ssize_t n = decrypt(tc, (char *)buf + got, len - got, &want);
    if (n > 0) {
      got += (size_t)n;
      continue; /* fill the host's buffer until the engine wants more input */
    }
    if (n == 0 || n == -1) {
      if (got) { /* report the data now, the EOF or error on the next call */
        tc->reof = 1;
        tc->rerr_pending = n == -1 ? errno : 0;
        break;
      }
      ret = n;
      goto out;
    }
    /* the engine wants the socket */
    if (got && !(flags & MSG_WAITALL)) break;
    if (nonblocking(tc, flags)) {
      if (got) break;
      errno = EAGAIN;
      ret = -1;
      goto out;
    }
    wait_fd(tc, (want == SLI_WANT_WRITE ? POLLOUT : POLLIN) | (tc->olen ? POLLOUT : 0), -1);
    if (!sli_conn_is_secured(tc->conn) && shim_now_ms() >= tc->hs_deadline_ms) {
      errno = fail(tc, SLI_E_TIMEOUT);
      ret = got ? (ssize_t)got : -1;
      goto out;
    }
  }
  ret = (ssize_t)got;
  errno = saved;
out:
  update_hot(tc);
  pthread_mutex_unlock(&tc->lock);
  return ret;
}

ssize_t tc_readv(tconn *tc, const struct iovec *iov, int n, int flags) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += iov[i].iov_len;
  if (n == 1) return tc_read(tc, iov[0].iov_base, iov[0].iov_len, flags);
  char stack[16384];
  char *tmp = total <= sizeof(stack) ? stack : malloc(total);
  if (!tmp) {
    errno = ENOMEM;
    return -1;
  }
  ssize_t r = tc_read(tc, tmp, total, flags);
  for (int i = 0, off = 0; r > 0 && i < n && off < r; i++) {
    size_t c = iov[i].iov_len < (size_t)(r - off) ? iov[i].iov_len : (size_t)(r - off);
    memcpy(iov[i].iov_base, tmp + off, c);
    off += (int)c;
  }
  if (tmp != stack) free(tmp);
  return r;
}

/* ---- writes ---- */

ssize_t tc_write(tconn *tc, const void *buf, size_t len, int flags) {
  int saved = errno;
  pthread_mutex_lock(&tc->lock);
  ssize_t ret = -1;
  if (tc->state == ST_SNIFF) sniff(tc, 1); /* a server that speaks first: decide now */
  if (tc->state == ST_PLAIN) {
    update_hot(tc);
    pthread_mutex_unlock(&tc->lock);
    return real.send(tc->io_fd, buf, len, flags | MSG_NOSIGNAL);
  }
  for (;;) {
    if (tc->state == ST_FAILED) {
      errno = tc->ferr;
      goto out;
    }
    if (tc->werr || tc->shut_wr) {
      errno = tc->shut_wr ? EPIPE : tc->werr;
      goto out;
    }
    flush_locked(tc);
    if (tc->olen > OUT_HIGH) {
      if (nonblocking(tc, flags)) {
        tc->write_blocked = 1; /* the kernel may never signal the drain of our buffer: we will */
        errno = EAGAIN;
        goto out;
      }
      wait_fd(tc, POLLOUT, -1);
      continue;
    }
    if (len == 0) {
      ret = 0;
      goto out;
    }
    size_t chunk = len < WRITE_CHUNK ? len : WRITE_CHUNK;
    ssize_t n = sli_conn_write(tc->conn, buf, chunk);
    if (n > 0) {
      flush_locked(tc);
      if (!nonblocking(tc, flags)) /* blocking: the bytes reach the kernel before we return */
        while (tc->olen && !tc->werr) {
          wait_fd(tc, POLLOUT, -1);
          flush_locked(tc);
        }
      ret = n;
      if ((size_t)n < len) tc->write_blocked = 1; /* a short write: the host may wait for POLLOUT */
      errno = saved;
      goto out;
    }
    flush_locked(tc);
    if (n == SLI_WANT_READ || n == SLI_WANT_WRITE) { /* the handshake needs the peer */
      if (nonblocking(tc, flags)) {
        errno = EAGAIN;
        goto out;
      }
      wait_fd(tc, (n == SLI_WANT_READ ? POLLIN : POLLOUT) | (tc->olen ? POLLOUT : 0), -1);
      if (!sli_conn_is_secured(tc->conn) && shim_now_ms() >= tc->hs_deadline_ms) {
        errno = fail(tc, SLI_E_TIMEOUT);
        goto out;
      }
      continue;
    }
    if (n == SLI_E_CLOSED) {
      errno = EPIPE;
      goto out;
    }
    errno = fail(tc, (int)n);
    goto out;
  }
out:
  update_hot(tc);
  pthread_mutex_unlock(&tc->lock);
  return ret;
}

ssize_t tc_writev(tconn *tc, const struct iovec *iov, int n, int flags) {
  if (n == 1) return tc_write(tc, iov[0].iov_base, iov[0].iov_len, flags);
  size_t total = 0;
  for (int i = 0; i < n; i++) total += iov[i].iov_len;
  if (total > WRITE_CHUNK) total = WRITE_CHUNK;
  if (total == 0) return tc_write(tc, "", 0, flags);
  char stack[16384];
  char *tmp = total <= sizeof(stack) ? stack : malloc(total);
  if (!tmp) {
    errno = ENOMEM;
    return -1;
  }
  size_t off = 0;
  for (int i = 0; i < n && off < total; i++) {
    size_t c = iov[i].iov_len < total - off ? iov[i].iov_len : total - off;
    memcpy(tmp + off, iov[i].iov_base, c);
    off += c;
  }
  ssize_t r = tc_write(tc, tmp, total, flags);
  if (tmp != stack) free(tmp);
  return r;
}

/* ---- readiness ---- */

short tc_poll_prepare(tconn *tc, short want, short *ready_now, int64_t *deadline) {
  *ready_now = 0;
  pthread_mutex_lock(&tc->lock);
  short ev = 0;
  if (tc->state == ST_SNIFF) {
    if (shim_now_ms() >= tc->sniff_deadline_ms) sniff(tc, 0);
    else {
      if (tc->sniff_deadline_ms < *deadline) *deadline = tc->sniff_deadline_ms;
      pthread_mutex_unlock(&tc->lock);
      return POLLIN; /* the host's POLLOUT waits for the decision too */
    }
  }
  if (tc->state == ST_PLAIN) {
    update_hot(tc);
    pthread_mutex_unlock(&tc->lock);
    return want;
  }
  if (tc->state == ST_FAILED) {
    *ready_now = want & (POLLIN | POLLOUT);
    pthread_mutex_unlock(&tc->lock);
    return 0;
  }
  if (!sli_conn_is_secured(tc->conn)) { /* a silent peer must not hold the connection forever */
    if (shim_now_ms() >= tc->hs_deadline_ms) {
      errno = fail(tc, SLI_E_TIMEOUT);
      *ready_now = want & (POLLIN | POLLOUT);
      update_hot(tc);
      pthread_mutex_unlock(&tc->lock);
      return 0;
    }
    if (tc->hs_deadline_ms < *deadline) *deadline = tc->hs_deadline_ms;
  }
  if (!sli_conn_is_secured(tc->conn) && !tc->started) {
    /* start the handshake (a client sends its hello) without waiting for the host's first I/O */
    tc->started = 1;
    int r = sli_conn_handshake(tc->conn);
    flush_locked(tc);
    if (r < 0 && r != SLI_WANT_READ && r != SLI_WANT_WRITE) fail(tc, r);
  }
  if ((want & POLLIN) && (tc->rlen || tc->reof || sli_conn_pending(tc->conn))) *ready_now |= POLLIN;
  if (tc->write_blocked && tc->olen) flush_locked(tc);
  if (tc->write_blocked && tc->olen <= OUT_HIGH && (want & POLLOUT)) {
    *ready_now |= POLLOUT;
    tc->write_blocked = 0;
  }
  if (want & POLLIN) ev |= POLLIN;
  if (want & POLLOUT) {
    if (sli_conn_is_secured(tc->conn))
      ev |= POLLOUT;
    else
      ev |= sli_conn_want(tc->conn) == SLI_WANT_WRITE ? POLLOUT : POLLIN;
  }
  if (tc->olen) ev |= POLLOUT;
  if (tc->state == ST_FAILED) *ready_now |= want & (POLLIN | POLLOUT);
  update_hot(tc);
  pthread_mutex_unlock(&tc->lock);
  return ev;
}

short tc_poll_check(tconn *tc, short want, short got) {
  pthread_mutex_lock(&tc->lock);
  short out = got & (POLLERR | POLLHUP | POLLNVAL);
  if (tc->state == ST_SNIFF) {
    if (got & (POLLIN | POLLHUP | POLLERR)) sniff(tc, 0);
    if (tc->state == ST_SNIFF) {
      pthread_mutex_unlock(&tc->lock);
      return 0;
    }
  }
  if (tc->state == ST_PLAIN) {
    update_hot(tc);
    pthread_mutex_unlock(&tc->lock);
    return got & (want | POLLERR | POLLHUP | POLLNVAL | POLLRDHUP);
  }
  if (got & POLLOUT) flush_locked(tc);
  if (tc->state == ST_TLS && (got & (POLLIN | POLLHUP | POLLERR))) {
    if (!sli_conn_is_secured(tc->conn)) {
      int r = sli_conn_handshake(tc->conn);
      flush_locked(tc);
      if (r < 0 && r != SLI_WANT_READ && r != SLI_WANT_WRITE) fail(tc, r);
    }
    if ((want & POLLIN) && tc->state == ST_TLS && sli_conn_is_secured(tc->conn)) fill_rbuf(tc);
  }
  if ((want & POLLIN) && (tc->rlen || tc->reof || sli_conn_pending(tc->conn))) out |= POLLIN;
  if ((want & POLLOUT) && sli_conn_is_secured(tc->conn) && tc->olen <= OUT_HIGH &&
      (got & (POLLOUT | POLLIN))) {
    out |= POLLOUT;
    tc->write_blocked = 0;
  }
  if (tc->state == ST_FAILED) out |= want & (POLLIN | POLLOUT);
  if ((got & POLLRDHUP) && (want & POLLRDHUP)) out |= POLLRDHUP;
  update_hot(tc);
  pthread_mutex_unlock(&tc->lock);
  return out;
}

size_t tc_readable_bytes(tconn *tc) {
  pthread_mutex_lock(&tc->lock);
  if (tc->state == ST_TLS && sli_conn_is_secured(tc->conn)) fill_rbuf(tc);
  size_t n = tc->rlen + sli_conn_pending(tc->conn);
  update_hot(tc);
  pthread_mutex_unlock(&tc->lock);
  return n;
}

void tc_shutdown_write(tconn *tc) {
  pthread_mutex_lock(&tc->lock);
  if (tc->state == ST_TLS && !tc->shut_wr && sli_conn_is_secured(tc->conn)) {
    sli_conn_close(tc->conn);
    flush_locked(tc);
    for (int i = 0; i < 100 && tc->olen && !tc->werr; i++) { /* at most ~1 s */
      wait_fd(tc, POLLOUT, 10);
      flush_locked(tc);
    }
  }
  tc->shut_wr = 1;
  pthread_mutex_unlock(&tc->lock);
}

/* tc_close ends the session when the host closes its last fd: pending ciphertext and close_notify
 * are sent by the owning process only (a forked child must not end its parent's session). */
void tc_close(tconn *tc) {
  shim_hot_remove(tc);
  if (tc->owner != getpid() || tc->state != ST_TLS) return;
  pthread_mutex_lock(&tc->lock);
  for (int i = 0; i < 100 && tc->olen && !tc->werr; i++) {
    flush_locked(tc);
    if (tc->olen) wait_fd(tc, POLLOUT, 10);
  }
  pthread_mutex_unlock(&tc->lock);
  if (!tc->shut_wr) tc_shutdown_write(tc);
}
