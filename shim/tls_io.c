/* tls_io.c — the host's plaintext through one TLS connection, with the semantics of a kernel TCP
 * socket:
 * - reads fill the host's buffer until the engine wants more input (a drained socket means a
 *   drained connection, which edge-triggered loops rely on); a readiness check decrypts before it
 *   says readable (a partial record or a session ticket is not data), keeping what it decrypted in
 *   `rbuf` for the next read;
 * - a non-blocking write takes what it is given as a kernel would: before the handshake (or the
 *   optional-mode decision) into `pbuf`, sent once the session is up; after it, encrypted and handed
 *   to the kernel, and EAGAIN only while the kernel itself is full (ciphertext it did not take waits
 *   in `obuf`, pushed by the service thread if nobody else writes);
 * - a blocking call waits inside the kernel, in a call with the host's own semantics: a blocking
 *   recv(MSG_PEEK) for input, a blocking send for output. SO_RCVTIMEO / SO_SNDTIMEO, signals (EINTR,
 *   or a restart under SA_RESTART) and the file's O_NONBLOCK then behave exactly as for a plain
 *   socket. Only handshake and optional-mode waits add their own deadline;
 * - TLS 1.3 half-close both ways: shutdown(SHUT_WR) sends close_notify and reads go on; after the
 *   peer's close_notify the host can still write its reply;
 * - after fork, only the process that owns the session (claim.c) does I/O on it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "shim.h"

#define CHUNK 16384          /* plaintext per engine write: one record */
#define BLOCK_CHUNK (256 * 1024) /* blocking writes encrypt this much between flushes */
#define PBUF_MAX (64 * 1024) /* plaintext accepted before the session is up */
#define RBUF_SIZE 16384

int64_t shim_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int shim_fd_nonblocking(int fd) {
  int fl = real.fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK);
}

/* nonblocking: is this call non-blocking? A file known non-blocking (set through our fcntl or
 * ioctl, or accepted with SOCK_NONBLOCK) costs no syscall; otherwise the kernel is asked. */
static int nonblocking(tconn *tc, int flags) {
  if ((flags & MSG_DONTWAIT) || tc->nb_known == 2) return 1;
  if (!shim_fd_nonblocking(tc->io_fd)) return 0;
  tc->nb_known = 2;
  return 1;
}

/* ---- peer name for log lines (computed on first use: no syscall per connection) ---- */

const char *tc_peer(tconn *tc) {
  if (tc->peer[0]) return tc->peer;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  char a[64] = "?";
  int port = 0;
  if (tc->io_fd >= 0 && getpeername(tc->io_fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof(a));
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof(a));
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
  }
  snprintf(tc->peer, sizeof(tc->peer), "%s:%d", a, port);
  return tc->peer;
}

void tconn_free_engine(tconn *tc) {
  sli_conn_free(tc->conn);
  tc->conn = NULL;
  if (tc->rcap > SHIM_BUF_SIZE) free(tc->rbuf);
  else shim_buf_put(tc->rbuf);
  tc->rcap = 0;
  free(tc->pbuf);
  free(tc->obuf);
  shim_buf_put(tc->cbuf);
  shim_buf_put(tc->ra);
  tc->rbuf = tc->pbuf = tc->obuf = tc->cbuf = tc->ra = NULL;
  tc->clen = tc->ralen = tc->raoff = 0;
  tc->rlen = tc->plen = tc->olen = tc->ocap = 0;
}

/* ---- transport (the engine's I/O, through the real libc calls; never blocks) ---- */

/* The last line of defence after fork: only the owner of a session moves bytes on its socket (the
 * first process to do so since the fork becomes the owner). A copy in another process fails
 * instead of consuming the owner's records or sending records under a key and sequence number the
 * owner uses too. */
static int may_io(tconn *tc) {
  if (tc_owned(tc)) return 1;
  tc->rerr = tc->werr = EPIPE;
  return 0;
}

/* transport_error: our call took an error the kernel had for the socket (a reset, a timeout):
 * the host is owed it, as its own next call (or getsockopt SO_ERROR) would have taken it. */
static void transport_error(tconn *tc, int e) {
  if (e == EPIPE || e == EBADF || e == ENOTSOCK) return; /* not a pending socket error */
  if (!tc->reset) {
    tc->reset = 1;
    tc->soerr = e;
  }
  tc->k_err = tc->k_hup = tc->k_rdhup = tc->k_in = 1;
}

#define RA_SIZE SHIM_BUF_SIZE

static ssize_t t_read(sli_conn *c, void *buf, size_t len, void *arg) {
  tconn *tc = arg;
  if (tc->io_fd < 0 || !may_io(tc)) return SLI_E_IO;
  if (tc->ralen) { /* read ahead by the last call */
    size_t n = len < tc->ralen ? len : tc->ralen;
    memcpy(buf, tc->ra + tc->raoff, n);
    tc->raoff += n;
    tc->ralen -= n;
    if (!tc->ralen) {
      shim_buf_put(tc->ra);
      tc->ra = NULL;
      tc->raoff = 0;
    }
    return (ssize_t)n;
  }
  for (;;) {
    /* The engine asks for a record header, then its body: one recv of up to a record fetches both
     * (the rest waits in `ra`, freed once taken). */
    unsigned char *into = buf;
    size_t want = len;
    if (len < 4096 && !tc->svc_driving && (tc->ra || (tc->ra = shim_buf_get()))) {
      into = tc->ra;
      want = RA_SIZE;
    }
    ssize_t r = real.recv(tc->io_fd, into, want, MSG_DONTWAIT);
    if (r > 0 && into != buf) {
      size_t n = len < (size_t)r ? len : (size_t)r;
      memcpy(buf, into, n);
      tc->raoff = n;
      tc->ralen = (size_t)r - n;
      if (!tc->ralen) {
        shim_buf_put(tc->ra);
        tc->ra = NULL;
        tc->raoff = 0;
      }
      return (ssize_t)n;
    }
    if (into != buf && r <= 0) {
      shim_buf_put(tc->ra);
      tc->ra = NULL;
    }
    if (r > 0) return r;
    if (r == 0) {
      tc->peer_closed = 1;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      tc->k_in = 0;
      return SLI_WANT_READ;
    }
    tc->rerr = errno;
    transport_error(tc, errno);
    return SLI_E_IO;
  }
}

/* queue keeps ciphertext the kernel did not take. */
static int queue(tconn *tc, const void *buf, size_t len) {
  if (tc->olen + len > tc->ocap) {
    size_t cap = tc->ocap ? tc->ocap : 16384 + 512;
    while (cap < tc->olen + len) cap *= 2;
    unsigned char *p = realloc(tc->obuf, cap);
    if (!p) return -1;
    tc->obuf = p;
    tc->ocap = cap;
  }
  memcpy(tc->obuf + tc->olen, buf, len);
  tc->olen += len;
  return 0;
}

/* The engine's transport write never reports WANT_WRITE: what the kernel does not take now is
 * queued, and with nothing queued the bytes go straight to the kernel (no copy, no allocation). */
static ssize_t t_write(sli_conn *c, const void *buf, size_t len, void *arg) {
  tconn *tc = arg;
  if (tc->werr || tc->io_fd < 0 || !may_io(tc)) return SLI_E_IO;
  size_t done = 0;
  if (tc->olen == 0 && !tc->sending) {
    ssize_t r;
    do r = real.send(tc->io_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r == (ssize_t)len) return r;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      tc->werr = tc->rerr = errno;
      transport_error(tc, errno);
      return SLI_E_IO;
    }
    tc->k_out = 0;
    done = r > 0 ? (size_t)r : 0;
  }
  if (queue(tc, (const char *)buf + done, len - done)) return SLI_E_IO;
  return (ssize_t)len;
}

sli_read_fn tc_transport_read = t_read;
sli_write_fn tc_transport_write = t_write;

