/* errors.c — SLI_* codes (names, descriptions, categories) and the error carrier: a failure's code
 * and message, in the object that failed and in the calling thread's last error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/core.h"

struct code_info {
  int code;
  const char *name;
  const char *text;
};

static const struct code_info codes[] = {
    {0, "SLI_OK", "success"},
    {SLI_WANT_READ, "SLI_WANT_READ", "the transport must become readable; repeat the call"},
    {SLI_WANT_WRITE, "SLI_WANT_WRITE", "the transport must become writable; repeat the call"},
    {SLI_WANT_CLIENT_HELLO, "SLI_WANT_CLIENT_HELLO", "the handshake waits for the host's ClientHello callback to finish; repeat the call after sli_conn_client_hello_done"},
    {SLI_WANT_PRIVATE_KEY, "SLI_WANT_PRIVATE_KEY", "the handshake waits for the host's private-key callback to finish; repeat the call after sli_conn_private_key_done"},
    {SLI_E_CLOSED, "SLI_E_CLOSED", "the connection is closed"},
    {SLI_E_TRUNCATED, "SLI_E_TRUNCATED", "the peer closed the connection without close_notify (truncation)"},
    {SLI_E_IO, "SLI_E_IO", "transport error"},
    {SLI_E_TIMEOUT, "SLI_E_TIMEOUT", "the handshake timed out"},
    {SLI_E_ALERT, "SLI_E_ALERT", "the peer sent a fatal TLS alert"},
    {SLI_E_PROTO, "SLI_E_PROTO", "TLS protocol error"},
    {SLI_E_NO_SHARED_CIPHER, "SLI_E_NO_SHARED_CIPHER", "no cipher suite in common with the peer"},
    {SLI_E_VERSION, "SLI_E_VERSION", "no protocol version in common with the peer"},
    {SLI_E_NOT_TLS, "SLI_E_NOT_TLS", "the peer does not speak TLS"},
    {SLI_E_UNTRUSTED, "SLI_E_UNTRUSTED", "certificate issuer is not trusted"},
    {SLI_E_EXPIRED, "SLI_E_EXPIRED", "certificate has expired"},
    {SLI_E_NOT_YET_VALID, "SLI_E_NOT_YET_VALID", "certificate is not yet valid"},
    {SLI_E_HOSTNAME, "SLI_E_HOSTNAME", "certificate does not match the host name"},
    {SLI_E_REVOKED, "SLI_E_REVOKED", "certificate has been revoked"},
    {SLI_E_BAD_SIGNATURE, "SLI_E_BAD_SIGNATURE", "certificate signature is invalid"},
    {SLI_E_SELF_SIGNED, "SLI_E_SELF_SIGNED", "certificate is self-signed and not trusted"},
    {SLI_E_NO_PEER_CERT, "SLI_E_NO_PEER_CERT", "the peer sent no certificate"},
    {SLI_E_VERIFY, "SLI_E_VERIFY", "certificate verification failed"},
    {SLI_E_PEM, "SLI_E_PEM", "malformed PEM"},
    {SLI_E_PEM_TRUNCATED, "SLI_E_PEM_TRUNCATED", "truncated PEM (no END line)"},
    {SLI_E_LINE_ENDINGS, "SLI_E_LINE_ENDINGS", "lone CR line endings (use LF or CRLF)"},
    {SLI_E_NOT_PEM, "SLI_E_NOT_PEM", "not PEM (DER or binary data given)"},
    {SLI_E_PASSWORD, "SLI_E_PASSWORD", "wrong or missing password for an encrypted key"},
    {SLI_E_KEY_MISMATCH, "SLI_E_KEY_MISMATCH", "the private key does not match the certificate"},
    {SLI_E_WEAK_KEY, "SLI_E_WEAK_KEY", "key too weak"},
    {SLI_E_CIPHERS, "SLI_E_CIPHERS", "cipher list refused"},
    {SLI_E_FILE, "SLI_E_FILE", "file cannot be read"},
    {SLI_E_NO_IDENTITY, "SLI_E_NO_IDENTITY", "no certificate and key configured"},
    {SLI_E_CONFIG, "SLI_E_CONFIG", "invalid configuration"},
    {SLI_E_KEY_ENCRYPTED, "SLI_E_KEY_ENCRYPTED", "the key is passphrase-protected in a format sli cannot open (use ssh-keygen -p)"},
    {SLI_E_HEADER, "SLI_E_HEADER", "not a blob of a known format or version, or too short"},
    {SLI_E_HEADER_MAC, "SLI_E_HEADER_MAC", "the header failed authentication"},
    {SLI_E_PAYLOAD, "SLI_E_PAYLOAD", "the payload was modified, truncated or extended, or the associated data differs"},
    {SLI_E_ARMOR, "SLI_E_ARMOR", "bad base64 or ASCII armor"},
    {SLI_E_NO_MATCH, "SLI_E_NO_MATCH", "no key or identity given can open it"},
    {SLI_E_SIGNATURE, "SLI_E_SIGNATURE", "the signature does not verify"},
    {SLI_E_INVAL, "SLI_E_INVAL", "invalid argument"},
    {SLI_E_STATE, "SLI_E_STATE", "call not allowed in this state"},
    {SLI_E_BUFSIZE, "SLI_E_BUFSIZE", "output buffer too small"},
    {SLI_E_UNSUPPORTED, "SLI_E_UNSUPPORTED", "not supported"},
    {SLI_E_NOMEM, "SLI_E_NOMEM", "out of memory"},
    {SLI_E_INTERNAL, "SLI_E_INTERNAL", "internal error"},
};

static const struct code_info *find(int code) {
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
    if (codes[i].code == code) return &codes[i];
  return NULL;
}

const char *sli_err_name(int code) {
  const struct code_info *c = find(code);
  return c ? c->name : "unknown error";
}

const char *sli_strerror(int code) {
  const struct code_info *c = find(code);
  return c ? c->text : "unknown error";
}

int sli_error_category(int code) {
  if (code >= 0) return SLI_ECAT_OK;
  if (code <= -1000 && code > -2000) {
    static const int cats[] = {SLI_ECAT_BLOCKED, SLI_ECAT_CLOSED, SLI_ECAT_IO,
                               SLI_ECAT_ALERT,   SLI_ECAT_PROTO,  SLI_ECAT_VERIFY,
                               SLI_ECAT_CONFIG,  SLI_ECAT_CRYPTO, SLI_ECAT_USAGE,
                               SLI_ECAT_INTERNAL};
    return cats[(-code - 1000) / 100];
  }
  return SLI_ECAT_INTERNAL;
}

/* The calling thread's last error, what sli_last_error reads: a carrier allocated on the thread's
 * first failure and freed (by libc's free) when the thread ends. A pthread key rather than
 * _Thread_local, which would make libsli.so.1 need the dynamic loader's __tls_get_addr. */
