/* conn.c — one TLS connection over an fd or caller-supplied callbacks: handshake (explicit or
 * implied), read, write, close, with WANT returns, a handshake deadline and named failures. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include "tls/conn.h"

/* ---- Transport: a BIO that calls the connection's read/write functions. ---- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* transport_failed: a callback failed with `r` — a negative errno, or an SLI_E_* code with errno
 * (`saved`) set or not: the system error behind it is kept for sli_conn_sys_error. */
static void transport_failed(sli_conn *c, ssize_t r, int saved) {
  c->transport_err = 1;
  if (r < 0 && r > -1000) c->sys_err = (int)-r; /* -errno (every SLI_* code is <= -1000) */
  else if (saved) c->sys_err = saved;
}

static int bio_read(BIO *b, char *buf, int len) {
  sli_conn *c = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  errno = 0;
  ssize_t r = c->rfn(c, buf, (size_t)len, c->arg);
  int saved = errno;
  if (r > len) { /* the callback broke its contract: fail this connection, never the process */
    snprintf(c->contract, sizeof(c->contract),
             "the read callback returned %zd for a buffer of %d bytes", r, len);
    c->transport_err = 1;
    return -1;
  }
  if (r > 0) {
    if (c->first_byte < 0) c->first_byte = (unsigned char)buf[0];
    return (int)r;
  }
  if (r == 0) {
    c->transport_eof = 1;
    return 0;
  }
  if (r == SLI_WANT_READ) {
    BIO_set_retry_read(b);
    return -1;
  }
  transport_failed(c, r, saved);
  return -1;
}

static int bio_write(BIO *b, const char *buf, int len) {
  sli_conn *c = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  errno = 0;
  ssize_t r = c->wfn(c, buf, (size_t)len, c->arg);
  int saved = errno;
  if (r > len) {
    snprintf(c->contract, sizeof(c->contract),
             "the write callback returned %zd for %d bytes", r, len);
    c->transport_err = 1;
    return -1;
  }
  if (r >= 0) return (int)r;
  if (r == SLI_WANT_WRITE) {
    BIO_set_retry_write(b);
    return -1;
  }
  transport_failed(c, r, saved);
  return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void make_method(void) {
  bio_method = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(), "sli transport");
  if (bio_method) {
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
    BIO_meth_set_create(bio_method, bio_create);
  }
}

/* fd transport */
static ssize_t fd_read(sli_conn *c, void *buf, size_t len, void *arg) {
  for (;;) {
    ssize_t r = c->is_socket ? recv(c->fd, buf, len, MSG_DONTWAIT) : read(c->fd, buf, len);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return SLI_WANT_READ;
    c->sys_err = errno;
    return SLI_E_IO;
  }
}

static ssize_t fd_write(sli_conn *c, const void *buf, size_t len, void *arg) {
  for (;;) {
    ssize_t r = c->is_socket ? send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL)
                             : write(c->fd, buf, len);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return SLI_WANT_WRITE;
    c->sys_err = errno;
    return SLI_E_IO;
  }
}

/* ---- Errors ---- */

static int conn_fail(sli_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int conn_fail(sli_conn *c, int code, const char *fmt, ...) {
  char what[SLI_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  if (c->peer[0]) sli__fail(&c->err, code, "%s [peer %s]", what, c->peer);
  else sli__fail(&c->err, code, "%s", what);
  if (sli_error_category(code) != SLI_ECAT_BLOCKED) {
    c->fatal = code;
    if (!c->handshake_done && !c->failure_counted && c->ctx) { /* counted once per connection */
      c->failure_counted = 1;
      atomic_fetch_add(&c->ctx->stats.failed[sli_error_category(code) & 15], 1);
    }
  }
  return code;
}

/* conn_fail_soft: a message and a code, without failing the connection. */
static int conn_fail_soft(sli_conn *c, int code, const char *msg) {
  int r = conn_fail(c, code, "%s", msg);
  c->fatal = 0;
  return r;
}

/* peer_name writes "a.b.c.d:port" or "[v6]:port" for an IPv4 or IPv6 address; 0 or SLI_E_INVAL. */
static int peer_name(char *out, size_t cap, const struct sockaddr *sa, socklen_t len) {
  char a[INET6_ADDRSTRLEN] = "?";
  if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
    snprintf(out, cap, "%s:%d", a, ntohs(s4->sin_port));
    return 0;
  }
  if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
    snprintf(out, cap, "[%s]:%d", a, ntohs(s6->sin6_port));
    return 0;
  }
  return SLI_E_INVAL;
}