/* ---- output ---- */

/* flush_locked hands queued ciphertext to the kernel without blocking. */
void flush_locked(tconn *tc) {
  if (tc->sending || tc->io_fd < 0) return;
  if (!tc->olen) {
    if (tc->fin_pending && may_io(tc)) { /* the host's shutdown(SHUT_WR), after every byte */
      tc->fin_pending = 0;
      real.shutdown(tc->io_fd, SHUT_WR);
    }
    return;
  }
  if (!may_io(tc)) return;
  size_t off = 0;
  while (off < tc->olen) {
    ssize_t r = real.send(tc->io_fd, tc->obuf + off, tc->olen - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0) {
      off += (size_t)r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      tc->k_out = 0;
      break;
    }
    tc->werr = r < 0 ? errno : EPIPE;
    if (r < 0) transport_error(tc, errno);
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
  if (tc->olen == 0 && tc->fin_pending) { /* the host's shutdown(SHUT_WR), after every byte */
    tc->fin_pending = 0;
    real.shutdown(tc->io_fd, SHUT_WR);
  }
}

/* wait_out waits for the socket to take more, after the host's call has already moved bytes: a
 * signal (with or without SA_RESTART: poll is never restarted) or SO_SNDTIMEO (`*end`, read once)
 * ends the call with its count so far, as the kernel ends a send that transferred something. The
 * lock is released while waiting; the fd is read again afterwards (the host may have closed it:
 * the connection then goes on through a private dup). Returns 0, EINTR or EAGAIN. */
static int wait_out(tconn *tc, int64_t *end) {
  int fd = tc->io_fd;
  if (*end < 0) { /* the host's call started at -*end - 1 (see send_blocking) */
    struct timeval tv = {0, 0};
    socklen_t tl = sizeof(tv);
    getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl);
    int64_t ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    *end = ms > 0 ? (-*end - 1) + ms : INT64_MAX;
  }
  int64_t left = *end == INT64_MAX ? -1 : *end - shim_now_ms();
  if (*end != INT64_MAX && left <= 0) return EAGAIN;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  pthread_mutex_unlock(&tc->lock);
  int r = real.poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
  int e = errno;
  pthread_mutex_lock(&tc->lock);
  if (r < 0 && e == EINTR) return EINTR;
  if (r == 0) return EAGAIN;
  return 0;
}

/* send_blocking sends the queued ciphertext as the host's blocking send would. With nothing moved
 * yet by the host's call (`progress` 0): one blocking send of what is queued, without the lock (the
 * host's signals restart or interrupt it, SO_SNDTIMEO and O_NONBLOCK apply, exactly as to its own;
 * the call in progress keeps the socket even if another thread closes the fd). After that: sends
 * that do not block, under the lock, and wait_out between them. Returns 0 when all is sent, or the
 * errno that stopped it (what was not sent stays queued, first, and the service thread pushes
 * it). */
static int send_blocking(tconn *tc, size_t progress, int64_t *end_) {
  int64_t mine = -shim_now_ms() - 1, *end = end_ ? end_ : &mine;
  while (tc->olen > 0 && !tc->werr) {
    if (tc->sending) { /* another thread is sending the head: wait for it */
      struct pollfd p = {.fd = tc->io_fd, .events = POLLOUT};
      pthread_mutex_unlock(&tc->lock);
      real.poll(&p, 1, 5);
      pthread_mutex_lock(&tc->lock);
      continue;
    }
    if (!tc_owned(tc)) {
      tc->werr = EPIPE;
      return EPIPE;
    }
    if (progress) {
      flush_locked(tc);
      if (!tc->olen || tc->werr) break;
      int e = wait_out(tc, end);
      if (e) {
        svc_arm_locked(tc);
        return e;
      }
      continue;
    }
    unsigned char *buf = tc->obuf;
    size_t n = tc->olen, off = 0;
    int fd = tc->io_fd;
    tc->obuf = NULL;
    tc->olen = tc->ocap = 0;
    tc->sending = 1;
    pthread_mutex_unlock(&tc->lock);
    int err = 0;
    /* the kernel returns short only when a signal or SO_SNDTIMEO stopped it (or the file is
     * non-blocking after all): the host's write then returns its count so far */
    ssize_t r = real.send(fd, buf, n, MSG_NOSIGNAL);
    if (r > 0) off = (size_t)r;
    if (r < 0) err = errno;
    else if (off < n) err = EINTR;
    pthread_mutex_lock(&tc->lock);
    tc->sending = 0;
    if (off) progress = off;
    if (off < n) { /* put the rest back in front of anything queued meanwhile */
      size_t rest = n - off, cap = rest + tc->olen;
      unsigned char *p = malloc(cap);
      if (p) {
        memcpy(p, buf + off, rest);
        if (tc->olen) memcpy(p + rest, tc->obuf, tc->olen);
        free(tc->obuf);
        tc->obuf = p;
        tc->olen = cap;
        tc->ocap = cap;
      } else {
        tc->werr = ENOMEM;
      }
    }
    free(buf);
    if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) {
      if (tc->olen) svc_arm_locked(tc);
      return err;
    }
    if (err) {
      tc->werr = err;
      transport_error(tc, err);
      return err;
    }
  }
  if (tc->olen == 0 && tc->fin_pending) flush_locked(tc);
  return tc->werr;
}

/* tc_flush_blocking pushes queued ciphertext out, waiting at most until `deadline_ms` (exit,
 * relay). The lock is held by the caller. */
void tc_flush_blocking(tconn *tc, int64_t deadline_ms) {
  for (;;) {
    flush_locked(tc);
    if (!tc->olen || tc->werr || tc->io_fd < 0) return;
    int64_t left = deadline_ms - shim_now_ms();
    if (left <= 0) return;
    struct pollfd p = {.fd = tc->io_fd, .events = POLLOUT};
    pthread_mutex_unlock(&tc->lock);
    real.poll(&p, 1, left > 100 ? 100 : (int)left);
    pthread_mutex_lock(&tc->lock);
  }
}

/* ---- the engine's plaintext, counted for SLI_METRICS ---- */

/* noticed_secured counts a handshake once, wherever it completed (step, or a read or write that
 * drove it). */
static void noticed_secured(tconn *tc) {
  if (tc->hs_counted || !sli_conn_is_secured(tc->conn)) return;
  tc->hs_counted = tc->counted_live = 1;
  shim_count_handshake(sli_conn_is_resumed(tc->conn));
}

static ssize_t seal(tconn *tc, const void *buf, size_t len) {
  ssize_t n = sli_conn_write(tc->conn, buf, len);
  if (n > 0) shim_count_bytes(0, (size_t)n);
  if (__builtin_expect(!tc->hs_counted, 0)) noticed_secured(tc);
  return n;
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
    if (!tc->hs_counted) {
      shim_count_failure(code);
    } else if (tc->counted_live) { /* an established session failed: it is over */
      tc->counted_live = 0;
      shim_count_ended();
    }
    const char *m = sli_conn_error(tc->conn);
    if (sli_error_category(code) == SLI_ECAT_IO && code != SLI_E_TIMEOUT) /* resets: routine */
      shim_log(LOG_INFO_, "%s: %s: %s", tc_peer(tc), sli_err_name(code), m ? m : sli_strerror(code));
    else if (shim_failure_logged())
      shim_log(LOG_WARN_, "%s: %s: %s", tc_peer(tc), sli_err_name(code), m ? m : sli_strerror(code));
    tc->state = ST_FAILED;
    tc->ferr = e;
    free(tc->pbuf);
    tc->pbuf = NULL;
    tc->plen = 0;
  }
  return e;
}

void tc_mark_failed(tconn *tc) {
  if (tc->state != ST_FAILED) {
    tc->state = ST_FAILED;
    tc->ferr = EBADF;
  }
}

/* ---- ownership after fork ---- */