static pthread_key_t last_key;
static pthread_once_t last_once = PTHREAD_ONCE_INIT;
static int last_ready;

static void last_init(void) { last_ready = pthread_key_create(&last_key, free) == 0; }

sli__error *sli__last_error(void) {
  pthread_once(&last_once, last_init);
  if (!last_ready) return NULL;
  sli__error *e = pthread_getspecific(last_key);
  if (!e && (e = calloc(1, sizeof(*e))) && pthread_setspecific(last_key, e) != 0) {
    free(e);
    e = NULL;
  }
  return e;
}

const char *sli_last_error(void) {
  const sli__error *e = sli__last_error();
  return e ? sli__error_msg(e) : NULL;
}

static void vfail(sli__error *e, int code, const char *ssl_error, const char *fmt, va_list ap) {
  sli__error *last = sli__last_error(), scratch;
  sli__error *to = e ? e : last ? last : &scratch;
  int n = vsnprintf(to->msg, sizeof(to->msg), fmt, ap);
  if (ssl_error && n >= 0 && (size_t)n < sizeof(to->msg))
    snprintf(to->msg + n, sizeof(to->msg) - (size_t)n, " (%s)", ssl_error);
  to->code = code;
  if (last && to != last) *last = *to;
}

int sli__fail(sli__error *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(e, code, NULL, fmt, ap);
  va_end(ap);
  return code;
}

int sli__fail_ssl(sli__error *e, int code, const char *fmt, ...) {
  char text[256] = "";
  uint32_t err = ERR_get_error();
  if (err) ERR_error_string_n(err, text, sizeof(text));
  ERR_clear_error();
  va_list ap;
  va_start(ap, fmt);
  vfail(e, code, err ? text : NULL, fmt, ap);
  va_end(ap);
  return code;
}

void sli__error_clear(sli__error *e) {
  e->code = 0;
  e->msg[0] = 0;
}

const char *sli__error_msg(const sli__error *e) { return e->code ? e->msg : NULL; }

void sli__error_to_buf(const sli__error *e, char *buf, size_t cap) {
  if (buf && cap) snprintf(buf, cap, "%s", e->code ? e->msg : "");
}