static void describe_peer(sli_conn *c) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (c->fd >= 0 && getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0)
    peer_name(c->peer, sizeof(c->peer), (struct sockaddr *)&ss, sl);
}

int sli_conn_set_peer_addr(sli_conn *c, const struct sockaddr *addr, socklen_t len) {
  if (!c) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_set_peer_addr: no connection");
  char name[sizeof(c->peer)];
  if (peer_name(name, sizeof(name), addr, len))
    return sli__fail(&c->err, SLI_E_INVAL, "sli_conn_set_peer_addr: not an IPv4 or IPv6 address");
  memcpy(c->peer, name, sizeof(name));
  return 0;
}

const char *sli_conn_peer_addr(const sli_conn *c) { return c && c->peer[0] ? c->peer : NULL; }

/* Maps the result of an SSL_* call to an SLI code; `r` is its return value. */
static int map_error(sli_conn *c, int r, const char *op) {
  int e = SSL_get_error(c->ssl, r);
  switch (e) {
    case SSL_ERROR_WANT_READ:
      ERR_clear_error();
      c->want = SLI_WANT_READ;
      return SLI_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
      ERR_clear_error();
      c->want = SLI_WANT_WRITE;
      return SLI_WANT_WRITE;
    case SSL_ERROR_WANT_X509_LOOKUP: /* the host's ClientHello callback answers later */
      ERR_clear_error();
      c->want = SLI_WANT_CLIENT_HELLO;
      return SLI_WANT_CLIENT_HELLO;
    case SSL_ERROR_WANT_PRIVATE_KEY_OPERATION:
      ERR_clear_error();
      c->want = SLI_WANT_PRIVATE_KEY;
      return SLI_WANT_PRIVATE_KEY;
    case SSL_ERROR_ZERO_RETURN:
      ERR_clear_error();
      c->peer_closed = 1;
      return 0;
    default:
      break;
  }
  c->want = 0;
  uint32_t err = ERR_peek_error();
  char detail[256] = "";
  if (err) ERR_error_string_n(err, detail, sizeof(detail));
  int lib = ERR_GET_LIB(err), reason = ERR_GET_REASON(err);
  ERR_clear_error();
  int in_handshake = !SSL_is_init_finished(c->ssl);

  if (c->hook_code) { /* a host callback ended it, and said why; the peer learns at once */
    SSL_send_fatal_alert(c->ssl, SSL_AD_INTERNAL_ERROR); /* refused if an alert already went */
    ERR_clear_error();
    return conn_fail(c, c->hook_code, "%s: %s", op, c->hook_msg);
  }
  if (c->transport_err && c->contract[0])
    return conn_fail(c, SLI_E_INVAL, "%s: %s", op, c->contract);
  if (c->transport_err)
    return conn_fail(c, SLI_E_IO, "%s: transport error: %s", op,
                     c->sys_err ? strerror(c->sys_err) : "the I/O callback failed");
  if (e == SSL_ERROR_SYSCALL || (e == SSL_ERROR_SSL && c->transport_eof && !err)) {
    if (in_handshake)
      return conn_fail(c, SLI_E_TRUNCATED, "%s: the peer closed the connection during the handshake",
                       op);
    /* after the handshake, the end of the peer's direction: reads report it (sticky), but our
     * own direction stays open, as after a TCP half-close */
    int r = conn_fail(c, SLI_E_TRUNCATED,
                      "%s: the peer closed the connection without close_notify (truncation)", op);
    c->fatal = 0;
    c->read_truncated = 1;
    return r;
  }
  /* A TLS record starts with a content type of 20..24: anything else is a plaintext peer. */
  if (in_handshake && c->first_byte >= 0 && (c->first_byte < 20 || c->first_byte > 24))
    return conn_fail(c, SLI_E_NOT_TLS,
                     "%s: the peer does not speak TLS (plaintext received, first byte 0x%02x)", op,
                     c->first_byte);
  long vr = SSL_get_verify_result(c->ssl);
  if (lib == ERR_LIB_SSL && reason == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
    int code = sli__verify_code(vr);
    c->verify_result = code;
    return conn_fail(c, code, "%s: peer certificate refused: %s (%s)", op, sli_strerror(code),
                     X509_verify_cert_error_string(vr));
  }
  if (lib == ERR_LIB_SSL && reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    c->verify_result = SLI_E_NO_PEER_CERT;
    return conn_fail(c, SLI_E_NO_PEER_CERT, "%s: a client certificate is required and none was sent",
                     op);
  }
  if (lib == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET) {
    c->alert = reason - SSL_AD_REASON_OFFSET;
    const char *desc = SSL_alert_desc_string_long(c->alert);
    if (c->alert == SSL_AD_PROTOCOL_VERSION)
      return conn_fail(c, SLI_E_VERSION, "%s: the peer supports no protocol version we offer (alert %s)",
                       op, desc);
    if (c->alert == SSL_AD_HANDSHAKE_FAILURE && in_handshake)
      return conn_fail(c, SLI_E_ALERT,
                       "%s: the peer refused the handshake (alert %s: no common cipher suite or "
                       "parameters?)",
                       op, desc);
    return conn_fail(c, SLI_E_ALERT, "%s: the peer sent the fatal alert '%s'", op, desc);
  }
  if (lib == ERR_LIB_SSL) {
    switch (reason) {
      case SSL_R_NO_SHARED_CIPHER:
      case SSL_R_NO_CIPHER_MATCH:
        return conn_fail(c, SLI_E_NO_SHARED_CIPHER, "%s: no cipher suite in common with the peer", op);
      case SSL_R_NO_SHARED_GROUP:
        return conn_fail(c, SLI_E_NO_SHARED_CIPHER,
                         "%s: no key-exchange group in common with the peer (none of the groups it "
                         "supports is one of ours)",
                         op);
      case SSL_R_UNSUPPORTED_PROTOCOL:
        return conn_fail(c, SLI_E_VERSION,
                         "%s: the peer offered only protocol versions we refuse (TLS 1.2 is the "
                         "minimum)",
                         op);
      case SSL_R_WRONG_VERSION_NUMBER:
        return conn_fail(c, SLI_E_VERSION,
                         "%s: a record carried a protocol version other than the one negotiated "
                         "(or the peer's records are not TLS 1.x)",
                         op);
      case SSL_R_HTTP_REQUEST:
      case SSL_R_HTTPS_PROXY_REQUEST:
      case SSL_R_UNKNOWN_PROTOCOL:
        return conn_fail(c, SLI_E_NOT_TLS, "%s: the peer does not speak TLS (plaintext received)", op);
      default:
        break;
    }
  }
  return conn_fail(c, SLI_E_PROTO, "%s: TLS protocol error: %s", op, detail[0] ? detail : "unknown");
}