/* not_owner answers a call in a process that does not own the session: the owner ended it (the
 * host reads EOF) or another process owns it (the host gets an error, never a reused key). */
static ssize_t not_owner(tconn *tc, int is_write) {
  int32_t who = atomic_load(tc->claim);
  if (!tc->nonowner_logged) {
    tc->nonowner_logged = 1;
    if (who == CLAIM_ENDED)
      shim_log(LOG_INFO_, "%s: fd %d: the TLS session was ended by the process that owned it",
               tc_peer(tc), tc->io_fd);
    else if (who == CLAIM_RELAY)
      shim_log(LOG_INFO_, "%s: fd %d: the TLS session went with an exec'd program (its relay)",
               tc_peer(tc), tc->io_fd);
    else
      shim_log(LOG_WARN_, "%s: fd %d: this TLS session belongs to process %d since a fork (the first "
                          "process to use it owns it); this process cannot %s it",
               tc_peer(tc), tc->io_fd, (int)who, is_write ? "write" : "read");
  }
  if (!is_write && who == CLAIM_ENDED) return 0;
  errno = ECONNRESET; /* not EPIPE: no SIGPIPE for a connection this process merely shares */
  return -1;
}

static int is_owner(tconn *tc) { return atomic_load(tc->claim) == shim_pid; }

/* ---- the session's progress without blocking ---- */

/* connect_state: for a client whose TCP connect may be pending: 1 connected, 0 pending, -1 failed
 * (the socket's error is left for the host to read). */
static int connect_state(tconn *tc) {
  if (!tc->connecting) return 1;
  struct pollfd p = {.fd = tc->io_fd, .events = POLLOUT};
  if (real.poll(&p, 1, 0) < 0) return 0;
  if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return -1;
  if (p.revents & POLLOUT) {
    tc->connecting = 0;
    return 1;
  }
  return 0;
}

static void decide(tconn *tc, int tls);

/* sniff decides an optional-mode server connection from the client's first byte: 0x16 (a TLS
 * handshake record) means TLS; anything else, EOF, or silence until the deadline means plaintext.
 * Returns 1 when decided. Never waits. */
static int sniff_now(tconn *tc) {
  unsigned char b;
  ssize_t r = real.recv(tc->io_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r == 1) decide(tc, b == 0x16);
  else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
    decide(tc, 0);
  else if (shim_now_ms() >= tc->sniff_deadline_ms)
    decide(tc, 0);
  else
    tc->k_in = 0;
  return tc->state != ST_SNIFF;
}

static void pbuf_drain(tconn *tc);
static void close_when_up(tconn *tc);

static void decide(tconn *tc, int tls) {
  tc->state = tls ? ST_TLS : ST_PLAIN;
  shim_log(LOG_INFO_, "%s: %s", tc_peer(tc), tls ? "TLS client" : "plaintext client (SLI_MODE=optional)");
  if (!tls && tc->plen) { /* a server that spoke first: its banner goes out as it was written */
    if (queue(tc, tc->pbuf, tc->plen)) tc->werr = ENOMEM;
    free(tc->pbuf);
    tc->pbuf = NULL;
    tc->plen = 0;
    flush_locked(tc);
    if (tc->olen) svc_arm_locked(tc);
  }
  if (!tls && tc->shut_wr) close_when_up(tc);
  epoll_tc_changed(tc);
}

/* step runs whatever the session can do now without waiting: the connect check, the optional-mode
 * decision, the handshake, then the plaintext written before it. */
static void step(tconn *tc) {
  if (tc->state == ST_SNIFF) sniff_now(tc);
  if (tc->state != ST_TLS) return;
  if (connect_state(tc) != 1) return;
  if (!sli_conn_is_secured(tc->conn)) {
    if (shim_now_ms() >= tc->hs_deadline_ms) {
      fail(tc, SLI_E_TIMEOUT);
      return;
    }
    tc->started = 1;
    int r = sli_conn_handshake(tc->conn);
    flush_locked(tc);
    if (r < 0 && r != SLI_WANT_READ && r != SLI_WANT_WRITE) {
      fail(tc, r);
      return;
    }
    if (r != 0) return;
    noticed_secured(tc);
    epoll_tc_changed(tc);
  }
  if (tc->plen) pbuf_drain(tc);
  if (tc->shut_wr && !tc->notify_sent) close_when_up(tc);
  if (tc->olen) {
    flush_locked(tc);
    if (tc->olen) svc_arm_locked(tc);
  }
}

/* tc_needs_drive_locked: plaintext the host wrote before the session was up waits for input that
 * no call of the host may read soon (a server greeting one client, then blocking in accept for the
 * next): the service thread then runs the handshake (or the optional-mode decision) itself. */
int tc_needs_drive_locked(tconn *tc) {
  if (!tc->plen || tc->io_fd < 0 || tc->lingering || tc->waiting || !is_owner(tc)) return 0;
  return tc->state == ST_SNIFF || (tc->state == ST_TLS && !sli_conn_is_secured(tc->conn));
}

/* tc_drive_locked: what step() can do now, for the service thread (lock held). */
void tc_drive_locked(tconn *tc) {
  if (tc->state == ST_FAILED || !is_owner(tc)) return;
  /* no read-ahead here: the host may be asleep in poll() on this socket, and data read into our
   * buffers would never wake it; what follows the handshake stays in the kernel for it */
  tc->svc_driving = 1;
  step(tc);
  tc->svc_driving = 0;
}

/* tc_drive_deadline_locked: when a driven session must be looked at even without input (the
 * optional-mode decision by silence, the handshake timeout). */
int64_t tc_drive_deadline_locked(tconn *tc) {
  return tc->state == ST_SNIFF ? tc->sniff_deadline_ms : tc->hs_deadline_ms;
}

/* tc_timer_due_locked: the service thread's timer for tc fired (lock held): corked bytes held
 * 200 ms go out (the host's cork stays on), a driven session meets its deadline. */
void tc_timer_due_locked(tconn *tc) {
  int64_t now = shim_now_ms();
  if (tc->clen && tc->cork_armed) {
    if (now >= tc->cork_deadline_ms) tc_uncork_locked(tc);
    else svc_timer_locked(tc, tc->cork_deadline_ms);
  }
  if (tc_needs_drive_locked(tc)) {
    tc_drive_locked(tc);
    if (tc_needs_drive_locked(tc)) svc_arm_locked(tc); /* re-arms the input watch and the timer */
  }
}

/* pbuf_drain encrypts the plaintext written before the session was up. */
static void pbuf_drain(tconn *tc) {
  size_t off = 0;
  while (off < tc->plen) {
    ssize_t n = seal(tc, tc->pbuf + off, tc->plen - off);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n == SLI_WANT_READ || n == SLI_WANT_WRITE) break;
    fail(tc, (int)n);
    return;
  }
  if (off == tc->plen) {
    free(tc->pbuf);
    tc->pbuf = NULL;
    tc->plen = 0;
  } else if (off) {
    memmove(tc->pbuf, tc->pbuf + off, tc->plen - off);
    tc->plen -= off;
  }
}

/* pbuf_put takes plaintext before the session is up: up to PBUF_MAX, or all of it with `all`. */
static size_t pbuf_put(tconn *tc, const void *buf, size_t len, int all) {
  size_t room = PBUF_MAX > tc->plen ? PBUF_MAX - tc->plen : 0;
  size_t n = all ? len : len < room ? len : room;
  if (!n) return 0;
  unsigned char *p = realloc(tc->pbuf, tc->plen + n);
  if (!p) return 0;
  tc->pbuf = p;
  memcpy(tc->pbuf + tc->plen, buf, n);
  tc->plen += n;
  return n;
}

/* ---- waits (lock held on entry and exit, released while waiting) ---- */

