/* tls.c — TLS contexts and connections over the callback transport (sli_conn_new_cbs). The C
 * transport callbacks only move bytes between two in-memory buffers — inbound, filled by
 * lib/tls.js from the socket's 'data', and outbound, which lib/tls.js writes to the socket — and
 * answer SLI_WANT_READ when the inbound buffer is empty: they never block and run no JS. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sli_node.h"

#define READ_SCRATCH (64 * 1024)
#define OUT_LIMIT (1024 * 1024) /* outbound bytes the engine may queue before SLI_WANT_WRITE */

/* ---- contexts ---------------------------------------------------------------------------------- */

/* settingNames() → the names of SLI_SETTING_MAP, in the order they are applied */
static napi_value setting_names(napi_env env, napi_callback_info info) {
  (void)info;
  static const char *const names[] = {
#define X(ID, NAME, FLAG, VALUE, HELP) NAME,
      SLI_SETTING_MAP(X)
#undef X
  };
  napi_value arr;
  size_t n = sizeof(names) / sizeof(names[0]);
  napi_create_array_with_length(env, n, &arr);
  for (size_t i = 0; i < n; i++) napi_set_element(env, arr, (uint32_t)i, sn_str(env, names[i]));
  return arr;
}

/* config_of([[NAME, value], …]) → a config with each set in turn, or NULL with an exception */
static sli_config *config_of(napi_env env, napi_value pairs) {
  bool is = false;
  uint32_t n = 0;
  if (napi_is_array(env, pairs, &is) != napi_ok || !is) {
    sn_throw_type(env, "%s must be an array", "settings");
    return NULL;
  }
  sli_config *cfg = sli_config_new();
  if (!cfg) {
    sn_throw_sli(env, SLI_E_NOMEM, sli_last_error());
    return NULL;
  }
  napi_get_array_length(env, pairs, &n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value pair, k, v;
    char *name = NULL, *value = NULL;
    napi_get_element(env, pairs, i, &pair);
    if (napi_get_element(env, pair, 0, &k) != napi_ok || napi_get_element(env, pair, 1, &v) != napi_ok ||
        sn_get_string(env, k, "a setting's name", 0, &name) ||
        sn_get_string(env, v, "a setting's value", 0, &value)) {
      free(name);
      sli_config_free(cfg);
      return NULL;
    }
    int rc = sli_config_set_option(cfg, name, value);
    free(name);
    sn_string_free(value);
    if (rc < 0) {
      const char *m = sli_config_error(cfg);
      sn_throw_sli(env, rc, m ? m : sli_last_error());
      sli_config_free(cfg);
      return NULL;
    }
  }
  return cfg;
}

/* ctxNew(isServer, [[NAME, value], …]) → handle */
static napi_value ctx_new(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  int server = 0;
  if (sn_get_flag(env, argv[0], &server)) return NULL;
  sli_config *cfg = config_of(env, argv[1]);
  if (!cfg) return NULL;
  sli_ctx *ctx = NULL;
  int rc = server ? sli_ctx_new_server(&ctx, cfg, 0) : sli_ctx_new_client(&ctx, cfg, 0);
  if (rc < 0) {
    const char *m = sli_config_error(cfg);
    sn_throw_sli(env, rc, m ? m : sli_last_error());
    sli_config_free(cfg);
    return NULL;
  }
  sli_config_free(cfg);
  return sn_handle_new(env, SN_CTX, ctx);
}

/* ctxReload(h, [[NAME, value], …]): new connections take the new settings */
static napi_value ctx_reload(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  sn_handle *h = sn_handle_get(env, argv[0], SN_CTX, "context");
  if (!h) return NULL;
  sli_config *cfg = config_of(env, argv[1]);
  if (!cfg) return NULL;
  int rc = sli_ctx_reload(h->p, cfg, 0);
  if (rc < 0) {
    const char *m = sli_config_error(cfg);
    sn_throw_sli(env, rc, m ? m : sli_last_error());
  }
  sli_config_free(cfg);
  return rc < 0 ? NULL : sn_undef(env);
}