/* ---- Connections ---- */

/* on_info: BoringSSL's report of each alert; a fatal one sent or received is the connection's
 * sli_conn_alert. */
static void on_info(const SSL *ssl, int where, int value) {
  if (!(where & SSL_CB_ALERT) || (value >> 8) != SSL3_AL_FATAL) return;
  sli_conn *c = SSL_get_ex_data(ssl, sli__conn_index);
  if (c) c->alert = value & 0xff;
}

int sli__hook_fail(sli_conn *c, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->hook_msg, sizeof(c->hook_msg), fmt, ap);
  va_end(ap);
  c->hook_code = code;
  return 0;
}

int sli__hook_lock_answer(sli_conn *c) {
  pthread_mutex_lock(&c->hook_lock);
  if (!c->orphaned) return 0;
  pthread_mutex_unlock(&c->hook_lock);
  sli__conn_release(c);
  return 1;
}

void sli__conn_release(sli_conn *c) {
  sli__identity_clear(&c->hello_id);
  free(c->key_sig);
  pthread_cond_destroy(&c->hook_cond);
  pthread_mutex_destroy(&c->hook_lock);
  free(c);
}

static int conn_new(const char *fn, sli_conn **out, sli_ctx *ctx, int fd, sli_read_fn rfn,
                    sli_write_fn wfn, void *arg, const char *servername, uint32_t flags) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "%s: out is NULL", fn);
  *out = NULL;
  if (!ctx) return sli__fail(NULL, SLI_E_INVAL, "%s: ctx is NULL", fn);
  if (flags) return sli__fail(NULL, SLI_E_INVAL, "%s: unknown flags 0x%x", fn, flags);
  if (ctx->is_server && servername)
    return sli__fail(NULL, SLI_E_INVAL, "%s: a server connection takes no servername", fn);
  pthread_once(&bio_once, make_method);
  if (!bio_method) return sli__fail(NULL, SLI_E_NOMEM, "%s: out of memory", fn);
  sli_conn *c = sli__zalloc(sizeof(*c));
  if (!c) return sli__fail(NULL, SLI_E_NOMEM, "%s: out of memory", fn);
  c->fd = fd;
  c->rfn = rfn;
  c->wfn = wfn;
  c->arg = arg;
  c->alert = -1;
  c->first_byte = -1;
  c->verify_result = SLI_E_NO_PEER_CERT;
  pthread_mutex_init(&c->hook_lock, NULL);
  pthread_cond_init(&c->hook_cond, NULL);
  pthread_mutex_lock(&ctx->lock);
  c->ssl = SSL_new(ctx->ssl_ctx);
  pthread_mutex_unlock(&ctx->lock);
  BIO *bio = BIO_new(bio_method);
  if (!c->ssl || !bio) {
    BIO_free(bio);
    SSL_free(c->ssl);
    sli__conn_release(c);
    return sli__fail_ssl(NULL, SLI_E_NOMEM, "%s: out of memory", fn);
  }
  BIO_set_data(bio, c);
  SSL_set_bio(c->ssl, bio, bio);
  SSL_set_ex_data(c->ssl, sli__conn_index, c);
  SSL_set_info_callback(c->ssl, on_info);
  sli__snapshot *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(c->ssl), sli__snapshot_index);
  c->timeout_ms = s ? s->handshake_timeout_ms : 0;
  if (c->timeout_ms) c->deadline_ms = sli__now_ms() + c->timeout_ms; /* the clock starts now */
  if (ctx->is_server) {
    SSL_set_accept_state(c->ssl);
  } else {
    SSL_set_connect_state(c->ssl);
    if (servername && *servername) {
      struct in6_addr a6;
      struct in_addr a4;
      int is_ip = inet_pton(AF_INET, servername, &a4) == 1 || inet_pton(AF_INET6, servername, &a6) == 1;
      if (!is_ip) SSL_set_tlsext_host_name(c->ssl, servername);
      if (s && s->verify_name) {
        X509_VERIFY_PARAM *p = SSL_get0_param(c->ssl);
        if (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(p, servername)
                  : !X509_VERIFY_PARAM_set1_host(p, servername, strlen(servername))) {
          SSL_free(c->ssl);
          sli__conn_release(c);
          return sli__fail_ssl(NULL, SLI_E_INVAL, "%s: the servername '%s' cannot be verified", fn,
                               servername);
        }
      }
      snprintf(c->servername, sizeof(c->servername), "%s", servername);
    } else if (s && s->verify_cert && s->verify_name) {
      /* Verifying a certificate without a name to check proves nothing. */
      SSL_free(c->ssl);
      sli__conn_release(c);
      return sli__fail(NULL, SLI_E_INVAL,
                       "%s: a client that verifies the server needs its name (servername)", fn);
    }
  }
  if (fd >= 0) {
    struct stat st;
    c->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    describe_peer(c);
  }
  sli_ctx_up_ref(ctx);
  c->ctx = ctx;
  atomic_fetch_add(&ctx->stats.live, 1);
  *out = c;
  return 0;
}