/* wait_in waits for the socket to have input, in a blocking recv(MSG_PEEK) so the host's signals and
 * SO_RCVTIMEO act as on its own read. With a deadline (handshake, optional-mode sniff), the wait is
 * bounded by it through a temporary SO_RCVTIMEO. Returns 0 (go on), ETIMEDOUT (our deadline), or the
 * errno the host's read would return (EINTR, EAGAIN). Queued output is sent first: the peer may
 * be waiting for it. */
/* waited: a host thread is back from waiting for input (lock held). While one waits, the service
 * thread does not run the handshake: the input it would take is what the waiter waits for. */
static void waited(tconn *tc) {
  tc->waiting--;
  if (tc_needs_drive_locked(tc)) svc_arm_locked(tc);
}

static int wait_in(tconn *tc, int64_t deadline, int host_timeout) {
  /* what the host wrote before the handshake goes out first: the peer may be waiting for it */
  if (tc->state == ST_TLS && sli_conn_is_secured(tc->conn)) {
    if (tc->plen) pbuf_drain(tc);
    if (tc->shut_wr && !tc->notify_sent) close_when_up(tc);
  }
  if (tc->olen) {
    int e = send_blocking(tc, 0, NULL);
    if (e == EINTR || e == EAGAIN || e == EWOULDBLOCK) return e;
  }
  int fd = tc->io_fd;
  unsigned char b;
  if (deadline == INT64_MAX) {
    tc->waiting++;
    pthread_mutex_unlock(&tc->lock);
    ssize_t r = real.recv(fd, &b, 1, MSG_PEEK);
    int e = errno;
    pthread_mutex_lock(&tc->lock);
    waited(tc);
    if (r >= 0) {
      tc->k_in = 1;
      return 0;
    }
    if (e == EINTR || e == EAGAIN || e == EWOULDBLOCK) return e;
    tc->k_in = 1; /* an error: the engine will see it */
    return 0;
  }
  for (;;) {
    int64_t left = deadline - shim_now_ms();
    if (left <= 0) return ETIMEDOUT;
    struct timeval host = {0, 0}, mine;
    socklen_t hl = sizeof(host);
    getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &host, &hl);
    int64_t host_ms = host_timeout ? (int64_t)host.tv_sec * 1000 + host.tv_usec / 1000 : 0;
    int64_t use = (host_ms > 0 && host_ms < left) ? host_ms : left;
    mine.tv_sec = use / 1000;
    mine.tv_usec = (use % 1000) * 1000;
    if (mine.tv_sec == 0 && mine.tv_usec == 0) mine.tv_usec = 1000;
    tc->waiting++;
    pthread_mutex_unlock(&tc->lock);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &mine, sizeof(mine));
    ssize_t r = real.recv(fd, &b, 1, MSG_PEEK);
    int e = errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &host, sizeof(host));
    pthread_mutex_lock(&tc->lock);
    waited(tc);
    if (r >= 0) {
      tc->k_in = 1;
      return 0;
    }
    if (e == EINTR) return e;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      if (shim_now_ms() >= deadline) return ETIMEDOUT;
      if (host_ms > 0 && host_ms <= use) return EAGAIN; /* the host's own timeout */
      if (shim_fd_nonblocking(fd)) return EAGAIN;
      continue;
    }
    tc->k_in = 1;
    return 0;
  }
}

/* wait_connect waits for a pending TCP connect (after EINTR or EINPROGRESS on a blocking fd). */
static int wait_connect(tconn *tc) {
  struct pollfd p = {.fd = tc->io_fd, .events = POLLOUT};
  pthread_mutex_unlock(&tc->lock);
  int r = real.poll(&p, 1, -1);
  int e = errno;
  pthread_mutex_lock(&tc->lock);
  return r < 0 ? e : 0;
}

static int64_t deadline_of(tconn *tc) {
  if (tc->state == ST_SNIFF) return tc->sniff_deadline_ms;
  if (tc->state == ST_TLS && !sli_conn_is_secured(tc->conn)) return tc->hs_deadline_ms;
  return INT64_MAX;
}

int64_t tc_deadline_locked(tconn *tc) {
  if (tc->state == ST_SNIFF) return tc->sniff_deadline_ms;
  if (tc->state == ST_TLS && tc->conn && !sli_conn_is_secured(tc->conn) && !tc->connecting)
    return tc->hs_deadline_ms;
  return INT64_MAX;
}

/* after_wait turns a wait's result into the host's: 0 go on, else -1 with errno (or the bytes
 * already read). */
static int after_wait(tconn *tc, int e) {
  if (!e) return 0;
  if (e == ETIMEDOUT) {
    if (tc->state == ST_SNIFF) {
      decide(tc, 0);
      return 0;
    }
    errno = fail(tc, SLI_E_TIMEOUT);
    return -1;
  }
  errno = e;
  return -1;
}

/* ---- reads ---- */

/* decrypt reads from the engine; returns >0 bytes, 0 clean EOF or truncation (EOF), -1 with
 * errno, or -2 for "the engine wants the socket". */
static ssize_t decrypt(tconn *tc, void *buf, size_t len) {
  ssize_t n = sli_conn_read(tc->conn, buf, len);
  if (tc->olen) flush_locked(tc); /* the handshake, key updates and alerts produce output */
  if (__builtin_expect(!tc->hs_counted, 0)) noticed_secured(tc);
  if (n > 0) {
    shim_count_bytes((size_t)n, 0);
    return n;
  }
  if (n == 0) {
    tc->peer_closed = 1;
    return 0;
  }
  if (n == SLI_WANT_READ || n == SLI_WANT_WRITE) return -2;
  if (n == SLI_E_TRUNCATED) {
    if (!tc->peer_closed) shim_log(LOG_INFO_, "%s: closed without close_notify", tc_peer(tc));
    tc->peer_closed = 1;
    return 0;
  }
  errno = fail(tc, (int)n);
  return -1;
}

/* rbuf_release lets the plaintext buffer go (empty). */
static void rbuf_release(tconn *tc) {
  if (tc->rcap > SHIM_BUF_SIZE) free(tc->rbuf);
  else shim_buf_put(tc->rbuf);
  tc->rbuf = NULL;
  tc->rcap = 0;
  tc->roff = tc->rlen = 0;
}

/* rbuf_decrypt decrypts one more record's worth after what rbuf holds (growing it past a record
 * when it must); returns what decrypt() returns, -3 when out of memory. */
static ssize_t rbuf_decrypt(tconn *tc) {
  if (!tc->rbuf) {
    if (!(tc->rbuf = shim_buf_get())) return -3;
    tc->rcap = SHIM_BUF_SIZE;
    tc->roff = tc->rlen = 0;
  }
  if (tc->roff && tc->rcap - tc->roff - tc->rlen < RBUF_SIZE) {
    memmove(tc->rbuf, tc->rbuf + tc->roff, tc->rlen);
    tc->roff = 0;
  }
  if (tc->rcap - tc->rlen < RBUF_SIZE) {
    size_t cap = tc->rcap * 2 > tc->rlen + RBUF_SIZE ? tc->rcap * 2 : tc->rlen + RBUF_SIZE;
    unsigned char *p = malloc(cap);
    if (!p) return -3;
    memcpy(p, tc->rbuf + tc->roff, tc->rlen);
    size_t keep = tc->rlen;
    rbuf_release(tc);
    tc->rbuf = p;
    tc->rcap = cap;
    tc->rlen = keep;
  }
  size_t room = tc->rcap - tc->roff - tc->rlen;
  return decrypt(tc, tc->rbuf + tc->roff + tc->rlen, room < RBUF_SIZE ? room : RBUF_SIZE);
}

/* fill_rbuf decrypts without blocking — one record when nothing is buffered (a readiness check),
 * or, with `want` above what is buffered, records until `want` bytes are there or nothing more has
 * come (MSG_PEEK and FIONREAD see every byte that arrived, as on a plain socket). Records EOF and
 * errors for the next read. */