/* ctxStats(h) → {handshakes, resumed, failed, bytesIn, bytesOut, live} */
static napi_value ctx_stats(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_CTX, "context");
  if (!h) return NULL;
  sli_stats s;
  int rc = sli_ctx_stats(h->p, &s, sizeof(s));
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  napi_value o;
  uint64_t failed = 0;
  for (size_t i = 0; i < sizeof(s.failed) / sizeof(s.failed[0]); i++) failed += s.failed[i];
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "handshakes", sn_num(env, (double)s.handshakes));
  napi_set_named_property(env, o, "resumed", sn_num(env, (double)s.resumed));
  napi_set_named_property(env, o, "failed", sn_num(env, (double)failed));
  napi_set_named_property(env, o, "bytesIn", sn_num(env, (double)s.bytes_in));
  napi_set_named_property(env, o, "bytesOut", sn_num(env, (double)s.bytes_out));
  napi_set_named_property(env, o, "live", sn_num(env, (double)s.live));
  return o;
}

/* ---- connections ------------------------------------------------------------------------------- */

typedef struct conn_state {
  sli_conn *conn;
  napi_env env;
  napi_ref self; /* the handle object, held strongly while the connection lives */
  uint8_t *in;
  size_t in_off, in_len, in_cap;
  uint8_t *out;
  size_t out_len, out_cap;
  int eof, sys_err, write_err;
  int deferred; /* 1: a read found the end after returning data; `deferred_rc` is it */
  int deferred_rc;
  char deferred_msg[512];
  uint8_t *scratch;
} conn_state;

static ssize_t on_read(sli_conn *conn, void *buf, size_t len, void *arg) {
  (void)conn;
  conn_state *st = arg;
  size_t avail = st->in_len - st->in_off;
  if (!avail) {
    if (st->sys_err) return -st->sys_err;
    return st->eof ? 0 : SLI_WANT_READ;
  }
  size_t n = avail < len ? avail : len;
  memcpy(buf, st->in + st->in_off, n);
  st->in_off += n;
  if (st->in_off == st->in_len) st->in_off = st->in_len = 0;
  return (ssize_t)n;
}

static ssize_t on_write(sli_conn *conn, const void *buf, size_t len, void *arg) {
  (void)conn;
  conn_state *st = arg;
  if (st->write_err) {
    errno = st->write_err;
    return SLI_E_IO;
  }
  if (st->out_len >= OUT_LIMIT) return SLI_WANT_WRITE;
  if (st->out_len + len > st->out_cap) {
    size_t cap = st->out_cap ? st->out_cap : 16384;
    while (cap < st->out_len + len) cap *= 2;
    uint8_t *p = realloc(st->out, cap);
    if (!p) {
      errno = ENOMEM;
      return SLI_E_IO;
    }
    st->out = p;
    st->out_cap = cap;
  }
  memcpy(st->out + st->out_len, buf, len);
  st->out_len += len;
  return (ssize_t)len;
}

void sn_conn_release(void *p) {
  conn_state *st = p;
  sli_conn_free(st->conn);
  if (st->self) napi_delete_reference(st->env, st->self);
  if (st->in) memset(st->in, 0, st->in_cap);
  if (st->scratch) memset(st->scratch, 0, READ_SCRATCH);
  free(st->in);
  free(st->out);
  free(st->scratch);
  free(st);
}

/* connNew(ctxHandle, servername|null) → handle */
static napi_value conn_new(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  sn_handle *c = sn_handle_get(env, argv[0], SN_CTX, "context");
  char *name;
  if (!c || sn_get_string(env, argv[1], "servername", 1, &name)) return NULL;
  conn_state *st = calloc(1, sizeof(*st));
  if (!st || !(st->scratch = malloc(READ_SCRATCH))) {
    free(st);
    free(name);
    return sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
  }
  st->env = env;
  int rc = sli_conn_new_cbs(&st->conn, c->p, on_read, on_write, st, name, 0);
  free(name);
  if (rc < 0) {
    free(st->scratch);
    free(st);
    return sn_throw_sli(env, rc, sli_last_error());
  }
  napi_value h = sn_handle_new(env, SN_CONN, st);
  if (h && napi_create_reference(env, h, 1, &st->self) != napi_ok) st->self = NULL;
  return h;
}