int sli_conn_new_fd(sli_conn **out, sli_ctx *ctx, int fd, const char *servername, uint32_t flags) {
  if (fd < 0) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_new_fd: fd %d is not a descriptor", fd);
  return conn_new("sli_conn_new_fd", out, ctx, fd, fd_read, fd_write, NULL, servername, flags);
}

int sli_conn_new_cbs(sli_conn **out, sli_ctx *ctx, sli_read_fn read_fn, sli_write_fn write_fn,
                     void *arg, const char *servername, uint32_t flags) {
  if (!read_fn || !write_fn)
    return sli__fail(NULL, SLI_E_INVAL, "sli_conn_new_cbs: read_fn and write_fn are needed");
  return conn_new("sli_conn_new_cbs", out, ctx, -1, read_fn, write_fn, arg, servername, flags);
}

void sli_conn_free(sli_conn *c) {
  if (!c) return;
  SSL_free(c->ssl);
  sli_cert_free(c->peer_cert);
  SSL_SESSION_free(c->fresh_session);
  if (c->ctx) atomic_fetch_sub(&c->ctx->stats.live, 1);
  sli_ctx_free(c->ctx);
  c->ssl = NULL;
  c->ctx = NULL;
  /* A host answer still to come (a signer thread, a certificate store) holds `c`: its *_done call
   * frees what is left, so that it never touches freed memory. */
  pthread_mutex_lock(&c->hook_lock);
  int pending = c->hello_state == SLI__HOOK_CALLING || c->hello_state == SLI__HOOK_WAITING ||
                c->key_state == SLI__HOOK_CALLING || c->key_state == SLI__HOOK_WAITING;
  c->orphaned = pending;
  pthread_mutex_unlock(&c->hook_lock);
  if (!pending) sli__conn_release(c);
}