static void fill_rbuf(tconn *tc, size_t want) {
  if (tc->state != ST_TLS || tc->reof) return;
  if (want == 0 && tc->rlen > 0) return;
  do {
    ssize_t n = rbuf_decrypt(tc);
    if (n > 0) {
      tc->rlen += (size_t)n;
    } else {
      if (n == 0 || n == -1) {
        tc->reof = 1;
        tc->rerr_pending = n == -1 ? errno : 0;
      }
      break;
    }
  } while (tc->rlen < want && tc->state == ST_TLS);
  if (tc->rlen == 0 && tc->rbuf) rbuf_release(tc);
}

/* take_rbuf copies buffered plaintext to the host's buffer. */
static size_t take_rbuf(tconn *tc, char *buf, size_t len, int peek) {
  size_t n = len < tc->rlen ? len : tc->rlen;
  if (buf) memcpy(buf, tc->rbuf + tc->roff, n); /* NULL: MSG_TRUNC, the bytes are dropped */
  if (!peek) {
    tc->roff += n;
    tc->rlen -= n;
    if (tc->rlen == 0) rbuf_release(tc);
  }
  return n;
}

/* reset_answer: the connection was reset (or timed out) under us: the host gets the error once —
 * the kernel's pending error — then EOF for reads and EPIPE for writes, as on a plain socket. */
static ssize_t reset_answer(tconn *tc, int is_write) {
  if (tc->soerr) {
    errno = tc->soerr;
    tc->soerr = 0;
    tc->k_err = 0;
    return -1;
  }
  if (!is_write) return 0;
  errno = EPIPE;
  return -1;
}

/* read_target: how much a blocking read waits for before it returns: SO_RCVLOWAT, at most len. */
static size_t read_target(tconn *tc, size_t len) {
  size_t low = tc->lowat > 1 ? (size_t)tc->lowat : 1;
  return low < len ? low : len;
}

ssize_t tc_read(tconn *tc, void *buf, size_t len, int flags) {
  int saved = errno;
  pthread_mutex_lock(&tc->lock);
  ssize_t ret = -1;
  size_t got = 0;
  int peek = flags & MSG_PEEK;
  if (!tc_owned(tc)) {
    ret = not_owner(tc, 0);
    goto out;
  }
  if (tc->reset && !tc->rlen) {
    ret = reset_answer(tc, 0);
    goto out;
  }
  for (;;) {
    if (tc->state == ST_SNIFF && !sniff_now(tc)) {
      if (nonblocking(tc, flags)) {
        errno = EAGAIN;
        goto out;
      }
      if (after_wait(tc, wait_in(tc, tc->sniff_deadline_ms, 1))) goto out;
      continue;
    }
    if (tc->state == ST_PLAIN) {
      int fd = tc->io_fd;
      pthread_mutex_unlock(&tc->lock);
      return real.recv(fd, buf, len, flags);
    }
    if (tc->state == ST_FAILED && !tc->rlen) {
      errno = tc->ferr;
      goto out;
    }
    if (tc->connecting) {
      int cs = connect_state(tc);
      if (cs < 0) { /* the host's read reports the connect's error, as the kernel would */
        int fd = tc->io_fd;
        pthread_mutex_unlock(&tc->lock);
        return real.recv(fd, buf, len, flags);
      }
      if (cs == 0) {
        if (nonblocking(tc, flags)) {
          errno = EAGAIN;
          goto out;
        }
        if (after_wait(tc, wait_connect(tc))) goto out;
        continue;
      }
    }
    break;
  }
  for (;;) {
    /* a peek sees every byte that has come, as the kernel's does (not one record at a time) */
    if (peek && tc->rlen > 0 && tc->rlen < len && !tc->reof) fill_rbuf(tc, len);
    if (tc->rlen > 0) { /* what a readiness check decrypted comes first */
      got += take_rbuf(tc, (char *)buf + got, len - got, peek);
      if (peek) break;
    }
    if (got == len) break;
    if (tc->reof) {
      if (got) break;
      if (tc->rerr_pending) {
        errno = tc->rerr_pending;
        goto out;
      }
      ret = 0;
      goto out;
    }
    if (tc->state == ST_FAILED) {
      if (got) break;
      errno = tc->ferr;
      goto out;
    }
    if (tc->plen && sli_conn_is_secured(tc->conn)) pbuf_drain(tc);
    ssize_t n;
    if (peek) { /* decrypt into rbuf, then copy from it */
      fill_rbuf(tc, len);
      n = tc->rlen || tc->reof ? 1 : -2;
      if (n > 0) continue;
    } else {
      n = decrypt(tc, (char *)buf + got, len - got);
      if (n > 0) {
        got += (size_t)n;
        continue; /* fill the host's buffer until the engine wants more input */
      }
    }
    if (n == 0 || n == -1) {
      if (got) { /* report the data now, the EOF or error on the next call */
        if (!tc->reset) {
          tc->reof = 1;
          tc->rerr_pending = n == -1 ? errno : 0;
        }
        break;
      }
      ret = tc->reset ? reset_answer(tc, 0) : n;
      goto out;
    }
    /* the engine wants the socket: a read returns what it has, once SO_RCVLOWAT's worth */
    if (got && !(flags & MSG_WAITALL) && got >= read_target(tc, len)) break;
    if (nonblocking(tc, flags)) {
      if (got) break;
      errno = EAGAIN;
      goto out;
    }
    int e = wait_in(tc, deadline_of(tc), 1);
    if (e) {
      if (got) break; /* the kernel returns what it has when interrupted */
      after_wait(tc, e);
      goto out;
    }
  }
  ret = (ssize_t)got;
  errno = saved;
out:
  /* plaintext left buffered: a level-triggered registration must report it again */
  if (tc->regs && (tc->rlen || (tc->conn && sli_conn_pending(tc->conn)))) epoll_tc_level(tc);
  pthread_mutex_unlock(&tc->lock);
  return ret;
}

ssize_t tc_readv(tconn *tc, const struct iovec *iov, int n, int flags) {
  if (n < 0 || n > IOV_MAX) { /* the kernel's check */
    errno = EINVAL;
    return -1;
  }
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
  size_t off = 0;
  for (int i = 0; r > 0 && i < n && off < (size_t)r; i++) {
    size_t c = iov[i].iov_len < (size_t)r - off ? iov[i].iov_len : (size_t)r - off;
    memcpy(iov[i].iov_base, tmp + off, c);
    off += c;
  }
  if (tmp != stack) free(tmp);
  return r;
}

/* ---- writes ---- */

/* ---- TCP_CORK and MSG_MORE ----
 * The kernel holds corked data until the host uncorks (or 200 ms pass) and sends it in full
 * segments; the shim holds the plaintext and sends it in full records: nginx's headers and a small
 * file (tcp_nopush) go out as one record, one AEAD seal, one send. */
#define CORK_MAX 16384

/* cork_seal encrypts what the cork holds (lock held); 0 or the engine's error code. */
static int cork_seal(tconn *tc) {
  size_t off = 0;
  int rc = 0;
  while (off < tc->clen) {
    ssize_t n = seal(tc, tc->cbuf + off, tc->clen - off);
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    off += (size_t)n;
  }
  shim_buf_put(tc->cbuf);
  tc->cbuf = NULL;
  tc->clen = 0;
  tc->cork_armed = 0;
  return rc;
}