static conn_state *conn_of(napi_env env, napi_value v) {
  sn_handle *h = sn_handle_get(env, v, SN_CONN, "connection");
  return h ? h->p : NULL;
}

static napi_value conn_fail(napi_env env, conn_state *st, int rc) {
  const char *m = sli_conn_error(st->conn);
  return sn_throw_sli(env, rc, m ? m : sli_last_error());
}

/* connFeed(h, bytes) → inbound bytes waiting */
static napi_value conn_feed(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  conn_state *st = conn_of(env, argv[0]);
  sn_bytes b;
  if (!st || sn_get_bytes(env, argv[1], "data", 0, &b)) return NULL;
  if (st->in_off) {
    memmove(st->in, st->in + st->in_off, st->in_len - st->in_off);
    st->in_len -= st->in_off;
    st->in_off = 0;
  }
  if (st->in_len + b.len > st->in_cap) {
    size_t cap = st->in_cap ? st->in_cap : 65536;
    while (cap < st->in_len + b.len) cap *= 2;
    uint8_t *p = realloc(st->in, cap);
    if (!p) {
      sn_bytes_free(&b);
      return sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
    }
    st->in = p;
    st->in_cap = cap;
  }
  memcpy(st->in + st->in_len, b.ptr, b.len);
  st->in_len += b.len;
  sn_bytes_free(&b);
  return sn_num(env, (double)(st->in_len - st->in_off));
}

/* connEof(h, errno, writeErrno): the transport ended (errno 0: cleanly; else it failed) */
static napi_value conn_eof(napi_env env, napi_callback_info info) {
  SN_ARGS(3);
  conn_state *st = conn_of(env, argv[0]);
  int64_t e, we;
  if (!st || sn_get_int(env, argv[1], "errno", 0, &e) || sn_get_int(env, argv[2], "errno", 0, &we))
    return NULL;
  st->eof = 1;
  if (e > 0) st->sys_err = (int)e;
  if (we > 0) st->write_err = (int)we;
  return sn_undef(env);
}

/* connTake(h) → the outbound bytes (a Buffer), or null */
static napi_value conn_take(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  conn_state *st = conn_of(env, argv[0]);
  if (!st) return NULL;
  napi_value v;
  if (!st->out_len) {
    napi_get_null(env, &v);
    return v;
  }
  if (napi_create_buffer_copy(env, st->out_len, st->out, NULL, &v) != napi_ok)
    return sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
  st->out_len = 0;
  if (st->out_cap > 4 * OUT_LIMIT) { /* a burst grew it: give the memory back */
    free(st->out);
    st->out = NULL;
    st->out_cap = 0;
  }
  return v;
}

/* connHandshake(h) → 0, or SLI_WANT_READ / SLI_WANT_WRITE; throws on failure */
static napi_value conn_handshake(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  conn_state *st = conn_of(env, argv[0]);
  if (!st) return NULL;
  int rc = sli_conn_handshake(st->conn);
  if (rc < 0 && rc != SLI_WANT_READ && rc != SLI_WANT_WRITE) return conn_fail(env, st, rc);
  return sn_num(env, rc);
}

/* connRead(h, max) → a Buffer of plaintext, null after the peer's close_notify, or a WANT code
 * (a number); throws on failure (SLI_E_TRUNCATED: the peer left without close_notify). Data read
 * before the end or a failure is returned first; the end comes at the next call. */