/* Before each engine call: clear the message, enforce the handshake deadline. */
static int enter(sli_conn *c) {
  sli__error_clear(&c->err);
  c->transport_err = 0;
  if (c->fatal) return conn_fail(c, c->fatal, "the connection already failed: %s",
                                 sli_strerror(c->fatal));
  if (!c->session_offered && !c->handshake_done && !SSL_is_server(c->ssl)) {
    c->session_offered = 1; /* the name and address are known now: resume if a session is kept */
    sli__session_offer(c);
  }
  if (!c->handshake_done && c->timeout_ms) {
    int64_t now = sli__now_ms();
    if (now >= c->deadline_ms)
      return conn_fail(c, SLI_E_TIMEOUT, "the handshake did not complete within %u ms",
                       (unsigned)c->timeout_ms);
  }
  return 0;
}

/* For a blocking fd whose handshake waits for the host's callback to finish: waits for its done
 * call, bounded by the handshake deadline. Returns 0 to retry, or the code to return. */
static int wait_for_host(sli_conn *c, int want) {
  int *state = want == SLI_WANT_CLIENT_HELLO ? &c->hello_state : &c->key_state;
  const char *who = want == SLI_WANT_CLIENT_HELLO ? "ClientHello" : "private-key";
  int rc = 0; /* 1: the deadline passed; 2: the peer left */
  pthread_mutex_lock(&c->hook_lock);
  while (*state == SLI__HOOK_WAITING) {
    /* in slices of 100 ms, to see the deadline and a peer that gave up */
    int64_t slice = 100;
    if (c->deadline_ms) {
      int64_t left = c->deadline_ms - sli__now_ms();
      if (left <= 0) {
        rc = 1;
        break;
      }
      if (left < slice) slice = left;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += slice * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->hook_cond, &c->hook_lock, &ts);
    struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
    if (*state == SLI__HOOK_WAITING && poll(&p, 1, 0) == 1 &&
        (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      rc = 2;
      break;
    }
  }
  pthread_mutex_unlock(&c->hook_lock);
  if (rc == 1)
    return conn_fail(c, SLI_E_TIMEOUT, "the handshake did not complete within %u ms (waiting for "
                     "the host's %s callback)", (unsigned)c->timeout_ms, who);
  if (rc == 2)
    return conn_fail(c, SLI_E_TRUNCATED, "the peer closed the connection during the handshake "
                     "(while waiting for the host's %s callback)", who);
  if (!c->handshake_done && c->deadline_ms && sli__now_ms() >= c->deadline_ms)
    return conn_fail(c, SLI_E_TIMEOUT, "the handshake did not complete within %u ms",
                     (unsigned)c->timeout_ms);
  return 0;
}

/* For a blocking fd: waits for the wanted direction (bounded by the handshake deadline) and says
 * whether to retry. Returns 0 to retry, or the code to return. */
static int wait_if_blocking(sli_conn *c, int want) {
  if (c->fd < 0) return want;
  int fl = fcntl(c->fd, F_GETFL);
  if (fl < 0 || (fl & O_NONBLOCK)) return want;
  if (want == SLI_WANT_CLIENT_HELLO || want == SLI_WANT_PRIVATE_KEY) return wait_for_host(c, want);
  struct pollfd p = {.fd = c->fd, .events = want == SLI_WANT_READ ? POLLIN : POLLOUT};
  for (;;) {
    int timeout = -1;
    if (!c->handshake_done && c->deadline_ms) {
      int64_t left = c->deadline_ms - sli__now_ms();
      if (left <= 0)
        return conn_fail(c, SLI_E_TIMEOUT, "the handshake did not complete within %u ms",
                         (unsigned)c->timeout_ms);
      timeout = left > 0x7fffffff ? 0x7fffffff : (int)left;
    }
    int r = poll(&p, 1, timeout);
    if (r > 0) return 0;
    if (r == 0)
      return conn_fail(c, SLI_E_TIMEOUT, "the handshake did not complete within %u ms",
                       (unsigned)c->timeout_ms);
    if (errno != EINTR) {
      c->sys_err = errno;
      return conn_fail(c, SLI_E_IO, "poll: %s", strerror(errno));
    }
  }
}

static void after_handshake(sli_conn *c) {
  if (c->handshake_done) return;
  c->handshake_done = 1;
  atomic_fetch_add(&c->ctx->stats.handshakes, 1);
  if (SSL_session_reused(c->ssl)) atomic_fetch_add(&c->ctx->stats.resumed, 1);
  /* BoringSSL holds a TLS 1.3 server's session tickets until the next write; a zero-byte write
   * sends them now, so a client waiting for its Nagle-delayed data gets an ACK at once (it cost
   * ~40 ms per connection against clients without TCP_NODELAY). Nothing is lost if it would block. */
  if (SSL_is_server(c->ssl)) {
    SSL_write(c->ssl, "", 0);
    ERR_clear_error();
  }
  long vr = SSL_get_verify_result(c->ssl);
  X509 *peer = SSL_get_peer_certificate(c->ssl);
  if (!peer)
    c->verify_result = SLI_E_NO_PEER_CERT;
  else
    c->verify_result = sli__verify_code(vr);
  X509_free(peer);
}

int sli_conn_handshake(sli_conn *c) {
  if (!c) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_handshake: conn is NULL");
  int rc = enter(c);
  if (rc) return rc;
  if (c->handshake_done) return 0;
  for (;;) {
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
      after_handshake(c);
      c->want = 0;
      return 0;
    }
    rc = map_error(c, r, "handshake");
    if (rc == 0) rc = conn_fail(c, SLI_E_CLOSED, "handshake: the peer closed the connection");
    if (sli_error_category(rc) != SLI_ECAT_BLOCKED) return rc;
    if ((rc = wait_if_blocking(c, rc)) != 0) return rc;
  }
}