/* kernel_cork: cork (or uncork) the kernel's socket too (lock held). */
static void kernel_cork(tconn *tc, int on) {
  if (tc->kcorked == on || tc->io_fd < 0) return;
  real.setsockopt(tc->io_fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
  tc->kcorked = (uint8_t)on;
}

void tc_uncork_locked(tconn *tc) {
  if (tc->clen && tc->state == ST_TLS && sli_conn_is_secured(tc->conn)) {
    int rc = cork_seal(tc);
    if (rc && rc != SLI_E_CLOSED && !tc->werr) fail(tc, rc);
    flush_locked(tc);
    if (tc->olen) svc_arm_locked(tc);
  }
  if (!tc->corked) kernel_cork(tc, 0); /* the segment the kernel held goes now */
}

/* tc_set_cork: the host's setsockopt(TCP_CORK) on a TLS fd. The shim holds plaintext instead and
 * sends it when the host uncorks; the kernel's socket is corked only once a corked transfer fills
 * a record (cork_take), so that a large file still leaves in full segments. */
void tc_set_cork(tconn *tc, int on) {
  pthread_mutex_lock(&tc->lock);
  tc->corked = (uint8_t)(on != 0);
  if (!on) tc_uncork_locked(tc);
  pthread_mutex_unlock(&tc->lock);
}

/* cork_take holds up to `len` bytes while corked (lock held); full records are sealed as they
 * fill. With `stop_when_full`, it stops once the kernel took only part of a sealed record, as a
 * non-blocking send stops when the socket is full. Returns the bytes taken, or an error code. */
static ssize_t cork_take(tconn *tc, const void *buf, size_t len, int stop_when_full) {
  const unsigned char *p = buf;
  size_t took = 0;
  while (took < len) {
    if (!tc->cbuf && !(tc->cbuf = shim_buf_get())) return took ? (ssize_t)took : SLI_E_NOMEM;
    size_t n = CORK_MAX - tc->clen < len - took ? CORK_MAX - tc->clen : len - took;
    memcpy(tc->cbuf + tc->clen, p + took, n);
    tc->clen += n;
    took += n;
    if (tc->clen == CORK_MAX) {
      /* longer than a record: let the kernel build full segments of our records as well (the
       * short answer stays one record and costs no syscall) */
      if (tc->corked) kernel_cork(tc, 1);
      int rc = cork_seal(tc);
      if (rc) return took > n ? (ssize_t)(took - n) : rc;
      if (stop_when_full && tc->olen) break;
    }
  }
  if (tc->clen && !tc->cork_armed) {
    tc->cork_deadline_ms = shim_now_ms() + 200;
    tc->cork_armed = 1;
    svc_timer_locked(tc, tc->cork_deadline_ms);
  }
  return (ssize_t)took;
}

/* write_error: the errno for a failed engine write. A transport error (the kernel refused our
 * send: EPIPE, ECONNRESET) is the kernel's answer and leaves reading alone, as on a plain socket. */
static int write_error(tconn *tc, ssize_t n) {
  if (n == SLI_E_CLOSED) return EPIPE;
  if (tc->reset) {
    reset_answer(tc, 1);
    return errno;
  }
  if (n == SLI_E_IO && tc->werr) return tc->werr;
  return fail(tc, (int)n);
}

ssize_t tc_write(tconn *tc, const void *buf, size_t len, int flags) {
  if (flags & MSG_OOB) { /* TLS has no urgent data: refused, never slipped into the stream */
    errno = EOPNOTSUPP;
    return -1;
  }
  int saved = errno;
  int all = flags & SHIM_MSG_ALL;
  flags &= ~SHIM_MSG_ALL;
  pthread_mutex_lock(&tc->lock);
  ssize_t ret = -1;
  size_t written = 0, pre = 0; /* pre: taken into pbuf by this call before the session was up */
  if (!tc_owned(tc)) {
    ret = not_owner(tc, 1);
    goto out;
  }
  if (tc->reset) {
    ret = reset_answer(tc, 1);
    goto out;
  }
  int nb = nonblocking(tc, flags);
  int64_t send_end = -shim_now_ms() - 1; /* SO_SNDTIMEO counts from the start of this call */
  for (;;) { /* until the session is up (or decided plaintext) */
    if (tc->state == ST_FAILED) {
      errno = tc->ferr;
      goto out;
    }
    if (tc->werr || tc->shut_wr) {
      errno = tc->shut_wr ? EPIPE : tc->werr;
      if (tc->werr == ECONNRESET) tc->werr = EPIPE; /* the kernel says ECONNRESET once, then EPIPE */
      goto out;
    }
    if (tc->connecting) {
      int cs = connect_state(tc);
      if (cs < 0 || (cs == 0 && nb)) { /* the kernel's answer: EAGAIN, or the connect's error */
        int fd = tc->io_fd;
        pthread_mutex_unlock(&tc->lock);
        return real.send(fd, buf, len, flags | MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      if (cs == 0) {
        if (after_wait(tc, wait_connect(tc))) goto out;
        continue;
      }
    }
    step(tc);
    if (tc->state == ST_PLAIN) {
      int fd = tc->io_fd;
      if (tc->olen) { /* the banner written while undecided goes first */
        flush_locked(tc);
        int e = tc->olen ? (nb ? EAGAIN : send_blocking(tc, 0, NULL)) : 0;
        if (e) {
          errno = e;
          goto out;
        }
      }
      pthread_mutex_unlock(&tc->lock);
      return real.send(fd, buf, len, flags | MSG_NOSIGNAL);
    }
    if (tc->state == ST_FAILED) continue;
    if (tc->state == ST_TLS && sli_conn_is_secured(tc->conn)) break;
    /* not up yet: take the bytes as a kernel would (a blocking write that fits returns at once:
     * the session sends them when it is up), or wait for the session when there is no room */
    size_t n = pbuf_put(tc, buf, len, nb && all);
    if (n) svc_arm_locked(tc); /* the session comes up (and sends them) without the host's help */
    if (n == len || (n && nb)) {
      ret = (ssize_t)(pre + n);
      errno = saved;
      goto out;
    }
    if (n) { /* a blocking write that did not fit: the rest after the handshake */
      pre += n;
      buf = (const char *)buf + n;
      len -= n;
    }
    if (nb) {
      errno = EAGAIN;
      goto out;
    }
    int e = wait_in(tc, deadline_of(tc), 0);
    if (e && after_wait(tc, e)) {
      if (pre) {
        ret = (ssize_t)pre;
        errno = saved;
      }
      goto out;
    }
  }
  if (tc->plen) pbuf_drain(tc);
  if (len == 0) {
    ret = 0;
    goto out;
  }
  if (tc->corked || (flags & MSG_MORE) || tc->clen) {
    int hold = tc->corked || (flags & MSG_MORE);
    if (nb && tc->olen) {
      flush_locked(tc);
      if (tc->olen && !all) { /* the kernel is full */
        svc_arm_locked(tc);
        errno = EAGAIN;
        goto out;
      }
    }
    if (hold || tc->clen + len <= CORK_MAX) { /* held, or sent with what was held: one record */
      ssize_t took = cork_take(tc, buf, len, nb && !all);
      if (took < 0) {
        errno = write_error(tc, took);
        goto out;
      }
      if (!hold) tc_uncork_locked(tc);
      flush_locked(tc);
      if (tc->olen) {
        if (!nb) {
          int e = send_blocking(tc, pre, &send_end);
          (void)e; /* accepted: what the kernel did not take goes in the background */
        }
        svc_arm_locked(tc);
      }
      ret = (ssize_t)(pre + (size_t)took);
      errno = saved;
      goto out;
    }
    tc_uncork_locked(tc); /* held bytes first, then these */
  }
  if (nb) {
    flush_locked(tc);
    if (tc->olen && !all) { /* the kernel is full */
      svc_arm_locked(tc);
      errno = EAGAIN;
      goto out;
    }
    while (written < len) {
      size_t chunk = len - written < CHUNK ? len - written : CHUNK;
      ssize_t n = seal(tc, (const char *)buf + written, chunk);
      if (n <= 0) {
        if (written || pre) break;
        errno = write_error(tc, n);
        goto out;
      }
      written += (size_t)n;
      if (tc->olen && !all) break; /* the kernel took only part: stop here, like it would */
    }
    if (tc->olen) svc_arm_locked(tc);
  } else {
    if (tc->olen) { /* output from before: the kernel must take it before new bytes */
      int e = send_blocking(tc, pre, &send_end);
      if (e && !pre) {
        errno = e;
        goto out;
      }
      if (e) len = 0; /* interrupted: what the session took before is the count */
    }
    while (written < len) {
      size_t chunk = len - written < BLOCK_CHUNK ? len - written : BLOCK_CHUNK;
      size_t done = 0;
      while (done < chunk) {
        ssize_t n = seal(tc, (const char *)buf + written + done, chunk - done);
        if (n <= 0) {
          if (written + done + pre) break;
          errno = write_error(tc, n);
          goto out;
        }
        done += (size_t)n;
      }
      written += done;
      /* blocking: the bytes reach the kernel before we return */
      int e = send_blocking(tc, pre + written - done, &send_end);
      if (e || done < chunk) break; /* interrupted or timed out: the count so far, as the kernel */
    }
  }
  ret = (ssize_t)(pre + written);
  errno = saved;
out:
  pthread_mutex_unlock(&tc->lock);
  return ret;
}

ssize_t tc_writev(tconn *tc, const struct iovec *iov, int n, int flags) {
  if (n < 0 || n > IOV_MAX) {
    errno = EINVAL;
    return -1;
  }
  if (n == 1) return tc_write(tc, iov[0].iov_base, iov[0].iov_len, flags);
  size_t total = 0;
  for (int i = 0; i < n; i++) total += iov[i].iov_len;
  if (total == 0) return tc_write(tc, "", 0, flags);
  char stack[16384];
  char *tmp = total <= sizeof(stack) ? stack : malloc(total);
  if (!tmp) {
    errno = ENOMEM;
    return -1;
  }
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    memcpy(tmp + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  ssize_t r = tc_write(tc, tmp, total, flags);
  if (tmp != stack) free(tmp);
  return r;
}

/* ---- readiness ---- */

short tc_ready_locked(tconn *tc, short want) {
  if (!is_owner(tc) && !tc_owned(tc)) { /* another process's session: only its end is news */
    return atomic_load(tc->claim) == CLAIM_ENDED ? (short)(want & (POLLIN | POLLOUT)) : 0;
  }
  if (tc->reset) /* as the kernel after a reset: ERR while the error is pending */
    return (short)((want & (POLLIN | POLLOUT | POLLRDHUP)) | POLLHUP | (tc->soerr ? POLLERR : 0));
  if (tc->state == ST_FAILED || tc->io_fd < 0)
    return (short)((want & (POLLIN | POLLOUT)) | (tc->k_hup ? POLLHUP : 0) |
                   (tc->k_rdhup ? (want & POLLRDHUP) : 0));
  if (tc->connecting && connect_state(tc) != 1) {
    struct pollfd p = {.fd = tc->io_fd, .events = want};
    real.poll(&p, 1, 0); /* pending or failed: the kernel's own answer, SO_ERROR untouched */
    return p.revents;
  }
  step(tc);
  if (tc->reset || tc->state == ST_FAILED) return tc_ready_locked(tc, want);
  if (tc->state == ST_PLAIN) {
    struct pollfd p = {.fd = tc->io_fd, .events = want};
    real.poll(&p, 1, 0);
    return p.revents;
  }
  short r = 0;
  int up = tc->state == ST_TLS && sli_conn_is_secured(tc->conn);
  if (want & POLLIN) {
    size_t low = tc->lowat > 1 ? (size_t)tc->lowat : 1; /* SO_RCVLOWAT, in plaintext */
    size_t have = tc->rlen + (up ? sli_conn_pending(tc->conn) : 0);
    if (up && !tc->reof && have < low && (tc->k_in || tc->ralen)) fill_rbuf(tc, low > 1 ? low : 0);
    if (tc->reset) return tc_ready_locked(tc, want);
    if (tc->reof || tc->rlen + (up ? sli_conn_pending(tc->conn) : 0) >= low) r |= POLLIN;
    if (tc->state == ST_FAILED) r |= POLLIN;
  }
  if (want & POLLOUT) {
    if (up) {
      if (!tc->olen && tc->k_out && !tc->shut_wr) r |= POLLOUT;
      if (tc->shut_wr || tc->werr) r |= POLLOUT; /* a write fails at once */
    } else if (tc->plen < PBUF_MAX) {
      r |= POLLOUT; /* taken as the kernel would take it */
    }
    if (tc->state == ST_FAILED) r |= POLLOUT;
  }
  if ((want & POLLRDHUP) && (tc->k_rdhup || (tc->peer_closed && !tc->rlen && tc->reof)))
    r |= POLLRDHUP;
  /* both directions shut, as the kernel says, or at the TLS level (the peer's close_notify and
   * ours: the FIN that follows a close_notify may still be on its way) */
  if (tc->k_hup || (tc->peer_closed && tc->shut_wr && !tc->rlen)) r |= POLLHUP;
  if (tc->k_err) r |= POLLERR;
  return r;
}

/* poll/select: which socket events to wait for, and what is ready already. A host thread that
 * will wait for a session still in its handshake counts as waiting for its input (*waits = 1):
 * the service thread then leaves the handshake to it — were the service thread to take the
 * peer's last handshake bytes, the host's poll would sleep on input that never comes while the
 * session it waits to write on is up. tc_poll_check ends the wait. */
short tc_poll_prepare(tconn *tc, short want, short *ready_now, int64_t *deadline, uint8_t *waits) {
  pthread_mutex_lock(&tc->lock);
  short ev;
  *ready_now = 0;
  *waits = 0;
  if (tc->state == ST_PLAIN) {
    ev = want;
  } else if (tc->connecting && tc->state == ST_TLS && connect_state(tc) != 1) {
    ev = want; /* a pending connect: the kernel's readiness, untouched */
  } else {
    *ready_now = tc_ready_locked(tc, want) & (want | POLLHUP | POLLERR);
    if (*ready_now & ~(POLLHUP | POLLERR)) ev = want & POLLRDHUP; /* a FIN may be news still */
    else if (tc->state == ST_PLAIN) ev = want;
    else if (tc->state == ST_SNIFF) ev = POLLIN;
    else if (tc->state == ST_FAILED || !tc_owned(tc)) ev = 0;
    else if (!sli_conn_is_secured(tc->conn))
      ev = (short)(POLLIN | (sli_conn_want(tc->conn) == SLI_WANT_WRITE || tc->olen ? POLLOUT : 0));
    else {
      ev = (short)(want & (POLLIN | POLLOUT | POLLRDHUP | POLLPRI));
      if (tc->olen && (want & POLLOUT)) ev |= POLLOUT;
    }
    int64_t d = tc_deadline_locked(tc);
    if (d < *deadline) *deadline = d;
    if (!*ready_now && (ev & POLLIN) && tc_owned(tc)) {
      tc->waiting++;
      *waits = 1;
    }
  }
  pthread_mutex_unlock(&tc->lock);
  return ev;
}

short tc_poll_check(tconn *tc, short want, short got, uint8_t waits) {
  pthread_mutex_lock(&tc->lock);
  short out;
  if (tc->state == ST_PLAIN) {
    out = got;
  } else if (tc->connecting && tc->state == ST_TLS && connect_state(tc) != 1) {
    out = got;
  } else {
    if (got & (POLLIN | POLLHUP | POLLERR)) tc->k_in = 1;
    if (got & POLLOUT) tc->k_out = 1;
    if (got & POLLRDHUP) tc->k_rdhup = 1;
    if (got & POLLHUP) tc->k_hup = 1;
    if (got & POLLERR) tc->k_err = 1;
    out = tc_ready_locked(tc, want) & (want | POLLHUP | POLLERR);
    out |= got & POLLNVAL;
  }
  if (waits) waited(tc);
  pthread_mutex_unlock(&tc->lock);
  return out;
}

size_t tc_readable_bytes(tconn *tc) {
  pthread_mutex_lock(&tc->lock);
  size_t n = 0;
  if (tc_owned(tc)) step(tc); /* the handshake goes on as the host asks */
  if (tc_owned(tc) && tc->state == ST_TLS) {
    if (sli_conn_is_secured(tc->conn)) fill_rbuf(tc, SIZE_MAX); /* every byte that has come */
    n = tc->rlen + sli_conn_pending(tc->conn);
  }
  pthread_mutex_unlock(&tc->lock);
  return n;
}

/* ---- shutdown and the end of a session ---- */

/* close_when_up: the host shut down writing: once the session is up and what the host wrote is
 * sent, close_notify, then the FIN after the last byte (flush_locked, or the service thread).
 * Lock held. */
static void close_when_up(tconn *tc) {
  if (tc->state == ST_PLAIN) {
    tc->fin_pending = 1;
    flush_locked(tc);
    if (tc->olen) svc_arm_locked(tc);
    return;
  }
  if (tc->state != ST_TLS || !sli_conn_is_secured(tc->conn) || tc->notify_sent) return;
  if (tc->plen) pbuf_drain(tc);
  if (tc->plen) return;
  if (tc->clen) tc_uncork_locked(tc); /* corked bytes go before the close */
  sli_conn_close(tc->conn);
  tc->notify_sent = 1;
  tc->fin_pending = 1;
  flush_locked(tc); /* sends the FIN itself once nothing is queued */
  if (tc->olen || tc->fin_pending) svc_arm_locked(tc);
}

/* tc_shutdown: SHUT_WR ends our direction like the kernel's: it returns at once, the bytes the host
 * wrote go first, then close_notify, then the FIN (before the handshake: once it is done, driven by
 * the host's next calls or the service thread); reads go on. Another process's session is left
 * alone: its owner decides when it ends. */
void tc_shutdown(tconn *tc, int how) {
  pthread_mutex_lock(&tc->lock);
  if (!tc_owned(tc)) {
    pthread_mutex_unlock(&tc->lock);
    return;
  }
  int fd = tc->io_fd;
  if ((how == SHUT_WR || how == SHUT_RDWR) && !tc->shut_wr) {
    tc->shut_wr = 1;
    if (tc->state == ST_FAILED || tc->reset) {
      real.shutdown(fd, SHUT_WR);
    } else {
      step(tc); /* runs close_when_up if the session is up */
      if (!tc->notify_sent && tc->state != ST_PLAIN) svc_arm_locked(tc); /* finish it in the background */
    }
  }
  pthread_mutex_unlock(&tc->lock);
  if (how == SHUT_RD || how == SHUT_RDWR) real.shutdown(fd, SHUT_RD);
}

/* tc_end_locked: the host closed the last fd naming this connection (it is still open). The owner
 * sends what is queued and close_notify; what cannot go now is finished by the service thread on a
 * private dup of the socket, so close() returns at once. A process that does not own the session
 * only lets go of its fd. */
void tc_end_locked(tconn *tc) {
  svc_forget_locked(tc);
  svc_untimer_locked(tc);
  int owner = is_owner(tc);
  int busy = atomic_load(&tc->refs) > 1; /* another thread is inside a call on it */
  if (owner && (tc->state == ST_TLS || tc->state == ST_SNIFF || tc->state == ST_PLAIN) &&
      tc->io_fd >= 0) {
    if (busy) { /* keep the socket for that call, as the kernel keeps a file in use */
      if (!tc->private_fd) {
        int p = real.fcntl(tc->io_fd, F_DUPFD_CLOEXEC, 3);
        if (p >= 0) {
          shim_private_set(p, 1);
          tc->io_fd = p;
          tc->private_fd = 1;
        }
      }
      tc->host_closed = 1;
      return;
    }
    struct linger lg = {0, 0};
    socklen_t lgl = sizeof(lg);
    if (real.getsockopt(tc->io_fd, SOL_SOCKET, SO_LINGER, &lg, &lgl) == 0 && lg.l_onoff &&
        lg.l_linger == 0) {
      /* SO_LINGER {1, 0}: the host asked for an abortive close — the kernel drops what is queued
       * and resets. No close_notify, so a cut-off answer never looks complete to the peer. */
      tc->olen = tc->plen = tc->clen = 0;
      tc_end_claim(tc);
    } else if (tc_finish_step_locked(tc)) {
      tc_end_claim(tc);
    } else {
      if (!tc->private_fd) {
        int p = real.fcntl(tc->io_fd, F_DUPFD_CLOEXEC, 3);
        if (p >= 0) {
          shim_private_set(p, 1);
          tc->io_fd = p;
          tc->private_fd = 1;
        }
      }
      if (tc->private_fd) {
        svc_linger_locked(tc);
        return;
      }
      tc_end_claim(tc);
    }
  }
  if (tc->private_fd && tc->io_fd >= 0) {
    shim_private_set(tc->io_fd, 0);
    real.close(tc->io_fd);
  }
  tc->private_fd = 0;
  tc->io_fd = -1;
  tc_mark_failed(tc);
}

/* tc_finish_step_locked does what can be done now to end the session well: decide, finish the
 * handshake, send the plaintext written before it and close_notify. 1 when done. */
int tc_finish_step_locked(tconn *tc) {
  if (tc->reset) return 1;
  if (tc->state == ST_SNIFF || (tc->state == ST_TLS && (tc->plen || tc->olen ||
                                                       !sli_conn_is_secured(tc->conn))))
    step(tc);
  if (tc->state == ST_SNIFF) return shim_now_ms() >= tc->sniff_deadline_ms;
  if (tc->state == ST_TLS && sli_conn_is_secured(tc->conn) && !tc->notify_sent && !tc->werr) {
    if (tc->plen) pbuf_drain(tc);
    if (tc->clen) tc_uncork_locked(tc);
    if (!tc->plen) {
      sli_conn_close(tc->conn);
      tc->notify_sent = tc->shut_wr = 1;
    }
  }
  flush_locked(tc);
  if (tc->werr || tc->state == ST_FAILED) return 1;
  if (tc->state == ST_TLS && !sli_conn_is_secured(tc->conn))
    return tc->plen == 0 || shim_now_ms() >= tc->hs_deadline_ms;
  return tc->olen == 0 && tc->plen == 0;
}

/* tc_take_soerr: getsockopt(SO_ERROR) on a TLS fd: the error our call took from the kernel, once. */
int tc_take_soerr(tconn *tc) {
  pthread_mutex_lock(&tc->lock);
  int e = tc->soerr;
  tc->soerr = 0;
  if (e) tc->k_err = 0;
  pthread_mutex_unlock(&tc->lock);
  return e;
}

/* tc_finish_blocking: finish the session (handshake, what the host wrote, close_notify, queued
 * ciphertext), waiting for the socket until `deadline_ms`. Lock held. 1 when finished. */
int tc_finish_blocking(tconn *tc, int64_t deadline_ms) {
  for (;;) {
    int done = tc_finish_step_locked(tc);
    if ((done && !tc->olen) || tc->io_fd < 0 || tc->werr) return done && !tc->olen;
    int64_t left = deadline_ms - shim_now_ms();
    if (left <= 0) return 0;
    short ev = tc->olen ? POLLOUT : 0;
    if (tc->state == ST_SNIFF || (tc->state == ST_TLS && !sli_conn_is_secured(tc->conn))) ev |= POLLIN;
    if (!ev) ev = POLLOUT;
    struct pollfd p = {.fd = tc->io_fd, .events = ev};
    pthread_mutex_unlock(&tc->lock);
    real.poll(&p, 1, left > 100 ? 100 : (int)left);
    pthread_mutex_lock(&tc->lock);
  }
}