static napi_value conn_read(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  conn_state *st = conn_of(env, argv[0]);
  int64_t max;
  if (!st || sn_get_int(env, argv[1], "size", READ_SCRATCH, &max)) return NULL;
  if (max <= 0 || max > READ_SCRATCH) max = READ_SCRATCH;
  napi_value v;
  if (st->deferred) {
    if (st->deferred_rc < 0) return sn_throw_sli(env, st->deferred_rc, st->deferred_msg);
    napi_get_null(env, &v);
    return v;
  }
  size_t got = 0;
  ssize_t rc = 0;
  while (got < (size_t)max) {
    rc = sli_conn_read(st->conn, st->scratch + got, (size_t)max - got);
    if (rc <= 0) break;
    got += (size_t)rc;
  }
  if (got) {
    if (rc == 0 || (rc < 0 && rc != SLI_WANT_READ && rc != SLI_WANT_WRITE)) {
      const char *m = rc < 0 ? sli_conn_error(st->conn) : NULL;
      st->deferred = 1;
      st->deferred_rc = (int)rc;
      snprintf(st->deferred_msg, sizeof(st->deferred_msg), "%s", m ? m : "");
    }
    napi_status s = napi_create_buffer_copy(env, got, st->scratch, NULL, &v);
    memset(st->scratch, 0, got);
    return s == napi_ok ? v : sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
  }
  if (rc == 0) {
    st->deferred = 1;
    st->deferred_rc = 0;
    napi_get_null(env, &v);
    return v;
  }
  if (rc == SLI_WANT_READ || rc == SLI_WANT_WRITE) return sn_num(env, (double)rc);
  return conn_fail(env, st, (int)rc);
}

/* connWrite(h, buf, offset) → the bytes of buf[offset…] accepted (the engine's records are then in
 * the outbound buffer), or a WANT code if none was; throws on failure */
static napi_value conn_write(napi_env env, napi_callback_info info) {
  SN_ARGS(3);
  conn_state *st = conn_of(env, argv[0]);
  sn_bytes b;
  int64_t off;
  if (!st || sn_get_int(env, argv[2], "offset", 0, &off) || sn_get_bytes(env, argv[1], "data", 0, &b))
    return NULL;
  size_t done = off > 0 && (size_t)off < b.len ? (size_t)off : (off > 0 ? b.len : 0);
  size_t start = done;
  ssize_t rc = 0;
  while (done < b.len) {
    rc = sli_conn_write(st->conn, b.ptr + done, b.len - done);
    if (rc < 0) break;
    done += (size_t)rc;
  }
  sn_bytes_free(&b);
  if (done > start || rc >= 0) return sn_num(env, (double)(done - start));
  if (rc == SLI_WANT_READ || rc == SLI_WANT_WRITE) return sn_num(env, (double)rc);
  return conn_fail(env, st, (int)rc);
}

/* connClose(h) → 0 once close_notify is queued, or a WANT code; throws on failure */
static napi_value conn_close(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  conn_state *st = conn_of(env, argv[0]);
  if (!st) return NULL;
  int rc = sli_conn_close(st->conn);
  if (rc < 0 && rc != SLI_WANT_READ && rc != SLI_WANT_WRITE) return conn_fail(env, st, rc);
  return sn_num(env, rc);
}

/* connInbound(h) → ciphertext bytes received and not yet consumed by the engine */
static napi_value conn_inbound(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  conn_state *st = conn_of(env, argv[0]);
  if (!st) return NULL;
  return sn_num(env, (double)(st->in_len - st->in_off));
}

/* connDeadline(h) → ms left before the handshake's deadline, or -1 */
static napi_value conn_deadline(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  conn_state *st = conn_of(env, argv[0]);
  if (!st) return NULL;
  return sn_num(env, (double)sli_conn_deadline_ms(st->conn));
}

/* connInfo(h) → {isSecured, version, cipher, alpn, servername, isResumed, verifyResult, peerAddr} */
static napi_value conn_info(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  conn_state *st = conn_of(env, argv[0]);
  if (!st) return NULL;
  sli_conn *c = st->conn;
  napi_value o;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "isSecured", sn_bool(env, sli_conn_is_secured(c)));
  napi_set_named_property(env, o, "version", sn_str(env, sli_conn_version(c)));
  napi_set_named_property(env, o, "cipher", sn_str(env, sli_conn_cipher(c)));
  napi_set_named_property(env, o, "alpn", sn_str(env, sli_conn_alpn(c)));
  napi_set_named_property(env, o, "servername", sn_str(env, sli_conn_servername(c)));
  napi_set_named_property(env, o, "isResumed", sn_bool(env, sli_conn_is_resumed(c)));
  napi_set_named_property(env, o, "verifyResult", sn_num(env, sli_conn_verify_result(c)));
  napi_set_named_property(env, o, "peerAddr", sn_str(env, sli_conn_peer_addr(c)));
  napi_set_named_property(env, o, "alert", sn_num(env, sli_conn_alert(c)));
  return o;
}