ssize_t sli_conn_read(sli_conn *c, void *buf, size_t len) {
  if (!c || (!buf && len)) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_read: conn and buf are needed");
  /* 0 is the clean end's return: a read of nothing is refused, the connection left as it is
   * (it used to reach SSL_read, whose 0 read as a truncation and ended the connection) */
  if (!len) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_read: len is 0 (0 is what a clean end returns)");
  int rc = enter(c);
  if (rc) return rc;
  if (c->peer_closed) return 0; /* our own close_notify does not end the peer's direction */
  if (c->read_truncated)
    return conn_fail_soft(c, SLI_E_TRUNCATED,
                          "read: the peer closed the connection without close_notify (truncation)");
  if (len > 0x7fffffff) len = 0x7fffffff;
  for (;;) {
    int r = SSL_read(c->ssl, buf, (int)len);
    if (r > 0) {
      if (!c->handshake_done) after_handshake(c);
      c->want = 0;
      atomic_fetch_add(&c->ctx->stats.bytes_in, (uint64_t)r);
      return r;
    }
    rc = map_error(c, r, "read"); /* before after_handshake: its write resets SSL_get_error */
    if (!c->handshake_done && SSL_is_init_finished(c->ssl)) after_handshake(c);
    if (sli_error_category(rc) != SLI_ECAT_BLOCKED) return rc;
    if ((rc = wait_if_blocking(c, rc)) != 0) return rc;
  }
}

ssize_t sli_conn_write(sli_conn *c, const void *buf, size_t len) {
  if (!c || (!buf && len)) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_write: conn and buf are needed");
  int rc = enter(c);
  if (rc) return rc;
  /* TLS 1.3 closes each direction on its own (RFC 8446 §6.1): after the peer's close_notify we may
   * still write our reply; after our own, we may not. */
  if (c->write_failed) return conn_fail_soft(c, SLI_E_IO, "write: the transport failed before");
  if (c->shutdown_sent) { /* a usage error: the connection itself stays readable */
    int code = conn_fail(c, SLI_E_CLOSED, "write: close_notify was already sent");
    c->fatal = 0;
    return code;
  }
  if (len == 0) return 0;
  if (len > 0x7fffffff) len = 0x7fffffff;
  for (;;) {
    int r = SSL_write(c->ssl, buf, (int)len);
    if (r > 0) {
      if (!c->handshake_done) after_handshake(c);
      c->want = 0;
      atomic_fetch_add(&c->ctx->stats.bytes_out, (uint64_t)r);
      return r;
    }
    rc = map_error(c, r, "write");
    if (rc == SLI_E_IO && c->fatal == SLI_E_IO) {
      /* the transport refused our bytes (the peer is gone for writing): no more writes, but the
       * peer's last bytes and its close can still be read, as on a plain socket */
      c->fatal = 0;
      c->write_failed = 1;
      return rc;
    }
    if (rc == 0) return conn_fail(c, SLI_E_CLOSED, "write: the connection is closed");
    if (sli_error_category(rc) != SLI_ECAT_BLOCKED) return rc;
    if ((rc = wait_if_blocking(c, rc)) != 0) return rc;
  }
}

int sli_conn_close(sli_conn *c) {
  if (!c) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_close: conn is NULL");
  sli__error_clear(&c->err);
  if (!c->handshake_done || c->fatal || c->shutdown_sent) return 0;
  for (;;) {
    int r = SSL_shutdown(c->ssl);
    if (r >= 0) {
      c->shutdown_sent = 1;
      return 0;
    }
    int rc = map_error(c, r, "close");
    if (rc == SLI_WANT_READ) { /* we only send close_notify; not waiting for the peer's */
      c->shutdown_sent = 1;
      return 0;
    }
    if (rc != SLI_WANT_WRITE) return rc;
    if ((rc = wait_if_blocking(c, rc)) != 0) return rc;
  }
}

size_t sli_conn_pending(const sli_conn *c) {
  if (!c) return 0;
  int p = SSL_pending(c->ssl);
  return p > 0 ? (size_t)p : 0;
}

int sli_conn_want(const sli_conn *c) { return c ? c->want : 0; }

const char *sli_conn_error(const sli_conn *c) { return c ? sli__error_msg(&c->err) : NULL; }

int sli_conn_sys_error(const sli_conn *c) { return c ? c->sys_err : 0; }

int64_t sli_conn_deadline_ms(const sli_conn *c) {
  if (!c || c->handshake_done || !c->deadline_ms || c->fatal) return -1;
  int64_t left = c->deadline_ms - sli__now_ms();
  return left > 0 ? left : 0;
}

int sli_conn_alert(const sli_conn *c) { return c ? c->alert : -1; }