/* connPeerCert(h) → a certificate handle (its own reference), or null */
static napi_value conn_peer_cert(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  conn_state *st = conn_of(env, argv[0]);
  if (!st) return NULL;
  const sli_cert *c = sli_conn_peer_cert(st->conn);
  if (!c) {
    napi_value v;
    napi_get_null(env, &v);
    return v;
  }
  return sn_handle_new(env, SN_CERT, sli_cert_up_ref(c));
}

/* connSetPeer(h, ip, port): the peer's address, for messages */
static napi_value conn_set_peer(napi_env env, napi_callback_info info) {
  SN_ARGS(3);
  conn_state *st = conn_of(env, argv[0]);
  char *ip;
  int64_t port;
  if (!st || sn_get_int(env, argv[2], "port", 0, &port) || sn_get_string(env, argv[1], "ip", 0, &ip))
    return NULL;
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  memset(&a6, 0, sizeof(a6));
  memset(&a4, 0, sizeof(a4));
  int rc = SLI_E_INVAL;
  if (inet_pton(AF_INET, ip, &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons((uint16_t)port);
    rc = sli_conn_set_peer_addr(st->conn, (struct sockaddr *)&a4, sizeof(a4));
  } else if (inet_pton(AF_INET6, ip, &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons((uint16_t)port);
    rc = sli_conn_set_peer_addr(st->conn, (struct sockaddr *)&a6, sizeof(a6));
  }
  free(ip);
  return rc < 0 ? sn_bool(env, 0) : sn_bool(env, 1);
}

/* connSessionExport(h) → Buffer (secrets: keep it as a key) */
static napi_value conn_session_export(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  conn_state *st = conn_of(env, argv[0]);
  if (!st) return NULL;
  uint8_t *p = NULL;
  size_t n = 0;
  int rc = sli_conn_session_export(st->conn, &p, &n);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  napi_value v;
  napi_status s = napi_create_buffer_copy(env, n, p, NULL, &v);
  sli_free(p, n);
  return s == napi_ok ? v : sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
}

/* connSessionImport(h, bytes) */
static napi_value conn_session_import(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  conn_state *st = conn_of(env, argv[0]);
  sn_bytes b;
  if (!st || sn_get_bytes(env, argv[1], "session", 0, &b)) return NULL;
  int rc = sli_conn_session_import(st->conn, b.ptr, b.len);
  sn_bytes_free(&b);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_undef(env);
}

int sn_register_tls(napi_env env, napi_value exports) {
  return sn_def(env, exports, "settingNames", setting_names) ||
         sn_def(env, exports, "ctxNew", ctx_new) || sn_def(env, exports, "ctxReload", ctx_reload) ||
         sn_def(env, exports, "ctxStats", ctx_stats) || sn_def(env, exports, "connNew", conn_new) ||
         sn_def(env, exports, "connFeed", conn_feed) || sn_def(env, exports, "connEof", conn_eof) ||
         sn_def(env, exports, "connTake", conn_take) ||
         sn_def(env, exports, "connHandshake", conn_handshake) ||
         sn_def(env, exports, "connRead", conn_read) ||
         sn_def(env, exports, "connWrite", conn_write) ||
         sn_def(env, exports, "connClose", conn_close) ||
         sn_def(env, exports, "connInbound", conn_inbound) ||
         sn_def(env, exports, "connDeadline", conn_deadline) ||
         sn_def(env, exports, "connInfo", conn_info) ||
         sn_def(env, exports, "connPeerCert", conn_peer_cert) ||
         sn_def(env, exports, "connSetPeer", conn_set_peer) ||
         sn_def(env, exports, "connSessionExport", conn_session_export) ||
         sn_def(env, exports, "connSessionImport", conn_session_import);
}
